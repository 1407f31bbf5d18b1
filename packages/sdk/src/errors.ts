import { ERROR_CATALOG, type ErrorCode, isErrorCode } from "@perishable/protocol";

/**
 * The codes a PerishableError can carry: every wire code, plus `broker_unreachable` for the
 * failures that happen before the broker can answer (network error, timeout, a proxy in front
 * of the broker answering 5xx without the envelope).
 */
export type SdkErrorCode = ErrorCode | "broker_unreachable";

/** A runtime failure with a stable code. Misuse (bad options) is a TypeError instead. */
export class PerishableError extends Error {
  readonly code: SdkErrorCode;
  /** HTTP status from the broker, when it answered. */
  readonly status: number | undefined;
  /** The broker's request id, for support and the audit trail. */
  readonly requestId: string | undefined;
  /** True when the same call may succeed later without any change. */
  readonly retryable: boolean;

  constructor(
    code: SdkErrorCode,
    message: string,
    details: { status?: number; requestId?: string; cause?: unknown } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "PerishableError";
    this.code = code;
    this.status = details.status;
    this.requestId = details.requestId;
    // The catalog decides, for every wire code; a broker that could not be reached may answer later.
    this.retryable = code === "broker_unreachable" || (isErrorCode(code) && ERROR_CATALOG[code].retryable);
  }
}

export const isPerishableError = (error: unknown, code?: SdkErrorCode): error is PerishableError =>
  error instanceof PerishableError && (code === undefined || error.code === code);
