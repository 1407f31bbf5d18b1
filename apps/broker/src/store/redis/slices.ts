/** A slice a node holds of one lineage's limit: units it may spend without asking Redis. */
interface Slice {
  readonly levels: readonly string[];
  /** The rate window's index the units belong to (0 for maxUses, which has no window). */
  cur: number;
  left: number;
  /** Units asked for next time: doubles while slices run out, halves when one is given back. */
  want: number;
  lastUsed: number;
  /** Until when an empty lease is believed (nothing fitted): requests go to the script without asking again. */
  dryUntil: number;
  /** Gives `units` of this slice back to Redis (best effort). */
  readonly release: (cur: number, units: number) => void;
}

/** Reserves units of a rate limit on every level in Redis → [units taken, window index]. */
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
/** Reserves uses on every level with a maxUses in Redis → units taken (0: none may be leased). */
export type UseLeaseFn = (levels: readonly string[], want: number) => Promise<number>;
/** Gives unspent uses back (best effort). */
export type UseReturnFn = (levels: readonly string[], units: number) => void;

export interface SliceLeases {
  readonly rate: { readonly lease: LeaseFn; readonly giveBack: ReturnFn };
  /** Without it, a chain with a maxUses always goes to the script. */
  readonly uses?: { readonly lease: UseLeaseFn; readonly giveBack: UseReturnFn };
}

/** One request for a unit of a slice: which slice, and how to lease and give back more of it. */
interface Ask {
  readonly key: string;
  readonly levels: readonly string[];
  /** The rate window's index (0 for uses). */
  readonly cur: number;
  readonly now: number;
  /** The most units asked for at once. */
  readonly cap: number;
  readonly lease: (want: number) => Promise<readonly [number, number]>;
  readonly release: Slice["release"];
}

/** A slice unused this long is given back, so that other nodes can spend it. */
const IDLE_MS = 1_000;
/** How long a lease that got nothing is believed, unless the rate window turns first. */
const DRY_MS = 1_000;
/** The most uses asked for at once (the lease script also caps a slice at a sixteenth of the room left). */
const MAX_USES_WANT = 256;

/**
 * Leased slices of a lineage's limits: a node takes units from Redis in one script call (as
 * many as fit under the limit on the grant and every ancestor), spends them itself, and gives
 * back what it did not spend when a rate window turns, after a second unused, or when the lineage
 * is revoked. Redis's counters hold every unit any node may spend, so the cluster total never
 * passes the limit; what it costs is undershoot (units one node holds while another is refused),
 * kept small by sizing each slice by the node's own rate (doubling from 1) and capping it at a
 * sixteenth of the limit and of what is left.
 *
 * Rate limits lease units of the current fixed window's counters (`lease-scripts.ts` RATE_LEASE);
 * maxUses leases uses, added to `used` on every level that has one (USES_LEASE), never the last
 * sixteen: those go to the script one by one. docs/consistency.md, "Leased slices".
 */
export class Slices {
  readonly #slices = new Map<string, Slice>();
  readonly #pending = new Map<string, Promise<void>>();
  readonly #leases: SliceLeases;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(leases: SliceLeases) {
    this.#leases = leases;
  }

  /** Whether uses can be leased at all (else a chain with a maxUses goes to the script). */
  get leasesUses(): boolean {
    return this.#leases.uses !== undefined;
  }

  /** Spends one unit of the lineage's rate limit, leasing a slice when needed. → false: none fit (ask the script). */
  rate(
    levels: readonly string[],
    scope: string,
    window: number,
    limit: number,
    now: number,
  ): Promise<boolean> {
    const { lease, giveBack } = this.#leases.rate;
    return this.#take({
      key: `${levels.join(",")}|${scope}|${window}|${limit}`,
      levels,
      cur: Math.floor(now / window),
      now,
      cap: Math.floor(limit / 16),
      lease: (want) => lease(levels, scope, window, limit, want, now),
      release: (cur, units) => giveBack(levels, scope, cur, units),
    });
  }

  /** Spends one use of every maxUses in the chain, leasing a slice when needed. → false: ask the script. */
  use(levels: readonly string[], now: number): Promise<boolean> {
    const uses = this.#leases.uses;
    if (!uses) return Promise.resolve(false);
    return this.#take({
      key: `${levels.join(",")}|uses`,
      levels,
      cur: 0,
      now,
      cap: MAX_USES_WANT,
      lease: async (want) => [await uses.lease(levels, want), 0] as const,
      release: (_cur, units) => uses.giveBack(levels, units),
    });
  }

  /** Puts back one unit spent from the lineage's use slice (the request was refused after all). */
  unuse(levels: readonly string[]): void {
    const slice = this.#slices.get(`${levels.join(",")}|uses`);
    if (slice) slice.left += 1;
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

  async #take(ask: Ask): Promise<boolean> {
    const { key, cur, now } = ask;
    for (let attempt = 0; attempt < 2; attempt++) {
      if (this.#spend(key, cur, now)) return true;
      const slice = this.#slices.get(key);
      if (slice && slice.cur === cur && slice.dryUntil > now) return false;
      let pending = this.#pending.get(key);
      if (!pending) {
        pending = this.#renew(ask).finally(() => this.#pending.delete(key));
        this.#pending.set(key, pending);
      }
      await pending;
    }
    return this.#spend(key, cur, now);
  }

  #spend(key: string, cur: number, now: number): boolean {
    const slice = this.#slices.get(key);
    if (!slice || slice.cur !== cur || slice.left <= 0) return false;
    slice.left -= 1;
    slice.lastUsed = now;
    return true;
  }

  async #renew({ key, levels, cur, now, cap, lease, release }: Ask): Promise<void> {
    const old = this.#slices.get(key);
    let want = old?.want ?? 1;
    if (old && old.cur === cur && old.left <= 0)
      want *= 2; // ran out within its window: ask for more
    else if (old && old.left > 0) {
      this.#release(old); // its window turned: what it did not spend goes back
      want = Math.max(1, Math.floor(want / 2));
    }
    want = Math.max(1, Math.min(want, cap));
    const [taken, at] = await lease(want);
    const dryUntil = taken > 0 ? 0 : now + DRY_MS;
    this.#slices.set(key, { levels, cur: at, left: taken, want, lastUsed: now, dryUntil, release });
    this.#sweep();
  }

  #release(slice: Slice): void {
    if (slice.left > 0) slice.release(slice.cur, slice.left);
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
