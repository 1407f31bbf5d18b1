import { DEFAULTS } from "../config/defaults.js";
import type { Store } from "../store/types.js";
import type { AuditLog } from "./audit-log.js";

/**
 * Writes `expired` events: every second it claims the grants whose newest token has expired
 * (each claimed by exactly one broker node) and audits them. A store outage only delays them.
 */
export class ExpiryWatcher {
  readonly #store: Store;
  readonly #audit: AuditLog;
  readonly #now: () => number;
  readonly #timer: NodeJS.Timeout;
  #running: Promise<void> | undefined;

  constructor(options: { store: Store; audit: AuditLog; now: () => number; intervalMs?: number }) {
    this.#store = options.store;
    this.#audit = options.audit;
    this.#now = options.now;
    this.#timer = setInterval(() => void this.tick(), options.intervalMs ?? DEFAULTS.expiryIntervalMs);
    this.#timer.unref();
  }

  /** One round of claims; safe to call at any time (rounds never overlap). */
  tick(): Promise<void> {
    this.#running ??= this.#claim().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }

  async #claim(): Promise<void> {
    try {
      for (;;) {
        const now = this.#now();
        const expired = await this.#store.claimExpired(now, 500);
        for (const { subject, reason } of expired)
          this.#audit.record("expired", subject, null, now, { reason });
        if (expired.length < 500) return;
      }
    } catch {
      // Store unavailable: the claims stay due and are taken on a later round.
    }
  }
}
