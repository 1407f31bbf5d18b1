import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";

const crit = (header: Record<string, unknown> | undefined) =>
  Array.isArray(header?.crit)
    ? { crit: Object.fromEntries((header.crit as string[]).map((name) => [name, true])) }
    : undefined;

type Key = { kid: string; alg: string; privateKey: CryptoKey; jwk: JWK };

export interface SignOptions {
  /** Sign with this key id (default: the current key). */
  readonly kid?: string;
  /** Extra or overriding header parameters. */
  readonly header?: Record<string, unknown>;
  /** Sign with a key that is not published (an attacker's). */
  readonly foreignKey?: boolean;
}

export interface OidcProvider extends AsyncDisposable {
  /** The `iss` it signs with, and serves discovery under. */
  readonly issuer: string;
  readonly jwksUri: string;
  /** Signs a token: iss, aud "perishable", iat, exp (+300 s) by default; claims override. */
  sign(claims: JWTPayload, options?: SignOptions): Promise<string>;
  /** A new current key with a new kid; the old one is unpublished unless `keepOld`. */
  rotate(options?: { keepOld?: boolean }): Promise<void>;
  readonly currentKid: () => string;
  /** The published public JWK of the current key (for key-confusion attacks). */
  readonly publicJwk: () => JWK;
  readonly jwksFetches: () => number;
  readonly discoveryFetches: () => number;
  close(): Promise<void>;
}

/**
 * A small, real OpenID provider on 127.0.0.1: discovery document and JWKS over HTTP, keys
 * generated at start (RS256, or ES256), rotation on demand, and a count of every fetch.
 */
export const startOidcProvider = async (
  options: { alg?: "RS256" | "ES256"; audience?: string } = {},
): Promise<OidcProvider> => {
  const alg = options.alg ?? "RS256";
  let counter = 0;
  const newKey = async (): Promise<Key> => {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    const kid = `key-${++counter}`;
    return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" } };
  };
  let published: Key[] = [await newKey()];
  const foreign = await newKey();
  let jwksFetches = 0;
  let discoveryFetches = 0;

  const server = createServer((req, res) => {
    if (req.url === "/.well-known/openid-configuration") {
      discoveryFetches += 1;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks`, id_token_signing_alg_values_supported: [alg] }),
      );
      return;
    }
    if (req.url === "/jwks") {
      jwksFetches += 1;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ keys: published.map((k) => k.jwk) }));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return {
    issuer,
    jwksUri: `${issuer}/jwks`,
    sign: async (claims, signOptions = {}) => {
      const key = signOptions.foreignKey
        ? foreign
        : (published.find((k) => k.kid === signOptions.kid) ?? published.at(-1)!);
      const now = Math.floor(Date.now() / 1000);
      return (
        new SignJWT({
          iss: issuer,
          aud: options.audience ?? "perishable",
          iat: now,
          exp: now + 300,
          ...claims,
        })
          .setProtectedHeader({
            alg: key.alg,
            kid: signOptions.kid ?? key.kid,
            typ: "JWT",
            ...signOptions.header,
          })
          // Critical extensions are signed as given: the verifier is the one that must refuse them.
          .sign(key.privateKey, crit(signOptions.header))
      );
    },
    rotate: async ({ keepOld = false } = {}) => {
      const next = await newKey();
      published = keepOld ? [...published, next] : [next];
    },
    currentKid: () => published.at(-1)!.kid,
    publicJwk: () => published.at(-1)!.jwk,
    jwksFetches: () => jwksFetches,
    discoveryFetches: () => discoveryFetches,
    close,
    [Symbol.asyncDispose]: close,
  };
};
