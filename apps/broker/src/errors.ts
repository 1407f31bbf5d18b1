import { callerText, ERROR_CATALOG, type ErrorCode } from "@perishable/protocol";
import type { Subject } from "./store/types.js";

/**
 * A failure with a wire code: what use cases throw and the HTTP layer turns into the error
 * envelope. The message is shown to the caller and lands in the `denied` event, and it often
 * quotes what the caller sent (a scope, a field, a model): it goes through `callerText` here,
 * once for every message, so a token sent by mistake is masked and control characters cannot
 * reach an operator's terminal.
 */
export class BrokerError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra response headers, such as Retry-After. */
  readonly headers: Readonly<Record<string, string>>;
  /** Whose request was refused, when known: the audit trail's `denied` event names it. */
  readonly subject: Subject | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    headers: Readonly<Record<string, string>> = {},
    subject: Subject | undefined = undefined,
  ) {
    super(callerText(message, 1024));
    this.name = "BrokerError";
    this.code = code;
    this.status = ERROR_CATALOG[code].status;
    this.headers = headers;
    this.subject = subject;
  }
}

/** A BrokerError as a value (to answer with); anything else is rethrown. For `.catch(refusal)`. */
export const refusal = (error: unknown): BrokerError => {
  if (error instanceof BrokerError) return error;
  throw error;
};

/** The message each store denial code gets when a use case passes it on. */
export const DENIAL_MESSAGES = {
  token_invalid: "the token is not valid",
  token_expired: "the token has expired; refresh it before it does",
  token_revoked: "the token has been revoked",
  scope_denied: "no scope of this token allows this request",
  constraint_denied: "the request body breaks a constraint of the token's scope",
  rate_limited: "rate limit reached",
  budget_exhausted: "the budget cannot cover this request",
  concurrency_limited: "too many requests of this grant are in flight",
  forbidden: "the grant has used all of its maxUses",
  ttl_exceeded: "the requested ttl is above the grant's max_ttl",
  delegation_denied: "the grant has made as many child grants as limits.max_children allows",
} as const satisfies Partial<Record<ErrorCode, string>>;
