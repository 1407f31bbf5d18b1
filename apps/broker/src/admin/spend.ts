import type { Spend } from "@perishable/protocol";
import { type BudgetLimits, NANO_PER_USD } from "../policy/pricing.js";
import type { GrantRecord, SpendState } from "../store/types.js";

const usd = (nano: number): number => nano / NANO_PER_USD;

/** A grant's own budget as the API shows it (dollars, tokens). */
export const budgetView = (budget: BudgetLimits): { usd?: number; tokens?: number } => ({
  ...(budget.usd === undefined ? {} : { usd: usd(budget.usd) }),
  ...(budget.tokens === undefined ? {} : { tokens: budget.tokens }),
});

/** A tracked grant's limits and counters as the API shows them: dollars, tokens, requests in flight. */
export const spendView = (grant: GrantRecord, spend: SpendState): Spend => ({
  usd: {
    limit: grant.budget?.usd === undefined ? null : usd(grant.budget.usd),
    spent: usd(Math.max(0, spend.spentUsd)),
    reserved: usd(Math.max(0, spend.reservedUsd)),
  },
  tokens: {
    limit: grant.budget?.tokens ?? null,
    spent: Math.max(0, spend.spentTokens),
    reserved: Math.max(0, spend.reservedTokens),
  },
  maxConcurrent: grant.maxConcurrent ?? null,
  inFlight: Math.max(0, spend.inFlight),
});
