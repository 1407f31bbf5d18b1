/**
 * DPoP (RFC 9449) for sessions that ask for it: a P-256 key made with WebCrypto (the private
 * half not extractable: it never leaves this process, not even as bytes), and a proof signed with
 * it on every call to the broker — issuance, refresh, delegation, self, every proxied request.
 * A token bound to the key is useless without it: copied out of a prompt or a log, it opens nothing.
 */
import type { webcrypto } from "node:crypto";

type CryptoKey = webcrypto.CryptoKey;
type SubtleCrypto = webcrypto.SubtleCrypto;

/** An ECDSA P-256 key pair, as WebCrypto's generateKey makes it. */
export interface DpopKeyPair {
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
}

export interface DpopKey {
  readonly privateKey: CryptoKey;
  readonly publicJwk: { readonly kty: "EC"; readonly crv: "P-256"; readonly x: string; readonly y: string };
  /** The key's JWK SHA-256 thumbprint (RFC 7638): what the broker binds a grant to (`cnf.jkt`). */
  readonly jkt: string;
}

const subtle = (): SubtleCrypto => {
  if (!globalThis.crypto?.subtle) throw new TypeError("DPoP needs WebCrypto (globalThis.crypto.subtle)");
  return globalThis.crypto.subtle as unknown as SubtleCrypto;
};

/** base64url without padding, with what browsers and Node both have. */
const b64u = (bytes: ArrayBuffer | Uint8Array): string => {
  let binary = "";
  for (const byte of bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes))
    binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
};
const b64uText = (text: string): string => b64u(new TextEncoder().encode(text));

/** A DpopKey for a key pair (ECDSA P-256) the caller made or was handed. */
export const dpopKeyFrom = async (pair: DpopKeyPair): Promise<DpopKey> => {
  const algorithm = pair.privateKey.algorithm as { name: string; namedCurve?: string };
  if (algorithm.name !== "ECDSA" || algorithm.namedCurve !== "P-256")
    throw new TypeError("a DPoP key must be an ECDSA P-256 key pair");
  const jwk = await subtle().exportKey("jwk", pair.publicKey);
  const publicJwk = { kty: "EC", crv: "P-256", x: jwk.x!, y: jwk.y! } as const;
  // RFC 7638: the required members, in lexicographic order, no whitespace.
  const canonical = JSON.stringify({
    crv: publicJwk.crv,
    kty: publicJwk.kty,
    x: publicJwk.x,
    y: publicJwk.y,
  });
  const jkt = b64u(await subtle().digest("SHA-256", new TextEncoder().encode(canonical)));
  return Object.freeze({ privateKey: pair.privateKey, publicJwk, jkt });
};

/** A new key for DPoP; its private half cannot be exported. */
export const generateDpopKey = async (): Promise<DpopKey> =>
  dpopKeyFrom(
    (await subtle().generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, [
      "sign",
      "verify",
    ])) as DpopKeyPair,
  );

/** The key a `dpop` option asks for: none, a new one, or the pair given. */
export const dpopKeyOf = async (option: boolean | DpopKeyPair | undefined): Promise<DpopKey | undefined> => {
  if (option === undefined || option === false) return undefined;
  return option === true ? generateDpopKey() : dpopKeyFrom(option);
};

/** A proof for one request: `htm`, `htu` (no query), a fresh `jti`, `iat` now, `ath` with a token. */
export const dpopProof = async (
  key: DpopKey,
  method: string,
  url: string | URL,
  token?: string,
  now: () => number = Date.now,
): Promise<string> => {
  const target = new URL(String(url));
  const htu = `${target.protocol}//${target.host}${target.pathname}`;
  const header = { typ: "dpop+jwt", alg: "ES256", jwk: key.publicJwk };
  const payload: Record<string, unknown> = {
    jti: crypto.randomUUID(),
    htm: method.toUpperCase(),
    htu,
    iat: Math.floor(now() / 1000),
  };
  if (token !== undefined)
    payload.ath = b64u(await subtle().digest("SHA-256", new TextEncoder().encode(token)));
  const input = `${b64uText(JSON.stringify(header))}.${b64uText(JSON.stringify(payload))}`;
  // WebCrypto's ECDSA signature is r || s, exactly JWS's ES256 form.
  const signature = await subtle().sign(
    { name: "ECDSA", hash: "SHA-256" },
    key.privateKey,
    new TextEncoder().encode(input),
  );
  return `${input}.${b64u(signature)}`;
};

const TOKEN_SCHEME = /^(?:Bearer|DPoP) +(prs_\S+)$/i;

/**
 * fetch that signs every call to `broker`'s origin with `key`: a `DPoP` header, and a `prs_`
 * token in `Authorization` sent under the `DPoP` scheme with its hash in the proof. Calls to any
 * other origin go out untouched (and the session never makes one with a token).
 */
export const dpopFetch = (inner: typeof fetch, key: DpopKey, broker: URL, now?: () => number): typeof fetch =>
  (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (url.origin !== broker.origin) return inner(input, init);
    const method = init?.method ?? (input instanceof Request ? input.method : "GET");
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    const token = TOKEN_SCHEME.exec(headers.get("authorization") ?? "")?.[1];
    if (token !== undefined) headers.set("authorization", `DPoP ${token}`);
    headers.set("dpop", await dpopProof(key, method, url, token, now));
    if (input instanceof Request && init?.headers === undefined) {
      headers.forEach((value, name) => {
        input.headers.set(name, value);
      });
      return inner(input, init);
    }
    return inner(input, { ...init, headers });
  }) as typeof fetch;
