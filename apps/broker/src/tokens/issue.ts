import { grantTree, type IssueTokenRequest, type TokenResponse } from "@perishable/protocol";
import { auditEvent } from "../audit/audit-log.js";
import { newRootGrantId } from "../auth/secrets.js";
import type { IssuerConfig } from "../config/types.js";
import { BrokerError } from "../errors.js";
import type { GrantRecord } from "../store/types.js";
import { mintToken, subjectOf, type TokenContext, tokenResponse } from "./context.js";

/** `POST /v1/tokens` with an issuer credential: a new root grant and its first token. */
export const issueRootToken = async (
  ctx: TokenContext,
  issuer: IssuerConfig,
  body: IssueTokenRequest,
  requestId: string,
): Promise<TokenResponse> => {
  const scopes = uniqueScopes(ctx, body.scopes);
  const beyond = scopes.filter((s) => !issuer.scopes.has(s));
  if (beyond.length > 0) {
    throw new BrokerError("scope_denied", `issuer ${issuer.name} may not grant ${beyond.join(", ")}`);
  }
  const ttl = body.ttl === undefined ? issuer.defaultTtl : body.ttl * 1000;
  if (ttl > issuer.maxTtl) {
    throw new BrokerError(
      "ttl_exceeded",
      `ttl ${body.ttl} is above the issuer's max_ttl of ${issuer.maxTtl / 1000}`,
    );
  }
  const lifetime = body.lifetime === undefined ? issuer.maxLifetime : body.lifetime * 1000;
  if (lifetime > issuer.maxLifetime) {
    throw new BrokerError(
      "ttl_exceeded",
      `lifetime ${body.lifetime} is above the issuer's max_lifetime of ${issuer.maxLifetime / 1000}`,
    );
  }

  const now = ctx.now();
  const id = newRootGrantId();
  const tree = grantTree(id)!;
  const grant: GrantRecord = {
    id,
    tree,
    rootId: id,
    parentId: null,
    ancestors: [],
    agent: body.agent ?? issuer.name,
    task: body.task ?? null,
    scopes,
    depth: 0,
    issuer: issuer.name,
    createdAt: now,
    notAfter: now + lifetime,
    ttl: Math.min(ttl, lifetime),
    maxTtl: issuer.maxTtl,
    maxUses: body.maxUses ?? null,
    metadata: body.metadata ?? {},
  };
  const { token, record } = mintToken(ctx, grant, now, ttl);

  await ctx.store.createGrant(grant, record, undefined, now);
  ctx.metrics.tokens.inc({ kind: "issued" });
  ctx.audit.emit(
    auditEvent("issued", subjectOf(grant, record), requestId, now, {
      issuer: issuer.name,
      scopes,
      expiresAt: new Date(record.expiresAt).toISOString(),
    }),
  );
  return tokenResponse(token, record, grant);
};

/** Scopes named in a request, deduplicated, each known to the config (else 400). */
export const uniqueScopes = (ctx: TokenContext, requested: readonly string[]): string[] => {
  const scopes = [...new Set(requested)];
  const unknown = scopes.filter((s) => !ctx.config.scopes.has(s));
  if (unknown.length > 0) throw new BrokerError("bad_request", `unknown scope ${unknown.join(", ")}`);
  return scopes;
};
