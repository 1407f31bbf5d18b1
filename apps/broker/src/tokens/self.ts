import type { GrantView, RevokeResponse, SelfResponse } from "@perishable/protocol";
import { budgetView, spendView } from "../admin/spend.js";
import type { Reason } from "../store/reason.js";
import type { GrantRecord, SpendState, Subject } from "../store/types.js";
import {
  denialError,
  iso,
  type PresentedToken,
  subjectOf,
  type TokenContext,
  withPresented,
} from "./context.js";

export const grantView = (grant: GrantRecord): GrantView => ({
  grantId: grant.id,
  parentGrantId: grant.parentId,
  rootGrantId: grant.rootId,
  agent: grant.agent,
  task: grant.task,
  scopes: [...grant.scopes],
  depth: grant.depth,
  issuer: grant.issuer,
  createdAt: iso(grant.createdAt),
  notAfter: iso(grant.notAfter),
  maxUses: grant.maxUses,
  budget: grant.budget ? budgetView(grant.budget) : null,
  maxConcurrent: grant.maxConcurrent ?? null,
  metadata: { ...grant.metadata },
  identity: grant.identity ? { ...grant.identity } : null,
  ...(grant.jkt === undefined ? {} : { cnf: { jkt: grant.jkt } }),
  ...(grant.actor ? { actor: { ...grant.actor } } : {}),
  ...(grant.onBehalfOf ? { onBehalfOf: grant.onBehalfOf } : {}),
});

/** `GET /v1/tokens/self`: the presented token's grant, lineage (root first) and time left. */
export const describeSelf = async (ctx: TokenContext, presented: PresentedToken): Promise<SelfResponse> => {
  const now = ctx.now();
  const result = await withPresented(ctx.hasher, presented, (ref) => ctx.store.inspect(ref, now));
  if (!result.ok) throw denialError(result);
  const { token, grant, used } = result;
  const spend = grant.tracked ? await lineageSpend(ctx, grant, result.spend, now) : [];
  return {
    tokenId: token.tokenId,
    issuedAt: iso(token.issuedAt),
    expiresAt: iso(token.expiresAt),
    expiresIn: Math.max(0, Math.floor((token.expiresAt - now) / 1000)),
    grant: grantView(grant),
    lineage: [...grant.ancestors],
    usesLeft: grant.maxUses === null ? null : Math.max(0, grant.maxUses - used),
    spend,
    budgetLeft: budgetLeft(spend),
  };
};

/** The spend of the grant's ancestors (root first), then its own. Read after the check: a view. */
const lineageSpend = async (
  ctx: TokenContext,
  grant: GrantRecord,
  own: SpendState | undefined,
  now: number,
): Promise<SelfResponse["spend"]> => {
  const ancestors = await Promise.all(grant.ancestors.map((id) => ctx.store.getGrant(id, now)));
  const levels = [
    ...ancestors.flatMap((a) => (a?.spend ? [{ grant: a.grant, spend: a.spend }] : [])),
    ...(own ? [{ grant, spend: own }] : []),
  ];
  return levels.map((l) => ({ grantId: l.grant.id, ...spendView(l.grant, l.spend) }));
};

/** The least left of each unit over the levels that limit it; null where none does. */
const budgetLeft = (levels: SelfResponse["spend"]): SelfResponse["budgetLeft"] => {
  const left = (unit: "usd" | "tokens") => {
    const bounded = levels.flatMap((l) => {
      const use = l[unit];
      return use.limit === null ? [] : [Math.max(0, use.limit - use.spent - use.reserved)];
    });
    return bounded.length === 0 ? null : Math.min(...bounded);
  };
  return { usd: left("usd"), tokens: left("tokens") };
};

/**
 * `DELETE /v1/tokens/self`: an agent ends its own authority, and that of every grant below it.
 * Asked again with the same token (a 503 said the replicas had not confirmed it yet), it answers as
 * a first call would, once the store confirms the revocation the same way: revoking is idempotent.
 */
export const revokeSelf = async (
  ctx: TokenContext,
  presented: PresentedToken,
  requestId: string,
): Promise<RevokeResponse> => {
  const now = ctx.now();
  const result = await withPresented(ctx.hasher, presented, (ref) => ctx.store.inspect(ref, now));
  let grantId: string;
  let subject: Subject;
  if (result.ok) {
    grantId = result.grant.id;
    subject = subjectOf(result.grant, result.token);
  } else {
    const ended = alreadyEnded(result);
    if (ended === null) throw denialError(result);
    grantId = ended;
    subject = result.subject;
  }
  const { grants: revoked, connections } = await ctx.store.revokeGrant(grantId, now);
  ctx.metrics.revocations.inc({ kind: "self" }, revoked);
  ctx.audit.record("revoked", subject, requestId, now, {
    by: `self (${subject.agent})`,
    count: revoked,
    connections,
  });
  return { revoked, connections };
};

/**
 * The grant of a genuine token whose grant's authority is already ended — revoked with it, under a
 * revoked ancestor, or by a rule; what asking for its own revocation again may confirm. Null when
 * the token was revoked alone (its grant lives on, and a revoked token cannot end it), expired, or
 * its grant is unknown.
 */
const alreadyEnded = (denied: { code: string; subject: Subject; reason: Reason | null }): string | null => {
  const kind = denied.reason?.kind;
  const ended = kind === "grant" || kind === "ancestor" || kind === "rule" || kind === "purged";
  return denied.code === "token_revoked" && ended ? denied.subject.grantId : null;
};
