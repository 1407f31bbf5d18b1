import { IssueTokenRequest, looksLikeToken, type TokenResponse, tokenTree } from "@perishable/protocol";
import { looksLikeJwt, type OidcVerifier } from "../auth/oidc.js";
import { verifyIdentity, workloadAuthority } from "../auth/workload.js";
import { BrokerError } from "../errors.js";
import type { PresentedToken, TokenContext } from "./context.js";
import { delegateToken } from "./delegate.js";
import { issueRootToken } from "./issue.js";

/**
 * OAuth 2.0 Token Exchange (RFC 8693) at `POST /v1/oauth/token`: the standard door to what
 * `POST /v1/tokens` does. A `prs_` subject token gets a child grant (the same attenuation rules),
 * an identity token of a configured OIDC issuer a root grant; an `actor_token` (the sub-agent's
 * own workload JWT) is verified like an issuer's and recorded on the grant. Errors are the OAuth
 * shape (RFC 6749 §5.2), not the envelope: see `oauthError`.
 */
export const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TYPES = new Set([
  "urn:ietf:params:oauth:token-type:jwt",
  "urn:ietf:params:oauth:token-type:id_token",
]);

/** An OAuth error: `error` is the RFC's code, the status its HTTP status. */
export class OAuthError extends Error {
  constructor(
    readonly error: string,
    readonly description: string,
    readonly status = 400,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(description);
  }
}

export interface ExchangeAnswer {
  readonly access_token: string;
  readonly issued_token_type: typeof ACCESS_TOKEN;
  readonly token_type: "Bearer" | "DPoP";
  readonly expires_in: number;
  readonly scope: string;
}

/** A form value that may appear at most once (RFC 6749 §3.2: parameters must not repeat). */
const single = (form: URLSearchParams, name: string): string | undefined => {
  const values = form.getAll(name);
  if (values.length > 1) throw new OAuthError("invalid_request", `${name} is repeated`);
  return values[0] === undefined || values[0] === "" ? undefined : values[0];
};

/** The upstream names `resource` / `audience` name: a name, or a URL whose path is /proxy/<name>/…. */
const targets = (form: URLSearchParams): Set<string> => {
  const names = new Set<string>();
  for (const value of [...form.getAll("resource"), ...form.getAll("audience")]) {
    const match = /\/proxy\/([^/?#]+)/.exec(value);
    names.add(match ? decodeURIComponent(match[1]!) : value);
  }
  return names;
};

export interface ExchangeDeps {
  readonly ctx: TokenContext;
  readonly oidc: OidcVerifier;
  /** The key the request's DPoP proof proved, if it sent one. */
  readonly proven: () => Promise<string | undefined>;
}

export const exchangeToken = async (
  { ctx, oidc, proven }: ExchangeDeps,
  form: URLSearchParams,
  requestId: string,
): Promise<ExchangeAnswer> => {
  if (single(form, "grant_type") !== TOKEN_EXCHANGE)
    throw new OAuthError("unsupported_grant_type", `grant_type must be ${TOKEN_EXCHANGE}`);
  const subject = single(form, "subject_token");
  const subjectType = single(form, "subject_token_type");
  if (!subject || !subjectType)
    throw new OAuthError("invalid_request", "subject_token and subject_token_type are required");
  const requested = single(form, "requested_token_type");
  if (requested !== undefined && requested !== ACCESS_TOKEN)
    throw new OAuthError("invalid_request", `requested_token_type must be ${ACCESS_TOKEN}`);
  const scope = single(form, "scope");
  const upstreams = targets(form);
  const body = (defaults: readonly string[]): IssueTokenRequest => {
    const scopes = scope === undefined ? [...defaults] : scope.split(" ").filter((s) => s !== "");
    const wide =
      upstreams.size === 0
        ? []
        : scopes.filter((s) => !upstreams.has(ctx.config.scopes.get(s)?.upstream ?? ""));
    if (wide.length > 0)
      throw new OAuthError("invalid_target", `${wide.join(", ")} is not on ${[...upstreams].join(", ")}`);
    const parsed = IssueTokenRequest.safeParse({ scopes });
    if (!parsed.success) throw new OAuthError("invalid_scope", parsed.error.issues[0]!.message);
    return parsed.data;
  };
  const actorToken = single(form, "actor_token");
  const actorType = single(form, "actor_token_type");
  if ((actorToken === undefined) !== (actorType === undefined))
    throw new OAuthError("invalid_request", "actor_token and actor_token_type go together");
  if (actorType !== undefined && !JWT_TYPES.has(actorType))
    throw new OAuthError("invalid_request", "actor_token must be a JWT (token-type jwt or id_token)");
  const actor = actorToken ? (await verifyIdentity(oidc, actorToken, ctx.now())).identity : undefined;

  let issued: TokenResponse;
  if (subjectType === ACCESS_TOKEN) {
    const tree = looksLikeToken(subject) ? tokenTree(subject) : undefined;
    if (!tree) throw new OAuthError("invalid_grant", "subject_token is not a perishable token");
    // A proof at a token endpoint names no access token (RFC 9449 §4.3: no ath); it proves the key.
    const presented: PresentedToken = { token: subject, tree, jkt: await proven() };
    issued = await delegateToken(ctx, presented, (parent) => body(parent.scopes), requestId, actor);
  } else if (JWT_TYPES.has(subjectType)) {
    if (!looksLikeJwt(subject) || !oidc.configured)
      throw new OAuthError("invalid_grant", "subject_token is not an identity token of a configured issuer");
    const verified = await verifyIdentity(oidc, subject, ctx.now());
    if (scope === undefined)
      throw new OAuthError("invalid_scope", "name the scopes of a root grant in scope");
    const request = body([]);
    const authority = workloadAuthority(verified, request.scopes);
    issued = await issueRootToken(ctx, authority, request, requestId, await proven(), actor);
  } else {
    throw new OAuthError("invalid_request", `unsupported subject_token_type ${subjectType}`);
  }
  return {
    access_token: issued.token,
    issued_token_type: ACCESS_TOKEN,
    token_type: issued.cnf ? "DPoP" : "Bearer",
    expires_in: Math.max(0, Math.round((Date.parse(issued.expiresAt) - ctx.now()) / 1000)),
    scope: issued.scopes.join(" "),
  };
};

/** A broker refusal in OAuth's words (RFC 6749 §5.2, RFC 8693 §2.2.2, RFC 9449 §5). */
export const oauthError = (error: unknown): OAuthError => {
  if (error instanceof OAuthError) return error;
  if (!(error instanceof BrokerError)) throw error;
  const { code, message, headers } = error;
  if (headers["www-authenticate"]?.includes("invalid_dpop_proof"))
    return new OAuthError("invalid_dpop_proof", message, 400, headers);
  switch (code) {
    case "token_invalid":
    case "token_expired":
    case "token_revoked":
    case "unauthenticated":
      return new OAuthError("invalid_grant", message);
    case "scope_denied":
    case "delegation_denied":
      return new OAuthError("invalid_scope", message);
    case "store_unavailable":
    case "upstream_error":
      return new OAuthError("temporarily_unavailable", message, 503, headers);
    default:
      return new OAuthError("invalid_request", message, 400, headers);
  }
};
