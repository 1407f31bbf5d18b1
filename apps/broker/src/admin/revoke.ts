import { randomBytes } from "node:crypto";
import type { RevocationResult, RevocationSelector } from "@perishable/protocol";
import { BrokerError } from "../errors.js";
import type { RevocationRule } from "../policy/revocation.js";
import { RECORD_GRACE_MS, UnreplicatedError } from "../store/types.js";
import type { Actor, AdminContext } from "./context.js";

/** `DELETE /v1/grants/:id`: the grant and its whole subtree. */
export const revokeGrantById = async (
  ctx: AdminContext,
  actor: Actor,
  grantId: string,
  requestId: string,
): Promise<RevocationResult> => {
  const now = ctx.now();
  const state = await ctx.store.getGrant(grantId, now);
  if (!state) throw new BrokerError("not_found", `no grant ${grantId}`);
  const { grants: revoked, connections } = await ctx.store.revokeGrant(grantId, now);
  const g = state.grant;
  ctx.metrics.revocations.inc({ kind: "grant" }, revoked);
  ctx.audit.record(
    "revoked",
    {
      grantId: g.id,
      tokenId: null,
      rootGrantId: g.rootId,
      parentGrantId: g.parentId,
      agent: g.agent,
      issuedAt: null,
      ...(g.onBehalfOf ? { onBehalfOf: g.onBehalfOf } : {}),
    },
    requestId,
    now,
    { by: `admin ${actor.name}`, count: revoked, connections },
  );
  return { revoked, connections };
};

/** `DELETE /v1/tokens/:tokenId`: one token; its grant and the grant's other tokens stay. */
export const revokeTokenById = async (
  ctx: AdminContext,
  actor: Actor,
  tokenId: string,
  requestId: string,
): Promise<RevocationResult> => {
  const now = ctx.now();
  const result = await ctx.store.revokeToken(tokenId, now);
  if (result.status === "none") throw new BrokerError("not_found", `no live token ${tokenId}`);
  const revoked = result.status === "revoked" ? 1 : 0;
  const { connections } = result;
  ctx.metrics.revocations.inc({ kind: "token" }, revoked);
  ctx.audit.record("revoked", result.subject, requestId, now, {
    by: `admin ${actor.name}`,
    count: revoked,
    connections,
  });
  return { revoked: 0, tokens: revoked, connections };
};

/** `POST /v1/revocations?dryRun=true`: how many live grants (and connections) the selector would revoke now. */
export const previewRevocation = async (
  ctx: AdminContext,
  actor: Actor,
  selector: RevocationSelector,
): Promise<RevocationResult> => {
  const now = ctx.now();
  const rule: RevocationRule = {
    id: "preview",
    selector,
    by: actor.name,
    createdAt: now,
    cutoff: now,
    expiresAt: now + 1,
  };
  const [revoked, live] = await Promise.all([ctx.store.preview(rule, now), ctx.store.askLive({ rule })]);
  return { revoked, connections: live.answers.length, dryRun: true };
};

/**
 * `POST /v1/revocations`. First a rule, stored and pushed to every node, that denies whatever the
 * selector matches from this moment (tokens issued during the walk included); then the walk that
 * deletes the matching grants, subtrees and tokens; then the rule's cutoff is closed a moment after
 * the walk, and it lives on until nothing it selected can still be alive (max_lifetime).
 */
export const bulkRevoke = async (
  ctx: AdminContext,
  actor: Actor,
  selector: RevocationSelector,
  requestId: string,
): Promise<RevocationResult> => {
  const started = ctx.now();
  const lifetime = ctx.config.limits.maxLifetime + RECORD_GRACE_MS;
  const open: RevocationRule = {
    id: `rv_${randomBytes(12).toString("base64url")}`,
    selector,
    by: actor.name,
    createdAt: started,
    cutoff: null,
    expiresAt: started + 2 * lifetime,
  };
  // Unconfirmed by replicas (store.wait_replicas), the open rule is still in force on every node: the
  // walk goes on and the rule is closed, and the closing rule's confirmation (which covers every
  // write before it) decides the answer. An open rule left behind would deny the selector's new
  // tokens until it expired.
  await ctx.store.putRule(open).catch(unlessUnreplicated);
  const { grants, tokens, connections } = await ctx.store.purge(open, started);
  const cutoff = ctx.now() + ctx.cutoffMarginMs;
  await ctx.store.putRule({ ...open, cutoff, expiresAt: cutoff + lifetime });
  ctx.metrics.revocations.inc({ kind: "bulk" }, grants);
  ctx.audit.record("revoked", null, requestId, started, {
    by: `admin ${actor.name}`,
    selector: { ...selector },
    count: grants,
    connections,
    rule: open.id,
  });
  return { revoked: grants, tokens, connections, ruleId: open.id };
};

/** Rethrows anything but a revocation the replicas have not confirmed yet. */
const unlessUnreplicated = (error: unknown): void => {
  if (!(error instanceof UnreplicatedError)) throw error;
};
