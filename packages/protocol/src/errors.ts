/**
 * The closed list of error codes on the wire. Every error the broker returns and every
 * `PerishableError` the SDK throws carries exactly one of these. Adding a code means adding
 * it here, to the catalog below (the compiler insists), and to docs/errors.md (a test insists).
 */
export const ERROR_CODES = [
  "bad_request",
  "unauthenticated",
  "token_invalid",
  "token_expired",
  "token_revoked",
  "scope_denied",
  "constraint_denied",
  "rate_limited",
  "budget_exhausted",
  "concurrency_limited",
  "ttl_exceeded",
  "delegation_denied",
  "upstream_unknown",
  "upstream_error",
  "upstream_timeout",
  "store_unavailable",
  "not_found",
  "forbidden",
  "payload_too_large",
  "headers_too_large",
  "internal_error",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface ErrorSpec {
  /** HTTP status the broker answers with. */
  readonly status: number;
  /** True when the very same request may succeed later without any change by the caller. */
  readonly retryable: boolean;
  /** One line for humans; the source of docs/errors.md. */
  readonly summary: string;
}

export const ERROR_CATALOG: Readonly<Record<ErrorCode, ErrorSpec>> = Object.freeze({
  bad_request: {
    status: 400,
    retryable: false,
    summary: "The request is malformed: bad JSON, wrong types, unknown fields or an unusable path.",
  },
  unauthenticated: {
    status: 401,
    retryable: false,
    summary: "No credential, or a credential that is not a known issuer key, admin key or token.",
  },
  token_invalid: {
    status: 401,
    retryable: false,
    summary: "The token is malformed or unknown to the broker.",
  },
  token_expired: {
    status: 401,
    retryable: false,
    summary: "The token (or its grant) has expired; refresh before it does.",
  },
  token_revoked: {
    status: 401,
    retryable: false,
    summary: "The token's grant, or one of its ancestors, has been revoked. Terminal.",
  },
  scope_denied: {
    status: 403,
    retryable: false,
    summary:
      "None of the token's scopes allows this upstream, path and method, or an issuer asked for more than its ceiling.",
  },
  constraint_denied: {
    status: 403,
    retryable: false,
    summary: "The request body breaks a scope constraint (model not allowed, max_tokens above the ceiling).",
  },
  rate_limited: {
    status: 429,
    retryable: true,
    summary: "The scope's rate limit for this grant (or an ancestor) is used up; see Retry-After.",
  },
  budget_exhausted: {
    status: 402,
    retryable: false,
    summary:
      "The grant's budget (or an ancestor's) cannot cover this request's worst case; also sent with x-should-retry: false.",
  },
  concurrency_limited: {
    status: 429,
    retryable: true,
    summary: "The grant (or an ancestor) has maxConcurrent requests in flight already; see Retry-After.",
  },
  ttl_exceeded: {
    status: 400,
    retryable: false,
    summary: "The requested ttl or lifetime is above what the issuer or the parent grant allows.",
  },
  delegation_denied: {
    status: 403,
    retryable: false,
    summary: "A child grant would hold more than its parent, or the lineage is already at max_depth.",
  },
  upstream_unknown: { status: 404, retryable: false, summary: "No upstream of that name is configured." },
  upstream_error: {
    status: 502,
    retryable: true,
    summary: "The upstream could not be reached or failed before answering.",
  },
  upstream_timeout: { status: 504, retryable: true, summary: "The upstream did not answer in time." },
  store_unavailable: {
    status: 503,
    retryable: true,
    summary: "The broker cannot reach its store; it fails closed.",
  },
  not_found: { status: 404, retryable: false, summary: "No such route or resource." },
  forbidden: {
    status: 403,
    retryable: false,
    summary: "The credential is valid but may not do this (e.g. a grant's maxUses is spent).",
  },
  payload_too_large: {
    status: 413,
    retryable: false,
    summary: "The request body is larger than the broker accepts.",
  },
  headers_too_large: {
    status: 431,
    retryable: false,
    summary: "The request headers (or one of them) are larger than the broker accepts.",
  },
  internal_error: {
    status: 500,
    retryable: false,
    summary: "Something unexpected happened in the broker; the message carries no internals.",
  },
});

export const isErrorCode = (value: unknown): value is ErrorCode =>
  typeof value === "string" && Object.hasOwn(ERROR_CATALOG, value);

/** The body of every error response: `{ "error": { code, message, requestId } }`. */
export interface ErrorEnvelope {
  readonly error: {
    readonly code: ErrorCode;
    readonly message: string;
    readonly requestId: string;
  };
}

export const errorEnvelope = (code: ErrorCode, message: string, requestId: string): ErrorEnvelope => ({
  error: { code, message, requestId },
});
