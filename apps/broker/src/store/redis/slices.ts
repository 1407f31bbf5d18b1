/** A slice a node holds of one lineage's rate limit on one scope, for one fixed window. */
interface Slice {
  readonly levels: readonly string[];
  readonly scope: string;
  readonly window: number;
  cur: number;
  left: number;
  /** Units asked for next time: doubles while slices run out, halves when one is given back. */
  want: number;
  lastUsed: number;
}

/** Reserves units on every level in Redis → [units taken, window index]. */
export type LeaseFn = (
  levels: readonly string[],
  scope: string,
  window: number,
  limit: number,
  want: number,
  now: number,
) => Promise<readonly [number, number]>;
/** Gives unspent units back to a window's counters (best effort). */
export type ReturnFn = (levels: readonly string[], scope: string, cur: number, units: number) => void;

/** A slice unused this long is given back, so that other nodes can spend it. */
const IDLE_MS = 1_000;

/**
 * Leased slices of rate limits: a node takes units from Redis's counters in one script call
 * (as many as fit under the limit on the grant and every ancestor), spends them itself, and
 * gives back what it did not spend when the window turns, after a second unused, or when the
 * lineage is revoked. Redis's counters hold every unit any node may spend, so the cluster total
 * never passes the limit; what it costs is undershoot (units one node holds while another is
 * refused), kept small by sizing each slice by the node's own rate (doubling from 1) and capping
 * it at a sixteenth of the limit.
 */
export class RateSlices {
  readonly #slices = new Map<string, Slice>();
  readonly #pending = new Map<string, Promise<void>>();
  readonly #lease: LeaseFn;
  readonly #giveBack: ReturnFn;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(lease: LeaseFn, giveBack: ReturnFn) {
    this.#lease = lease;
    this.#giveBack = giveBack;
  }

  /** Spends one unit of the lineage's limit, leasing a slice when needed. → false: none fit (ask the script). */
  async take(
    levels: readonly string[],
    scope: string,
    window: number,
    limit: number,
    now: number,
  ): Promise<boolean> {
    const key = `${levels.join(",")}|${scope}|${window}|${limit}`;
    for (let attempt = 0; attempt < 2; attempt++) {
      if (this.#spend(key, Math.floor(now / window), now)) return true;
      let pending = this.#pending.get(key);
      if (!pending) {
        pending = this.#renew(key, levels, scope, window, limit, now).finally(() =>
          this.#pending.delete(key),
        );
        this.#pending.set(key, pending);
      }
      await pending;
    }
    return this.#spend(key, Math.floor(now / window), now);
  }

  /** Gives back and forgets the slices of lineages that hold any of these grants. */
  drop(grants: readonly string[]): void {
    if (grants.length === 0 || this.#slices.size === 0) return;
    const cut = new Set(grants);
    for (const [key, slice] of this.#slices) {
      if (!slice.levels.some((id) => cut.has(id))) continue;
      this.#release(slice);
      this.#slices.delete(key);
    }
  }

  /** Gives back and forgets every slice. */
  clear(): void {
    for (const slice of this.#slices.values()) this.#release(slice);
    this.#slices.clear();
  }

  stop(): void {
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    this.clear();
  }

  #spend(key: string, cur: number, now: number): boolean {
    const slice = this.#slices.get(key);
    if (!slice || slice.cur !== cur || slice.left <= 0) return false;
    slice.left -= 1;
    slice.lastUsed = now;
    return true;
  }

  async #renew(
    key: string,
    levels: readonly string[],
    scope: string,
    window: number,
    limit: number,
    now: number,
  ): Promise<void> {
    const old = this.#slices.get(key);
    const cur = Math.floor(now / window);
    let want = old?.want ?? 1;
    if (old && old.cur === cur && old.left <= 0)
      want *= 2; // ran out within its window: ask for more
    else if (old && old.left > 0) {
      this.#release(old); // its window turned: what it did not spend goes back
      want = Math.max(1, Math.floor(want / 2));
    }
    want = Math.max(1, Math.min(want, Math.floor(limit / 16)));
    const [taken, at] = await this.#lease(levels, scope, window, limit, want, now);
    this.#slices.set(key, { levels, scope, window, cur: at, left: taken, want, lastUsed: now });
    this.#sweep();
  }

  #release(slice: Slice): void {
    if (slice.left > 0) this.#giveBack(slice.levels, slice.scope, slice.cur, slice.left);
    slice.left = 0;
  }

  /** Gives back slices nobody spent from for a second. */
  #sweep(): void {
    if (this.#sweeper) return;
    this.#sweeper = setInterval(() => {
      const now = Date.now();
      for (const [key, slice] of this.#slices) {
        if (now - slice.lastUsed < IDLE_MS) continue;
        this.#release(slice);
        this.#slices.delete(key);
      }
      if (this.#slices.size === 0 && this.#sweeper) {
        clearInterval(this.#sweeper);
        this.#sweeper = undefined;
      }
    }, IDLE_MS);
    this.#sweeper.unref();
  }
}
