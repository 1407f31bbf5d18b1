import { AGENT_NAME_RE, isPrintable } from "@perishable/protocol";
import { decodeJwt, errors, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from "jose";
import { DEFAULTS } from "../config/defaults.js";
import type { ClaimRule, OidcIssuerConfig } from "../config/types.js";
import { JwksFetchError, RemoteKeys } from "./jwks.js";

/** A workload identity that passed every check. */
export interface VerifiedIdentity {
  readonly issuer: OidcIssuerConfig;
  /** The `iss` and `sub` of the token: recorded on the grant. */
  readonly identity: { readonly issuer: string; readonly subject: string };
  /** The value of the issuer's agent claim. */
  readonly agent: string;
  /** The value of the issuer's on_behalf_of_claim, when it has one. */
  readonly onBehalfOf?: string;
  readonly claims: JWTPayload;
}

/** Why a token was refused: `unreachable` when the identity provider could not be asked. */
export interface IdentityRefusal {
  readonly refused: true;
  readonly unreachable: boolean;
  /** For the audit trail and the error message: never the token, never a claim value. */
  readonly reason: string;
  readonly issuerName: string | null;
}

const OIDC_TIMEOUT_MS = DEFAULTS.oidcTimeoutMs;
const JWT_SHAPE = /^[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*$/;
const MAX_JWT_LENGTH = 16 * 1024;

/** Whether a presented credential is shaped like a JWT (and so goes to the OIDC issuers). */
export const looksLikeJwt = (credential: string): boolean =>
  credential.startsWith("eyJ") && JWT_SHAPE.test(credential);

/**
 * Verifies workload identity tokens against the configured OIDC issuers with jose: the issuer is
 * chosen by the token's (unverified) `iss`, then signature (that issuer's JWKS, cached, fetched
 * again on an unknown `kid` after a short cooldown and at most a few times a minute: see
 * RemoteKeys), `iss`, `aud`, `exp`, `nbf`, `iat`, allowed algorithms (asymmetric only) and the
 * agent claim are all checked. Refusals say why without repeating the token.
 */
export class OidcVerifier {
  readonly #issuers: ReadonlyMap<string, OidcIssuerConfig>;
  readonly #keys = new Map<string, Promise<JWTVerifyGetKey>>();

  constructor(issuers: readonly OidcIssuerConfig[]) {
    this.#issuers = new Map(issuers.map((issuer) => [issuer.issuer, issuer]));
  }

  get configured(): boolean {
    return this.#issuers.size > 0;
  }

  async verify(jwt: string, now: number): Promise<VerifiedIdentity | IdentityRefusal> {
    const refuse = (
      reason: string,
      issuer: OidcIssuerConfig | null = null,
      unreachable = false,
    ): IdentityRefusal => ({
      refused: true,
      unreachable,
      reason,
      issuerName: issuer?.name ?? null,
    });
    if (jwt.length > MAX_JWT_LENGTH) return refuse("the identity token is too large");
    let unverified: JWTPayload;
    try {
      unverified = decodeJwt(jwt);
    } catch {
      return refuse("not a well-formed JWT");
    }
    const issuer = typeof unverified.iss === "string" ? this.#issuers.get(unverified.iss) : undefined;
    if (!issuer) return refuse("no OIDC issuer is configured for this token's iss");

    let claims: JWTPayload;
    try {
      const keys = await this.#keysOf(issuer);
      ({ payload: claims } = await jwtVerify(jwt, keys, {
        issuer: issuer.issuer,
        audience: issuer.audience as string | string[],
        algorithms: [...issuer.algorithms],
        clockTolerance: issuer.clockSkewSeconds,
        requiredClaims: ["exp", issuer.agentClaim],
        currentDate: new Date(now),
        ...(issuer.maxTokenAgeSeconds ? { maxTokenAge: issuer.maxTokenAgeSeconds } : {}),
      }));
    } catch (error) {
      return classify(error, issuer, refuse);
    }
    if (typeof claims.iat === "number" && claims.iat > now / 1000 + issuer.clockSkewSeconds) {
      return refuse("iat: the token claims to be issued in the future", issuer);
    }
    const agent = claims[issuer.agentClaim];
    if (typeof agent !== "string" || !AGENT_NAME_RE.test(agent)) {
      return refuse(`the ${issuer.agentClaim} claim is not a usable agent name`, issuer);
    }
    // The subject is stored on the grant and shown to operators: held to printable text of a
    // bounded length, like the agent claim, never stored as the provider sent it.
    const subject = claims.sub ?? agent;
    if (
      typeof subject !== "string" ||
      !isPrintable(subject) ||
      subject.length === 0 ||
      subject.length > 256
    ) {
      return refuse("the sub claim is not a printable string of at most 256 characters", issuer);
    }
    let onBehalfOf: string | undefined;
    if (issuer.onBehalfOfClaim !== undefined) {
      const value = claims[issuer.onBehalfOfClaim];
      if (typeof value !== "string" || !/^[\x21-\x7e]{1,256}$/.test(value))
        return refuse(`the ${issuer.onBehalfOfClaim} claim is not a usable onBehalfOf`, issuer);
      onBehalfOf = value;
    }
    return {
      ...(onBehalfOf === undefined ? {} : { onBehalfOf }),
      issuer,
      identity: { issuer: issuer.issuer, subject },
      agent,
      claims,
    };
  }

  /** The JWKS resolver of an issuer, created on first use (discovery first when no jwks_uri is set). */
  #keysOf(issuer: OidcIssuerConfig): Promise<JWTVerifyGetKey> {
    let keys = this.#keys.get(issuer.issuer);
    if (!keys) {
      keys = (async () => {
        const uri = issuer.jwksUri ?? (await discoverJwksUri(issuer.issuer));
        return new RemoteKeys(new URL(uri), {
          cooldownMs: issuer.jwksCooldownMs,
          maxFetchesPerMinute: issuer.jwksMaxFetchesPerMinute,
          cacheMs: issuer.jwksCacheMs,
          timeoutMs: OIDC_TIMEOUT_MS,
        }).getKey;
      })();
      this.#keys.set(issuer.issuer, keys);
      // A failed discovery is tried again on the next token, not cached forever.
      keys.catch(() => this.#keys.delete(issuer.issuer));
    }
    return keys;
  }
}

/** Reads `jwks_uri` from the issuer's discovery document, which must name the same issuer. */
const discoverJwksUri = async (issuer: string): Promise<string> => {
  const response = await fetch(
    new URL(".well-known/openid-configuration", issuer.endsWith("/") ? issuer : `${issuer}/`),
    { signal: AbortSignal.timeout(OIDC_TIMEOUT_MS) },
  );
  if (!response.ok) throw new DiscoveryError(`the discovery document answered ${response.status}`);
  const doc = (await response.json()) as { issuer?: unknown; jwks_uri?: unknown };
  if (doc.issuer !== issuer) throw new DiscoveryError("the discovery document names another issuer");
  if (typeof doc.jwks_uri !== "string") throw new DiscoveryError("the discovery document has no jwks_uri");
  const url = new URL(doc.jwks_uri);
  if (url.protocol !== "https:" && !["127.0.0.1", "localhost", "[::1]"].includes(url.hostname)) {
    throw new DiscoveryError("the discovery document's jwks_uri is not https");
  }
  return url.href;
};

class DiscoveryError extends Error {}

const classify = (
  error: unknown,
  issuer: OidcIssuerConfig,
  refuse: (reason: string, issuer: OidcIssuerConfig, unreachable?: boolean) => IdentityRefusal,
): IdentityRefusal => {
  if (error instanceof DiscoveryError) return refuse(`OIDC discovery failed: ${error.message}`, issuer, true);
  if (error instanceof JwksFetchError)
    return refuse(`the keys could not be read: ${error.message}`, issuer, true);
  if (error instanceof errors.JWKSTimeout)
    return refuse("the identity provider's keys could not be fetched in time", issuer, true);
  if (error instanceof errors.JOSEError) {
    // jose's messages name the check and the claim, never the token or a claim's value.
    return refuse(`${error.code}: ${error.message}`, issuer);
  }
  return refuse("the identity provider could not be reached", issuer, true);
};

/** The first rule whose claims all match and that covers every requested scope. */
export const matchRule = (
  rules: readonly ClaimRule[],
  claims: JWTPayload,
  requested: readonly string[],
): ClaimRule | undefined =>
  rules.find(
    (rule) =>
      rule.claims.every(([name, patterns]) => {
        const value = claims[name];
        const values = Array.isArray(value) ? value : [value];
        return values.some((v) => typeof v === "string" && patterns.some((p) => p.test(v)));
      }) && requested.every((scope) => rule.scopes.has(scope)),
  );
