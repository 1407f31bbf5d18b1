import { BrokerError, DENIAL_MESSAGES } from "../errors.js";
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
const constraintReason = ({ denied, plan }: DenialContext): string =>
  `${denied.rule}: ${plan.check?.reasons.get(denied.rule ?? "") ?? "constraint not met"}`;

const plain = ({ denied }: DenialContext): ProxyDenial => ({
  error: new BrokerError(denied.code, DENIAL_MESSAGES[denied.code]),
  rule: denied.rule,
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
    rule: denied.rule,
  }),
  constraint_denied: (c) => ({
    error: new BrokerError("constraint_denied", `scope ${constraintReason(c)}`),
    rule: c.denied.rule ? constraintReason(c) : null,
  }),
  rate_limited: ({ denied }) => ({
    error: new BrokerError("rate_limited", `rate limit of scope ${denied.rule} reached`, {
      "retry-after": String(Math.max(1, Math.ceil((denied.retryAfterMs ?? 1000) / 1000))),
    }),
    rule: denied.rule,
  }),
};

export const proxyDenial = (context: DenialContext): ProxyDenial => DENIALS[context.denied.code](context);
