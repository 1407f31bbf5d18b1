import { grantTree, type IssueTokenRequest, type TokenResponse } from "@perishable/protocol";
import { dpopChallenge } from "../auth/dpop.js";
import { newRootGrantId } from "../auth/secrets.js";
import type { RootAuthority } from "../auth/workload.js";
import { BrokerError } from "../errors.js";
import type { GrantRecord } from "../store/types.js";
import { rootSpending } from "./budget.js";
import { mintToken, subjectOf, type TokenContext, tokenResponse } from "./context.js";

/** `POST /v1/tokens` with an issuer key or a workload identity: a new root grant and its first token. */
export const issueRootToken = async (
  ctx: TokenContext,
  authority: RootAuthority,
  body: IssueTokenRequest,
  requestId: string,
  /** The key of the DPoP proof on the request, if any: the grant is bound to it. */
  jkt?: string,
  /** Token exchange: the workload that asked, recorded on the grant. */
  actor?: { readonly issuer: string; readonly subject: string },
): Promise<TokenResponse> => {
  const { limits } = authority;
  if (body.dpopJkt !== undefined && body.dpopJkt !== jkt)
    throw new BrokerError(
      "bad_request",
      "dpopJkt names a key for a child; a root grant is bound by its request's proof",
    );
  const scopes = uniqueScopes(ctx, body.scopes);
  const beyond = scopes.filter((s) => !limits.scopes.has(s));
  if (beyond.length > 0) {
    throw new BrokerError("scope_denied", `issuer ${limits.name} may not grant ${beyond.join(", ")}`);
  }
  if (authority.agent !== undefined && body.agent !== undefined && body.agent !== authority.agent) {
    throw new BrokerError(
      "forbidden",
      `the agent is named by the identity token (${limits.name}), not by the request`,
    );
  }
  if (
    authority.onBehalfOf !== undefined &&
    body.onBehalfOf !== undefined &&
    body.onBehalfOf !== authority.onBehalfOf
  )
    throw new BrokerError(
      "forbidden",
      `whom the grant acts for is named by the identity token (${limits.name})`,
    );
  const onBehalfOf = authority.onBehalfOf ?? body.onBehalfOf;
  const ttl = body.ttl === undefined ? Math.min(limits.defaultTtl, limits.maxTtl) : body.ttl * 1000;
  if (ttl > limits.maxTtl) {
    throw new BrokerError(
      "ttl_exceeded",
      `ttl ${body.ttl} is above the issuer's max_ttl of ${limits.maxTtl / 1000}`,
    );
  }
  const lifetime = body.lifetime === undefined ? limits.maxLifetime : body.lifetime * 1000;
  if (lifetime > limits.maxLifetime) {
    throw new BrokerError(
      "ttl_exceeded",
      `lifetime ${body.lifetime} is above the issuer's max_lifetime of ${limits.maxLifetime / 1000}`,
    );
  }

  const spending = rootSpending(body, limits);
  const now = ctx.now();
  const id = newRootGrantId();
  const grant: GrantRecord = {
    id,
    tree: grantTree(id)!,
    rootId: id,
    parentId: null,
    ancestors: [],
    agent: authority.agent ?? body.agent ?? limits.name,
    task: body.task ?? null,
    scopes,
    depth: 0,
    issuer: limits.name,
    createdAt: now,
    notAfter: now + lifetime,
    ttl: Math.min(ttl, lifetime),
    maxTtl: limits.maxTtl,
    maxUses: body.maxUses ?? null,
    maxChildren: ctx.config.limits.maxChildren,
    ...spending,
    metadata: body.metadata ?? {},
    identity: authority.identity,
    ...(jkt === undefined ? {} : { jkt }),
    ...(actor ? { actor } : {}),
    ...(onBehalfOf === undefined ? {} : { onBehalfOf }),
  };
  requireBinding(ctx, grant, limits.requireDpop);
  requireActor(grant, limits.requireActor);
  const { token, record } = mintToken(ctx, grant, now, ttl);
  await ctx.store.createGrant(grant, record, undefined, now);
  ctx.metrics.tokens.inc({ kind: "issued" });
  ctx.audit.record("issued", subjectOf(grant, record), requestId, now, {
    issuer: limits.name,
    scopes,
    expiresAt: new Date(record.expiresAt).toISOString(),
    ...(authority.identity ? { identity: { ...authority.identity } } : {}),
    jkt,
    actor,
  });
  return tokenResponse(token, record, grant);
};

/** Refuses a grant of an issuer that wants every grant asked for by a known workload (`require_actor`). */
export const requireActor = (grant: GrantRecord, required: boolean): void => {
  if (required && grant.actor === undefined)
    throw new BrokerError(
      "forbidden",
      `issuer ${grant.issuer} grants only by token exchange with an actor_token (POST /v1/oauth/token)`,
    );
};

/** Refuses an unbound grant its issuer or one of its scopes wants bound (`require_dpop`). */
export const requireBinding = (ctx: TokenContext, grant: GrantRecord, issuerRequires: boolean): void => {
  if (grant.jkt !== undefined) return;
  const scope = grant.scopes.find((s) => ctx.config.scopes.get(s)?.requireDpop);
  if (!issuerRequires && scope === undefined) return;
  const why = scope === undefined ? `issuer ${grant.issuer}` : `scope ${scope}`;
  throw new BrokerError(
    "forbidden",
    `${why} requires a DPoP-bound grant: send a DPoP proof with this request`,
    dpopChallenge("invalid_request", "a DPoP-bound grant is required"),
  );
};

/** Scopes named in a request, deduplicated, each known to the config (else 400). */
export const uniqueScopes = (ctx: TokenContext, requested: readonly string[]): string[] => {
  const scopes = [...new Set(requested)];
  const unknown = scopes.filter((s) => !ctx.config.scopes.has(s));
  if (unknown.length > 0) throw new BrokerError("bad_request", `unknown scope ${unknown.join(", ")}`);
  return scopes;
};

export type { RootAuthority } from "../auth/workload.js";
