import { consumedOf, costOf, NANO_PER_USD, type WorstCase } from "../policy/pricing.js";
import type { Costing } from "./costing.js";
import type { ForwardOutcome } from "./forward.js";

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
