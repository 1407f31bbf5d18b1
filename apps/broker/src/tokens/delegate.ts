import type { IssueTokenRequest, TokenResponse } from "@perishable/protocol";
import { newGrantId } from "../auth/secrets.js";
import { BrokerError } from "../errors.js";
import type { GrantRecord } from "../store/types.js";
import { childSpending } from "./budget.js";
import {
  denialError,
  mintToken,
  type PresentedToken,
  subjectOf,
  type TokenContext,
  type TokenRef,
  tokenResponse,
  withPresented,
} from "./context.js";
import { requireActor, requireBinding, uniqueScopes } from "./issue.js";

/**
 * `POST /v1/tokens` with a `prs_` token: a child grant that holds at most what its parent holds.
 * Scopes must be a subset, the token lifetime within the parent's max_ttl, the grant's end no
 * later than the parent's, the depth within limits.max_depth. Rate limits and maxUses of every
 * ancestor keep applying to the child's calls (the store counts them up the lineage).
 */
export const delegateToken = async (
  ctx: TokenContext,
  presented: PresentedToken,
  /** The request, read once the parent is known live (it may default to the parent's scopes). */
  readBody: (parent: GrantRecord) => IssueTokenRequest,
  requestId: string,
  /** Token exchange: the workload that asked, recorded on the child. */
  actor?: { readonly issuer: string; readonly subject: string },
): Promise<TokenResponse> => {
  const now = ctx.now();
  let parentRef: TokenRef | undefined;
  let parentJkt: string | undefined;
  const inspected = await withPresented(ctx.hasher, presented, (ref, jkt) => {
    parentRef = ref;
    parentJkt = jkt;
    return ctx.store.inspect(ref, now);
  });
  if (!inspected.ok) throw denialError(inspected);
  // Read only once the token is known to be live: see the token routes.
  const body = readBody(inspected.grant);
  const parent = inspected.grant;
  const refuse = (code: "delegation_denied" | "ttl_exceeded", message: string) =>
    new BrokerError(code, message, {}, subjectOf(parent, inspected.token));

  if (body.onBehalfOf !== undefined && body.onBehalfOf !== parent.onBehalfOf)
    throw refuse("delegation_denied", "a child acts for whom its parent acts: onBehalfOf is set on the root");
  const scopes = uniqueScopes(ctx, body.scopes);
  const held = new Set(parent.scopes);
  const beyond = scopes.filter((s) => !held.has(s));
  if (beyond.length > 0) {
    throw refuse("delegation_denied", `the parent grant does not hold ${beyond.join(", ")}`);
  }
  if (parent.depth + 1 > ctx.config.limits.maxDepth) {
    throw refuse("delegation_denied", `the lineage is at max_depth (${ctx.config.limits.maxDepth})`);
  }
  const { ttl, notAfter } = childLifetime(body, parent, now, refuse);
  const spending = await childSpending(
    ctx,
    body,
    parent,
    inspected.spend,
    (message) => refuse("delegation_denied", message),
    now,
  );

  const grant: GrantRecord = {
    id: newGrantId(parent.tree),
    tree: parent.tree,
    rootId: parent.rootId,
    parentId: parent.id,
    ancestors: [...parent.ancestors, parent.id],
    agent: body.agent ?? parent.agent,
    task: body.task ?? parent.task,
    scopes,
    depth: parent.depth + 1,
    issuer: parent.issuer,
    createdAt: now,
    notAfter,
    ttl: Math.min(ttl, notAfter - now),
    maxTtl: parent.maxTtl,
    maxUses: body.maxUses ?? null,
    maxChildren: ctx.config.limits.maxChildren,
    ...spending,
    metadata: body.metadata ?? {},
    identity: parent.identity,
    ...childBinding(body, presented, parentJkt),
    ...(actor ? { actor } : {}),
    ...(parent.onBehalfOf ? { onBehalfOf: parent.onBehalfOf } : {}),
  };
  const issuer = ctx.config.issuers.find((i) => i.name === grant.issuer);
  requireBinding(ctx, grant, issuer?.requireDpop === true);
  requireActor(grant, issuer?.requireActor === true);
  const { token, record } = mintToken(ctx, grant, now, ttl);

  const created = await ctx.store.createGrant(grant, record, parentRef!, now);
  if (!created.ok) throw denialError(created);
  ctx.metrics.tokens.inc({ kind: "delegated" });
  ctx.audit.record("delegated", subjectOf(grant, record), requestId, now, {
    issuer: parent.issuer,
    scopes,
    expiresAt: new Date(record.expiresAt).toISOString(),
    jkt: grant.jkt,
    actor: grant.actor,
  });
  return tokenResponse(token, record, grant);
};

/**
 * The key a child is bound to: the one its request names (`dpopJkt`, a sub-agent's key), else,
 * under an unbound parent, the key that signed this request's proof. A bound parent's proof only
 * proves the parent: its child is bound to the key named, or to none.
 */
const childBinding = (
  body: IssueTokenRequest,
  presented: PresentedToken,
  parentJkt: string | undefined,
): { jkt?: string } => {
  if (body.dpopJkt !== undefined) return { jkt: body.dpopJkt };
  if (parentJkt === undefined && presented.jkt !== undefined) return { jkt: presented.jkt };
  return {};
};

/** A child's token lifetime and end: within the parent's max_ttl, ending no later than the parent. */
const childLifetime = (
  body: IssueTokenRequest,
  parent: GrantRecord,
  now: number,
  refuse: (code: "ttl_exceeded", message: string) => BrokerError,
): { ttl: number; notAfter: number } => {
  const ttl = body.ttl === undefined ? parent.ttl : body.ttl * 1000;
  if (ttl > parent.maxTtl) {
    throw refuse("ttl_exceeded", `ttl ${body.ttl} is above the parent's max_ttl of ${parent.maxTtl / 1000}`);
  }
  const remaining = parent.notAfter - now;
  if (body.lifetime !== undefined && body.lifetime * 1000 > remaining) {
    throw refuse(
      "ttl_exceeded",
      `lifetime ${body.lifetime} is beyond the parent grant's end (${Math.floor(remaining / 1000)} s left)`,
    );
  }
  const notAfter = body.lifetime === undefined ? parent.notAfter : now + body.lifetime * 1000;
  return { ttl, notAfter };
};
