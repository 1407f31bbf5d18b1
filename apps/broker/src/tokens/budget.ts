import type { IssueTokenRequest } from "@perishable/protocol";
import type { IssuerLimits } from "../config/types.js";
import { BrokerError } from "../errors.js";
import { type BudgetLimits, budgetLimits, NANO_PER_USD } from "../policy/pricing.js";
import type { GrantRecord, SpendState } from "../store/types.js";
import type { TokenContext } from "./context.js";

/** What a new grant holds of budgets and slots, as its record stores them. */
export type GrantSpending = Pick<GrantRecord, "budget" | "maxConcurrent" | "tracked">;

const dollars = (nano: number): string => `$${Number((nano / NANO_PER_USD).toFixed(9))}`;
const amount = (unit: "usd" | "tokens", value: number): string =>
  unit === "usd" ? dollars(value) : `${value} tokens`;

const spending = (budget: BudgetLimits | undefined, maxConcurrent: number | undefined, tracked: boolean) => ({
  ...(budget && Object.keys(budget).length > 0 ? { budget } : {}),
  ...(maxConcurrent === undefined ? {} : { maxConcurrent }),
  ...(tracked ? { tracked: true } : {}),
});

/**
 * A root grant's budget: what the request names, within the issuer's max_budget; a unit the
 * request leaves out gets the issuer's maximum (a missing limit is filled in, not refused).
 */
export const rootSpending = (body: IssueTokenRequest, limits: IssuerLimits): GrantSpending => {
  const asked = body.budget ? budgetLimits(body.budget) : {};
  const max = limits.maxBudget ?? {};
  for (const unit of ["usd", "tokens"] as const) {
    const want = asked[unit];
    const cap = max[unit];
    if (want !== undefined && cap !== undefined && want > cap)
      throw new BrokerError(
        "scope_denied",
        `a budget of ${amount(unit, want)} is above issuer ${limits.name}'s max_budget of ${amount(unit, cap)}`,
      );
  }
  const budget = { ...max, ...asked };
  const tracked = Object.keys(budget).length > 0 || body.maxConcurrent !== undefined;
  return spending(budget, body.maxConcurrent, tracked);
};

/**
 * A child's budget and slots: at most what its parent has left (the least left over the parent and
 * every ancestor that limits the unit, at this moment) and no more slots than any of them allows.
 * A child that names no budget draws on its ancestors' (the store counts its spend on each).
 * Checked here, before the child exists; what is spent later is held to every level at each use.
 */
export const childSpending = async (
  ctx: TokenContext,
  body: IssueTokenRequest,
  parent: GrantRecord,
  parentSpend: SpendState | undefined,
  refuse: (message: string) => BrokerError,
  now: number,
): Promise<GrantSpending> => {
  const budget = body.budget ? budgetLimits(body.budget) : undefined;
  if (!parent.tracked || (!budget && body.maxConcurrent === undefined))
    return spending(
      budget,
      body.maxConcurrent,
      parent.tracked === true || budget !== undefined || body.maxConcurrent !== undefined,
    );
  const ancestors = await Promise.all(parent.ancestors.map((id) => ctx.store.getGrant(id, now)));
  const levels = [
    { grant: parent, spend: parentSpend },
    ...ancestors.flatMap((a) => (a ? [{ grant: a.grant, spend: a.spend }] : [])),
  ];
  for (const unit of ["usd", "tokens"] as const) {
    const want = budget?.[unit];
    if (want === undefined) continue;
    for (const { grant, spend } of levels) {
      const limit = grant.budget?.[unit];
      if (limit === undefined) continue;
      const used =
        unit === "usd"
          ? (spend?.spentUsd ?? 0) + (spend?.reservedUsd ?? 0)
          : (spend?.spentTokens ?? 0) + (spend?.reservedTokens ?? 0);
      const left = Math.max(0, limit - used);
      if (want > left)
        throw refuse(
          `a budget of ${amount(unit, want)} is above what ${grant.id === parent.id ? "the parent" : `ancestor ${grant.id}`} has left (${amount(unit, left)})`,
        );
    }
  }
  if (body.maxConcurrent !== undefined) {
    for (const { grant } of levels) {
      if (grant.maxConcurrent !== undefined && body.maxConcurrent > grant.maxConcurrent)
        throw refuse(
          `maxConcurrent ${body.maxConcurrent} is above ${grant.id === parent.id ? "the parent's" : `ancestor ${grant.id}'s`} (${grant.maxConcurrent})`,
        );
    }
  }
  return spending(budget, body.maxConcurrent, true);
};
