import type { Reason } from "../reason.js";
import type {
  AuthorizeDenial,
  BudgetLeft,
  Denied,
  Flight,
  Lease,
  Settlement,
  SpendState,
  Subject,
  WorstCaseOrNone,
} from "../types.js";
import { deny, type MemoryState, type StoredGrant } from "./state.js";

/** A request in flight, as the memory store keeps it (the twin of a member of the tree's `fl` set). */
export interface MemoryFlight {
  readonly member: string;
  readonly levels: readonly string[];
  readonly usd: number;
  readonly tokens: number;
  until: number;
}

export type MutableSpend = { -readonly [K in keyof SpendState]: SpendState[K] };

export const noSpend = (): MutableSpend => ({
  spentUsd: 0,
  spentTokens: 0,
  reservedUsd: 0,
  reservedTokens: 0,
  inFlight: 0,
});

/** Settles one flight at its cost, or its reservation when cost is null; false if it already settled. */
export const settleFlight = (state: MemoryState, settlement: Settlement): boolean => {
  const open = state.flights.get(settlement.flight.tree);
  const flight = open?.get(settlement.flight.member);
  if (!open || !flight) return false;
  open.delete(flight.member);
  const cost = settlement.cost ?? { usd: flight.usd, tokens: flight.tokens };
  for (const id of flight.levels) {
    const grant = state.grants.get(id);
    if (!grant) continue; // purged or expired: not brought back by its counters
    grant.spend.reservedUsd -= flight.usd;
    grant.spend.reservedTokens -= flight.tokens;
    grant.spend.spentUsd += cost.usd;
    grant.spend.spentTokens += cost.tokens;
    grant.spend.inFlight -= 1;
  }
  return true;
};

/**
 * The twin of `reserve()` in flight-scripts.ts: settles the tree's flights whose lease ran out (at
 * their full reservation), then checks every level's budget and slots. → a denial, or what the
 * tightest level has left once this request is reserved.
 */
export const checkFlight = (
  state: MemoryState,
  tree: string,
  levels: readonly StoredGrant[],
  worst: WorstCaseOrNone,
  scope: string,
  subject: Subject,
  now: number,
): { readonly denied: Denied<AuthorizeDenial> } | { readonly left: BudgetLeft | undefined } => {
  for (const flight of [...(state.flights.get(tree)?.values() ?? [])])
    if (flight.until <= now) settleFlight(state, { flight: { tree, member: flight.member }, cost: null });
  let usd: { left: number; limit: number } | undefined;
  let tokens: { left: number; limit: number } | undefined;
  for (const [i, level] of levels.entries()) {
    const above = i === 0 ? {} : { ancestor: level.record.id };
    const { budget, maxConcurrent } = level.record;
    const s = level.spend;
    if (budget && worst === null)
      return { denied: deny("constraint_denied", subject, { kind: "unbudgeted", scope }) };
    const need = worst ?? { usd: 0, tokens: 0 };
    if (budget?.usd !== undefined && s.spentUsd + s.reservedUsd + need.usd > budget.usd)
      return { denied: deny("budget_exhausted", subject, budgetReason("usd", budget.usd, above)) };
    if (budget?.tokens !== undefined && s.spentTokens + s.reservedTokens + need.tokens > budget.tokens)
      return { denied: deny("budget_exhausted", subject, budgetReason("tokens", budget.tokens, above)) };
    if (maxConcurrent !== undefined && s.inFlight + 1 > maxConcurrent)
      return {
        denied: {
          ...deny("concurrency_limited", subject, { kind: "concurrency", limit: maxConcurrent, ...above }),
          retryAfterMs: 1000,
        },
      };
    if (budget?.usd !== undefined) {
      const left = budget.usd - s.spentUsd - s.reservedUsd - need.usd;
      if (!usd || left < usd.left) usd = { left, limit: budget.usd };
    }
    if (budget?.tokens !== undefined) {
      const left = budget.tokens - s.spentTokens - s.reservedTokens - need.tokens;
      if (!tokens || left < tokens.left) tokens = { left, limit: budget.tokens };
    }
  }
  return { left: usd || tokens ? { ...(usd ? { usd } : {}), ...(tokens ? { tokens } : {}) } : undefined };
};

const budgetReason = (unit: "usd" | "tokens", limit: number, above: { ancestor?: string }): Reason => ({
  kind: "budget",
  unit,
  limit,
  ...above,
});

/** The twin of `take()`: reserves the worst case on every level and records the flight. */
export const takeFlight = (
  state: MemoryState,
  tree: string,
  levels: readonly StoredGrant[],
  worst: WorstCaseOrNone,
  lease: Lease,
): Flight => {
  const usd = worst?.usd ?? 0;
  const tokens = worst?.tokens ?? 0;
  for (const level of levels) {
    level.spend.reservedUsd += usd;
    level.spend.reservedTokens += tokens;
    level.spend.inFlight += 1;
  }
  const ids = levels.map((l) => l.record.id);
  const member = `${lease.id}|${usd}|${tokens}|${ids.join(",")}`;
  const open = state.flights.get(tree) ?? new Map<string, MemoryFlight>();
  state.flights.set(tree, open);
  open.set(member, { member, levels: ids, usd, tokens, until: lease.until });
  return { tree, member };
};

/** Extends open flights' leases; a settled one is not brought back. */
export const renewFlights = (state: MemoryState, flights: readonly Flight[], until: number): void => {
  for (const f of flights) {
    const flight = state.flights.get(f.tree)?.get(f.member);
    if (flight && flight.until < until) flight.until = until;
  }
};
