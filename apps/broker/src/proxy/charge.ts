import { consumedOf, costOf, NANO_PER_USD, type WorstCase } from "../policy/pricing.js";
import type { BudgetLeft } from "../store/types.js";
import type { Costing } from "./costing.js";
import type { ForwardOutcome } from "./forward.js";

/** Sent with every answer of a budgeted lineage: what is left once this request is reserved. */
export const BUDGET_LEFT_HEADER = "x-perishable-budget-left";

/**
 * `usd=0.412, usd-limit=5, tokens=91000, tokens-limit=200000`: the tightest level of the lineage
 * for each unit it limits (an RFC 8941 dictionary), with this request's worst case held back.
 */
export const budgetLeftValue = (left: BudgetLeft): string => {
  const parts: string[] = [];
  if (left.usd)
    parts.push(
      `usd=${Math.max(0, left.usd.left) / NANO_PER_USD}`,
      `usd-limit=${left.usd.limit / NANO_PER_USD}`,
    );
  if (left.tokens) parts.push(`tokens=${Math.max(0, left.tokens.left)}`, `tokens-limit=${left.tokens.limit}`);
  return parts.join(", ");
};

/** What a finished request is charged, and on what basis (the `used` event's `cost`). */
export interface Charge {
  /** What the flight settles at; null: its full reservation. */
  readonly cost: WorstCase | null;
  readonly basis: "usage" | "reservation" | "refused";
}

const ZERO: WorstCase = Object.freeze({ usd: 0, tokens: 0 });

/**
 * The charge of a finished request. Its usage at its price when the answer says; nothing when
 * the upstream refused it whole (a complete 4xx answer: providers bill no generation for those);
 * otherwise (no usage, an upstream failure after the request was sent, a client that left) the
 * whole reservation: a budget is never under-counted.
 */
export const chargeOf = (outcome: ForwardOutcome, costing: Costing | undefined): Charge => {
  if (!costing || (costing.worst !== null && costing.worst.usd === 0 && costing.worst.tokens === 0))
    return { cost: ZERO, basis: "usage" };
  const consumed = consumedOf(outcome.usage?.usage);
  if (outcome.error === undefined && consumed && costing.price)
    return { cost: costOf(consumed, costing.price), basis: "usage" };
  if (outcome.error === undefined && !consumed && outcome.status >= 400 && outcome.status < 500)
    return { cost: ZERO, basis: "refused" };
  return { cost: null, basis: "reservation" };
};

/** The `used` event's `cost`: dollars and tokens charged (the reservation when that is what was). */
export const costDetail = (charge: Charge, costing: Costing | undefined) => {
  const charged = charge.cost ?? costing?.worst ?? ZERO;
  return {
    usd: charged.usd / NANO_PER_USD,
    tokens: charged.tokens,
    basis: charge.basis,
    ...(costing?.price ? { price: costing.price.glob } : {}),
  };
};
