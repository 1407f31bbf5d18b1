import { BrokerError, DENIAL_MESSAGES } from "../errors.js";
import { describeReason } from "../store/reason.js";
import type { AuthorizeDenial, Denied } from "../store/types.js";
import type { Plan, ProxyTarget } from "./plan.js";

/** What a store denial becomes for the caller (the error) and for the audit trail (the rule). */
export interface ProxyDenial {
  readonly error: BrokerError;
  readonly rule: string | null;
}

interface DenialContext {
  readonly denied: Denied<AuthorizeDenial>;
  readonly plan: Plan;
  readonly target: ProxyTarget;
  readonly method: string;
}

/** A constraint denial names the scope and what in the body failed it, so the trail says why. */
const constraintReason = ({ denied, plan }: DenialContext): string | null => {
  if (denied.reason?.kind !== "constraint") return null;
  const { scope } = denied.reason;
  return `${scope}: ${plan.check?.reasons.get(scope) ?? plan.mcp?.reasons.get(scope) ?? "constraint not met"}`;
};

const ruleOf = (denied: Denied<AuthorizeDenial>): string | null =>
  denied.reason ? describeReason(denied.reason) : null;

const plain = ({ denied }: DenialContext): ProxyDenial => ({
  error: new BrokerError(denied.code, DENIAL_MESSAGES[denied.code]),
  rule: ruleOf(denied),
});

/**
 * Every store denial of a proxied request, by code: a code added to AuthorizeDenial does not
 * compile until it is handled here (trpc's `Record<ErrorCode, …>` habit).
 */
const DENIALS: Readonly<Record<AuthorizeDenial, (c: DenialContext) => ProxyDenial>> = {
  token_invalid: plain,
  token_expired: plain,
  token_revoked: plain,
  forbidden: plain,
  // No candidate scope: the refusal found before the store call, when there was one, says why.
  scope_denied: ({ denied, plan, target, method }) => ({
    error:
      plan.refusal ??
      new BrokerError(
        "scope_denied",
        `no scope of this token allows ${method} ${target.rest || "/"} on upstream ${target.upstreamName}`,
      ),
    rule: ruleOf(denied),
  }),
  constraint_denied: (c) => {
    // A lineage with a budget, and a request that has no cost bound under the scope that matched.
    if (c.denied.reason?.kind === "unbudgeted") {
      const { scope } = c.denied.reason;
      const why = c.plan.costings.get(scope)?.why ?? "the request has no cost bound";
      return {
        error: new BrokerError("constraint_denied", `scope ${scope}: ${why}`),
        rule: `${scope}: ${why}`,
      };
    }
    return {
      error: new BrokerError("constraint_denied", `scope ${constraintReason(c)}`),
      rule: constraintReason(c),
    };
  },
  // Not retryable as such; x-should-retry tells the OpenAI and Anthropic SDKs not to try again.
  budget_exhausted: ({ denied, plan }) => ({
    error: new BrokerError(
      "budget_exhausted",
      `${ruleOf(denied) ?? "the budget"} cannot cover this request's worst case${worstText(plan)}`,
      { "x-should-retry": "false" },
    ),
    rule: ruleOf(denied),
  }),
  concurrency_limited: ({ denied }) => ({
    error: new BrokerError(
      "concurrency_limited",
      `${ruleOf(denied) ?? "maxConcurrent"} requests are in flight`,
      {
        "retry-after": "1",
      },
    ),
    rule: ruleOf(denied),
  }),
  rate_limited: ({ denied }) => ({
    error: new BrokerError("rate_limited", `rate limit of scope ${ruleOf(denied)} reached`, {
      "retry-after": String(Math.max(1, Math.ceil((denied.retryAfterMs ?? 1000) / 1000))),
    }),
    rule: ruleOf(denied),
  }),
};

/** " ($0.012, 3100 tokens)": what the first scope that could allow the request would reserve. */
const worstText = (plan: Plan): string => {
  const worst = plan.candidates.find((c) => c.pass && c.worst !== null)?.worst;
  if (!worst) return "";
  return ` ($${Number((worst.usd / 1e9).toFixed(6))}, ${worst.tokens} tokens)`;
};

export const proxyDenial = (context: DenialContext): ProxyDenial => DENIALS[context.denied.code](context);
