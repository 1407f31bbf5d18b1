import pRetry from "p-retry";
import { isPerishableError, PerishableError } from "../errors.js";

/** A token as the keeper holds it. Times are milliseconds on the local clock. */
export interface HeldToken {
  readonly token: string;
  readonly tokenId: string;
  /** When it was issued, at the latest (the moment the request for it was sent). */
  readonly issuedAt: number;
  /** When it stops working (issuedAt + its lifetime: never later than the broker's view). */
  readonly expiresAt: number;
  /** The grant's end: no refresh reaches past it. */
  readonly notAfter: number;
  /** The broker's own statement of the expiry (ISO-8601), for display. */
  readonly expiresAtIso: string;
}

export type KeeperState = "live" | "expired" | "revoked" | "closed";

export interface KeeperHooks {
  refreshed(next: HeldToken, previous: HeldToken): void;
  expired(last: HeldToken, reason: "token" | "grant"): void;
  revoked(last: HeldToken, error: PerishableError | undefined): void;
  error(error: Error, willRetry: boolean, attempt: number): void;
}

export interface KeeperOptions {
  readonly initial: HeldToken;
  /** Asks the broker for a new token of the same grant. Throws PerishableError on failure. */
  readonly refresh: (current: HeldToken, signal: AbortSignal) => Promise<HeldToken>;
  readonly hooks: KeeperHooks;
  readonly now: () => number;
  readonly random: () => number;
  /** Fraction of the lifetime at which to refresh (0.5: half the TTL). */
  readonly refreshAt: number;
  /** Jitter around that point, as a fraction of the lifetime (0.1: ±10 %). */
  readonly jitter: number;
  /** Backoff between failed attempts. */
  readonly backoff: { readonly minMs: number; readonly maxMs: number };
}

/**
 * Keeps one grant's current token fresh, as jose's remote JWKS keeps its keys: one refresh in
 * flight at a time (callers share it), a sequence number so a late answer never replaces a newer
 * token, a timeout on every call (the transport's). Refreshes at `refreshAt` of the lifetime with
 * jitter; while the current token is valid, failures are retried with backoff; when it cannot be
 * refreshed in time the state becomes `expired`; a `token_revoked` answer makes it `revoked` at
 * once. Timers are unref'd, and `close()` leaves none behind.
 */
export class TokenKeeper {
  readonly #o: KeeperOptions;
  #current: HeldToken;
  #state: KeeperState = "live";
  #inflight: Promise<HeldToken> | undefined;
  #abort: AbortController | undefined;
  #seq = 0;
  #installed = 0;
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  #expiryTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: KeeperOptions) {
    this.#o = options;
    this.#current = options.initial;
    this.#schedule();
  }

  get current(): HeldToken {
    return this.#current;
  }

  get state(): KeeperState {
    return this.#state;
  }

  /** Whether the grant can still get a token that lives longer than the current one. */
  get canRefresh(): boolean {
    return this.#current.expiresAt < this.#current.notAfter;
  }

  /** The current token when it is still usable, else the PerishableError that explains why not. */
  usable(): HeldToken | PerishableError {
    if (this.#state === "live" && this.#o.now() >= this.#current.expiresAt) this.#expire();
    switch (this.#state) {
      case "live":
        return this.#current;
      case "expired":
        return new PerishableError(
          "token_expired",
          "the session's token expired before it could be refreshed",
        );
      case "revoked":
        return new PerishableError("token_revoked", "the session's grant has been revoked");
      case "closed":
        return new PerishableError("token_invalid", "the session is closed");
    }
  }

  /** A new token now (single-flight: concurrent callers get the same answer). */
  refresh(): Promise<HeldToken> {
    const usable = this.usable();
    if (usable instanceof PerishableError) return Promise.reject(usable);
    if (!this.canRefresh) {
      return Promise.reject(
        new PerishableError("token_expired", "the grant ends with the current token; it cannot be refreshed"),
      );
    }
    this.#inflight ??= this.#run().finally(() => {
      this.#inflight = undefined;
      this.#abort = undefined;
    });
    return this.#inflight;
  }

  /** The broker said `token_revoked`: terminal, whoever noticed. */
  markRevoked(error?: PerishableError): void {
    if (this.#state !== "live") return;
    this.#state = "revoked";
    this.#stop();
    this.#o.hooks.revoked(this.#current, error);
  }

  close(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#stop();
  }

  async #run(): Promise<HeldToken> {
    const seq = ++this.#seq;
    const abort = new AbortController();
    this.#abort = abort;
    const deadline = this.#current.expiresAt;
    let attempt = 0;
    // An attempt that ignores the signal must not hold a closed keeper's promise open forever.
    const aborted = new Promise<never>((_, reject) => {
      abort.signal.addEventListener("abort", () => reject(abort.signal.reason), { once: true });
    });
    try {
      const retrying = pRetry(
        () => {
          attempt += 1;
          return this.#o.refresh(this.#current, abort.signal);
        },
        {
          retries: Number.POSITIVE_INFINITY,
          minTimeout: this.#o.backoff.minMs,
          // Never wait so long that the token dies between two attempts: at most a quarter of
          // what is left of its life, so there are several tries before it expires.
          maxTimeout: Math.max(
            this.#o.backoff.minMs,
            Math.min(this.#o.backoff.maxMs, (deadline - this.#o.now()) / 4),
          ),
          factor: 2,
          randomize: true,
          unref: true,
          signal: abort.signal,
          // Keep trying only while the current token is alive and a wait still ends before it dies.
          shouldRetry: ({ error }) =>
            this.#state === "live" && isRetryable(error) && this.#o.now() + this.#o.backoff.minMs < deadline,
          onFailedAttempt: ({ error }) => {
            const willRetry =
              this.#state === "live" &&
              isRetryable(error) &&
              this.#o.now() + this.#o.backoff.minMs < deadline;
            this.#o.hooks.error(error, willRetry, attempt);
          },
        },
      );
      const next = await Promise.race([retrying, aborted]);
      if (this.#state === "live" && seq > this.#installed) {
        const previous = this.#current;
        this.#current = next;
        this.#installed = seq;
        this.#schedule();
        this.#o.hooks.refreshed(next, previous);
      }
      return this.#current;
    } catch (error) {
      if (isPerishableError(error, "token_revoked")) this.markRevoked(error);
      else if (isPerishableError(error, "token_expired") || isPerishableError(error, "token_invalid"))
        this.#expire();
      throw this.#state === "live" ? error : this.usable();
    }
  }

  #schedule(): void {
    this.#clearTimers();
    if (this.#state !== "live") return;
    const { issuedAt, expiresAt } = this.#current;
    const now = this.#o.now();
    this.#expiryTimer = unref(setTimeout(() => this.usable(), Math.max(0, expiresAt - now)));
    if (!this.canRefresh) return;
    const lifetime = expiresAt - issuedAt;
    const spread = (this.#o.random() * 2 - 1) * this.#o.jitter * lifetime;
    const at = issuedAt + lifetime * this.#o.refreshAt + spread;
    this.#refreshTimer = unref(
      setTimeout(
        () => {
          this.refresh().catch(() => {
            // Reported through hooks.error / expired / revoked; nobody awaits a scheduled refresh.
          });
        },
        Math.max(0, at - now),
      ),
    );
  }

  #expire(): void {
    if (this.#state !== "live") return;
    this.#state = "expired";
    this.#stop();
    this.#o.hooks.expired(
      this.#current,
      this.#current.expiresAt >= this.#current.notAfter ? "grant" : "token",
    );
  }

  #stop(): void {
    this.#clearTimers();
    this.#abort?.abort();
  }

  #clearTimers(): void {
    if (this.#refreshTimer) clearTimeout(this.#refreshTimer);
    if (this.#expiryTimer) clearTimeout(this.#expiryTimer);
    this.#refreshTimer = undefined;
    this.#expiryTimer = undefined;
  }
}

const isRetryable = (error: unknown): boolean => !(error instanceof PerishableError) || error.retryable;

/** Timers never keep a process alive (Node, Bun, Deno have unref; browsers return a number). */
const unref = <T>(timer: T): T => {
  (timer as { unref?: () => void }).unref?.();
  return timer;
};
