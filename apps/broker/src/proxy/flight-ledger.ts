import { randomBytes } from "node:crypto";
import { DEFAULTS } from "../config/defaults.js";
import type { WorstCase } from "../policy/pricing.js";
import type { Flight, Lease, Settlement, Store } from "../store/types.js";

export interface FlightLedgerOptions {
  readonly store: Store;
  /** How long a flight's reservation and slot live unless renewed (budgets.lease). */
  readonly leaseMs: number;
  readonly now?: () => number;
  /** Told when a batch could not be written (it is kept and tried again). */
  readonly onError?: (message: string, error: unknown) => void;
}

/**
 * This node's side of the flights of tracked lineages (see store/redis/flight-scripts.ts): names
 * each request's lease, renews the leases of requests still open (a long stream keeps its slot
 * and its reservation), and settles finished ones off the request path, in batches like the
 * audit trail. Whatever it cannot write in time errs toward charging: a flight whose lease runs
 * out is charged its full reservation by the store, never less.
 */
export class FlightLedger {
  readonly #store: Store;
  readonly #leaseMs: number;
  readonly #now: () => number;
  readonly #onError: (message: string, error: unknown) => void;
  readonly #prefix = randomBytes(6).toString("base64url");
  #counter = 0;
  readonly #open = new Set<Flight>();
  #queue: Settlement[] = [];
  #flushTimer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  #flushing: Promise<void> | undefined;
  readonly #renewTimer: NodeJS.Timeout;
  #lastErrorAt = 0;

  constructor(options: FlightLedgerOptions) {
    this.#store = options.store;
    this.#leaseMs = options.leaseMs;
    this.#now = options.now ?? Date.now;
    this.#onError = options.onError ?? (() => {});
    this.#renewTimer = setInterval(() => void this.#renew(), Math.max(500, Math.floor(this.#leaseMs / 3)));
    this.#renewTimer.unref();
  }

  /** A lease for a request about to be authorised: unique across nodes, ending leaseMs from now. */
  lease(now: number): Lease {
    return { id: `${this.#prefix}${(this.#counter++).toString(36)}`, until: now + this.#leaseMs };
  }

  /** A flight the store opened: renewed until it closes. */
  open(flight: Flight): void {
    this.#open.add(flight);
  }

  /** The request is over: settle it at `cost`, or at its full reservation when cost is null. */
  close(flight: Flight, cost: WorstCase | null): void {
    this.#open.delete(flight);
    this.#queue.push({ flight, cost });
    // Written on the next turn of the event loop: the requests that end together settle in one
    // batch, and a slot is free again before this node can authorise the caller's next request
    // (its script goes out on the same connection after this one).
    if (this.#queue.length >= DEFAULTS.budgets.settleBatch) void this.flush();
    else if (!this.#immediate) this.#immediate = setImmediate(() => void this.flush());
  }

  /** Requests in flight on this node that belong to tracked lineages. */
  get inFlight(): number {
    return this.#open.size;
  }

  /** Writes what is queued (resolves when written or when the store refused; then it waits for the next try). */
  flush(): Promise<void> {
    if (this.#immediate) {
      clearImmediate(this.#immediate);
      this.#immediate = undefined;
    }
    if (this.#flushTimer) {
      clearTimeout(this.#flushTimer);
      this.#flushTimer = undefined;
    }
    this.#flushing ??= this.#drain().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  /** Settles everything queued and stops renewing (the broker is closing). */
  async stop(): Promise<void> {
    clearInterval(this.#renewTimer);
    await this.flush();
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.slice(0, DEFAULTS.budgets.settleBatch);
      try {
        await this.#store.settle(batch);
      } catch (error) {
        this.#report("could not settle flights; trying again (an expired lease is charged in full)", error);
        if (!this.#flushTimer) {
          this.#flushTimer = setTimeout(() => void this.flush(), 1_000);
          this.#flushTimer.unref();
        }
        return;
      }
      this.#queue.splice(0, batch.length);
    }
  }

  async #renew(): Promise<void> {
    if (this.#open.size === 0) return;
    try {
      await this.#store.renew([...this.#open], this.#now() + this.#leaseMs);
    } catch (error) {
      this.#report("could not renew flight leases", error);
    }
  }

  #report(message: string, error: unknown): void {
    const now = Date.now();
    if (now - this.#lastErrorAt < 10_000) return;
    this.#lastErrorAt = now;
    this.#onError(message, error);
  }
}
