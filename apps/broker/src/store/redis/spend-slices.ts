import type { WorstCase } from "../../policy/pricing.js";
import type { BudgetLeft, Lease } from "../types.js";
import { decodeLeft } from "./codec.js";

/** What SPEND_LEASE reserved for a node (flight-scripts.ts), or null when nothing worth leasing fit. */
export interface SpendLease {
  readonly usd: number;
  readonly tokens: number;
  readonly slots: number;
  /** Whether a level limits the unit: a unit nobody limits is not reserved, only counted. */
  readonly limitsUsd: boolean;
  readonly limitsTokens: boolean;
  readonly member: string;
  /** The tightest level's room once this slice was reserved, as AUTHORIZE words it. */
  readonly left: BudgetLeft | undefined;
}

/** SPEND_LEASE's arguments after its key (the tree's flights), in the order flight-scripts.ts gives them. */
export const spendLeaseArgs = (
  base: string,
  id: string,
  until: number,
  want: { readonly usd: number; readonly tokens: number; readonly slots: number },
  least: WorstCase,
  levels: readonly string[],
): (string | number)[] => [
  base,
  Date.now(),
  id,
  until,
  want.usd,
  want.tokens,
  want.slots,
  least.usd,
  least.tokens,
  ...levels,
];

/** SPEND_LEASE's reply as a lease, or null when nothing fit. */
export const spendLeaseOf = (reply: readonly (string | number)[]): SpendLease | null =>
  reply.length < 7
    ? null
    : {
        usd: Number(reply[0]),
        tokens: Number(reply[1]),
        slots: Number(reply[2]),
        limitsUsd: reply[3] === 1,
        limitsTokens: reply[4] === 1,
        member: String(reply[5]),
        left: decodeLeft(String(reply[6])),
      };

export interface SpendLeaseFns {
  lease(
    levels: readonly string[],
    want: { readonly usd: number; readonly tokens: number; readonly slots: number },
    least: WorstCase,
    id: string,
    leaseUntil: number,
  ): Promise<SpendLease | null>;
  /** Settles a slice at what its requests cost (SETTLE): its reservation and slots go back. */
  settle(levels: readonly string[], member: string, usd: number, tokens: number): Promise<void>;
  /**
   * Extends a slice's lease (ZADD XX GT CH), so that a live node's slice is not charged in full.
   * → false when it is gone (its lease ran out and it was charged in full, its slots freed).
   */
  renew(levels: readonly string[], member: string, until: number): Promise<boolean>;
}

/** One slice of a lineage's spend on this node. */
interface Slice {
  readonly levels: readonly string[];
  readonly lease: SpendLease;
  freeUsd: number;
  freeTokens: number;
  freeSlots: number;
  spentUsd: number;
  spentTokens: number;
  /** Requests served from it that have not settled. */
  open: number;
  lastUsed: number;
  leaseUntil: number;
  /** No more requests from it (revoked, stale, lease in doubt, overspent): it settles when the last one does. */
  closed: boolean;
}

/** A request served from a slice: what it reserved there, until it settles. */
export class SpentFromSlice {
  #done = false;
  constructor(
    readonly slice: Slice,
    readonly usd: number,
    readonly tokens: number,
    readonly owner: SpendSlices,
  ) {}

  /** Charges the request what it cost (null: its full reservation) and gives its slot back. Once. */
  close(cost: WorstCase | null): void {
    if (this.#done) return;
    this.#done = true;
    this.owner.settleOne(this, cost);
  }
}

/** A slice unused this long is settled, so that its reservation and slots go back. */
const IDLE_MS = 1_000;
/** Requests a slice is sized for, at most (it doubles from 1 while slices run out). */
const MAX_WANT = 64;
/** An empty lease is believed this long: meanwhile the lineage's requests go to the script. */
const DRY_MS = 1_000;

/**
 * Leased slices of budgets and maxConcurrent (docs/consistency.md, "Leased slices"). A node
 * reserves money, tokens and slots for k requests at once as one flight (SPEND_LEASE), serves
 * requests from it — each reserving its worst case and a slot locally, and charged locally what
 * it cost when it ends — and settles the whole slice at what its requests cost (SETTLE) when it is
 * idle for a second, revoked or closed and its last request has ended. Redis holds every unit
 * any node may spend as reserved, so no level's spent + reserved passes its budget and no
 * level's slots pass maxConcurrent; a node that dies holding a slice is charged it in full and
 * its slots are freed when its lease ends, as any flight.
 */
export class SpendSlices {
  readonly #fns: SpendLeaseFns;
  #leaseMs: number;
  readonly #slices = new Map<string, Slice[]>();
  readonly #pending = new Map<string, Promise<void>>();
  readonly #want = new Map<string, number>();
  readonly #dry = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;

  /** `leaseMs`: until the first lease says how long flights' leases are (budgets.lease). */
  constructor(fns: SpendLeaseFns, leaseMs = 30_000) {
    this.#fns = fns;
    this.#leaseMs = leaseMs;
  }

  /**
   * Reserves one request's worst case and a slot from a slice of the lineage, leasing one when
   * needed. → undefined: the script decides (nothing fit, an unpriced request under a budget).
   */
  async take(
    levels: readonly string[],
    worst: WorstCase | null,
    now: number,
    lease: Lease,
  ): Promise<SpentFromSlice | undefined> {
    const key = levels.join(",");
    this.#leaseMs = Math.max(1, lease.until - now);
    for (let attempt = 0; attempt < 2; attempt++) {
      const slice = this.#find(key, worst, now);
      if (slice === null) return undefined;
      if (slice) return this.#reserve(slice, worst, now);
      if ((this.#dry.get(key) ?? 0) > now) return undefined;
      let pending = this.#pending.get(key);
      if (!pending) {
        pending = this.#lease(key, levels, worst, now, lease).finally(() => this.#pending.delete(key));
        this.#pending.set(key, pending);
      }
      await pending;
    }
    const slice = this.#find(key, worst, now);
    return slice ? this.#reserve(slice, worst, now) : undefined;
  }

  /** What is left of the lineage's tightest budget as this node sees it (the slice's view), for the answer's header. */
  left(spent: SpentFromSlice): BudgetLeft | undefined {
    const { lease, freeUsd, freeTokens } = spent.slice;
    if (!lease.left) return undefined;
    return {
      ...(lease.left.usd
        ? { usd: { left: lease.left.usd.left + freeUsd, limit: lease.left.usd.limit } }
        : {}),
      ...(lease.left.tokens
        ? { tokens: { left: lease.left.tokens.left + freeTokens, limit: lease.left.tokens.limit } }
        : {}),
    };
  }

  /** Closes the slices of lineages that hold any of these grants: they settle when their last request ends. */
  drop(grants: readonly string[]): void {
    if (grants.length === 0 || this.#slices.size === 0) return;
    const cut = new Set(grants);
    for (const slice of this.#all()) if (slice.levels.some((id) => cut.has(id))) this.#close(slice);
  }

  /** Closes every slice. */
  clear(): void {
    for (const slice of this.#all()) this.#close(slice);
  }

  /** Every slice, as a list of its own: closing one takes it out of the book. */
  #all(): Slice[] {
    return [...this.#slices.values()].flat();
  }

  stop(): void {
    this.clear();
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** @internal SpentFromSlice.close */
  settleOne(spent: SpentFromSlice, cost: WorstCase | null): void {
    const slice = spent.slice;
    const usd = Math.max(0, cost ? cost.usd : spent.usd);
    const tokens = Math.max(0, cost ? cost.tokens : spent.tokens);
    slice.spentUsd += usd;
    slice.spentTokens += tokens;
    // Only a unit some level limits is held in the slice; the other is only counted.
    if (slice.lease.limitsUsd) slice.freeUsd += spent.usd - usd;
    if (slice.lease.limitsTokens) slice.freeTokens += spent.tokens - tokens;
    slice.freeSlots += 1;
    slice.open -= 1;
    // Spent past what it reserved (an answer that cost more than its bound): serve nothing more from it.
    if (slice.freeUsd < 0 || slice.freeTokens < 0) this.#close(slice);
    else if (slice.closed && slice.open === 0) this.#settle(slice);
  }

  /** A slice that can hold this request; null: none ever could here (the script words it); undefined: lease one. */
  #find(key: string, worst: WorstCase | null, now: number): Slice | null | undefined {
    const list = this.#slices.get(key);
    if (!list) return undefined;
    // Unpriced under a budget: refused, and the script says why.
    if (!worst && list.some((s) => s.lease.limitsUsd || s.lease.limitsTokens)) return null;
    for (const slice of [...list]) {
      if (slice.closed || slice.freeSlots < 1 || slice.leaseUntil - this.#leaseMs / 3 <= now) continue;
      if (
        (slice.lease.limitsUsd && slice.freeUsd < worst!.usd) ||
        (slice.lease.limitsTokens && slice.freeTokens < worst!.tokens)
      ) {
        // Too little left for a request like this one: settled now if nothing runs on it, not held idle.
        if (slice.open === 0) this.#close(slice);
        continue;
      }
      return slice;
    }
    return undefined;
  }

  #reserve(slice: Slice, worst: WorstCase | null, now: number): SpentFromSlice {
    const usd = Math.max(0, worst?.usd ?? 0);
    const tokens = Math.max(0, worst?.tokens ?? 0);
    if (slice.lease.limitsUsd) slice.freeUsd -= usd;
    if (slice.lease.limitsTokens) slice.freeTokens -= tokens;
    slice.freeSlots -= 1;
    slice.open += 1;
    slice.lastUsed = now;
    return new SpentFromSlice(slice, usd, tokens, this);
  }

  async #lease(
    key: string,
    levels: readonly string[],
    worst: WorstCase | null,
    now: number,
    asked: Lease,
  ): Promise<void> {
    const want = Math.min(MAX_WANT, this.#want.get(key) ?? 1);
    const usd = Math.max(0, worst?.usd ?? 0);
    const tokens = Math.max(0, worst?.tokens ?? 0);
    const leaseUntil = asked.until;
    const lease = await this.#fns.lease(
      levels,
      { usd: Math.max(want * usd, want), tokens: Math.max(want * tokens, want), slots: want },
      worst ? { usd, tokens } : { usd: -1, tokens: -1 }, // -1: unpriced, no slice under a budget
      `${asked.id}s`,
      leaseUntil,
    );
    if (!lease) {
      this.#dry.set(key, now + DRY_MS);
      this.#want.delete(key);
      return;
    }
    this.#want.set(key, want * 2);
    const slice: Slice = {
      levels,
      lease,
      freeUsd: lease.usd,
      freeTokens: lease.tokens,
      freeSlots: lease.slots,
      spentUsd: 0,
      spentTokens: 0,
      open: 0,
      lastUsed: now,
      leaseUntil,
      closed: false,
    };
    const list = this.#slices.get(key);
    if (list) list.push(slice);
    else this.#slices.set(key, [slice]);
    this.#tick();
  }

  #close(slice: Slice): void {
    slice.closed = true;
    if (slice.open === 0) this.#settle(slice);
  }

  /** Settles a slice at what its requests cost and forgets it; a settle that fails leaves it to its lease (charged in full). */
  #settle(slice: Slice): void {
    const key = slice.levels.join(",");
    const list = this.#slices.get(key);
    const at = list?.indexOf(slice) ?? -1;
    if (at < 0) return;
    list!.splice(at, 1);
    if (list!.length === 0) this.#slices.delete(key);
    this.#fns.settle(slice.levels, slice.lease.member, slice.spentUsd, slice.spentTokens).catch(() => {});
  }

  /** Every third of a lease: renews what is held, closes what is idle or whose lease is in doubt. */
  #tick(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.#renew(), Math.max(100, Math.min(IDLE_MS, this.#leaseMs / 3)));
    this.#timer.unref();
  }

  async #renew(): Promise<void> {
    const now = Date.now();
    const held: Slice[] = [];
    for (const slice of this.#all()) {
      if (!slice.closed && slice.open === 0 && now - slice.lastUsed >= IDLE_MS) {
        this.#want.delete(slice.levels.join(",")); // the next slice of an idle lineage starts small again
        this.#close(slice);
      } else held.push(slice);
    }
    if (held.length === 0) {
      if (this.#slices.size === 0 && this.#timer) {
        clearInterval(this.#timer);
        this.#timer = undefined;
      }
      return;
    }
    for (const [key, at] of this.#dry) if (at <= now) this.#dry.delete(key);
    const until = now + this.#leaseMs;
    await Promise.all(
      held.map(async (slice) => {
        try {
          if (await this.#fns.renew(slice.levels, slice.lease.member, until))
            slice.leaseUntil = Math.max(slice.leaseUntil, until);
          // Gone from Redis (charged in full, its slots freed): serve nothing more from it.
          else this.#close(slice);
        } catch {
          // Not renewed: it stops serving a third of a lease before its end (#find).
        }
      }),
    );
  }
}
