import type { GrantView, RevokeResponse, SelfResponse } from "@perishable/protocol";
import { auditEvent } from "../audit/audit-log.js";
import type { GrantRecord } from "../store/types.js";
import { denialError, iso, type PresentedToken, subjectOf, type TokenContext } from "./context.js";

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
  metadata: { ...grant.metadata },
  identity: grant.identity ? { ...grant.identity } : null,
});

/** `GET /v1/tokens/self`: the presented token's grant, lineage (root first) and time left. */
export const describeSelf = async (ctx: TokenContext, presented: PresentedToken): Promise<SelfResponse> => {
  const now = ctx.now();
  const result = await ctx.store.inspect(
    { tree: presented.tree, hash: ctx.hasher.hash(presented.token) },
    now,
  );
  if (!result.ok) throw denialError(result);
  const { token, grant, used } = result;
  return {
    tokenId: token.tokenId,
    issuedAt: iso(token.issuedAt),
    expiresAt: iso(token.expiresAt),
    expiresIn: Math.max(0, Math.floor((token.expiresAt - now) / 1000)),
    grant: grantView(grant),
    lineage: [...grant.ancestors],
    usesLeft: grant.maxUses === null ? null : Math.max(0, grant.maxUses - used),
  };
};

/** `DELETE /v1/tokens/self`: an agent ends its own authority, and that of every grant below it. */
export const revokeSelf = async (
  ctx: TokenContext,
  presented: PresentedToken,
  requestId: string,
): Promise<RevokeResponse> => {
  const now = ctx.now();
  const result = await ctx.store.inspect(
    { tree: presented.tree, hash: ctx.hasher.hash(presented.token) },
    now,
  );
  if (!result.ok) throw denialError(result);
  const { grant, token } = result;
  const revoked = await ctx.store.revokeGrant(grant.id, now);
  ctx.metrics.revocations.inc({ kind: "self" }, revoked);
  ctx.audit.emit(
    auditEvent("revoked", subjectOf(grant, token), requestId, now, {
      by: `self (${grant.agent})`,
      count: revoked,
    }),
  );
  return { revoked };
};
