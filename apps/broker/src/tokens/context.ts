import type { TokenResponse } from "@perishable/protocol";
import { budgetView } from "../admin/spend.js";
import type { AuditLog } from "../audit/audit-log.js";
import type { TokenHasher } from "../auth/secrets.js";
import { newToken, newTokenId } from "../auth/secrets.js";
import type { BrokerConfig } from "../config/types.js";
import { BrokerError, DENIAL_MESSAGES } from "../errors.js";
import type { Metrics } from "../metrics/metrics.js";
import type { Denied, GrantRecord, Store, Subject, TokenRecord } from "../store/types.js";

/** What every token use case needs; built once by the server. */
export interface TokenContext {
  readonly config: BrokerConfig;
  readonly store: Store;
  readonly hasher: TokenHasher;
  readonly audit: AuditLog;
  readonly metrics: Metrics;
  readonly now: () => number;
}

/** A token presented by a caller: the string (used only to hash it) and its tree. */
export interface PresentedToken {
  readonly token: string;
  readonly tree: string;
}

export const iso = (ms: number): string => new Date(ms).toISOString();

export const tokenResponse = (token: string, record: TokenRecord, grant: GrantRecord): TokenResponse => ({
  token,
  tokenId: record.tokenId,
  grantId: grant.id,
  parentGrantId: grant.parentId,
  rootGrantId: grant.rootId,
  agent: grant.agent,
  task: grant.task,
  scopes: [...grant.scopes],
  depth: grant.depth,
  issuedAt: iso(record.issuedAt),
  expiresAt: iso(record.expiresAt),
  notAfter: iso(grant.notAfter),
  ...(grant.budget ? { budget: budgetView(grant.budget) } : {}),
  ...(grant.maxConcurrent === undefined ? {} : { maxConcurrent: grant.maxConcurrent }),
});

/** A store denial about a presented token, as the error the caller gets (with who was refused). */
export const denialError = (denied: Denied<keyof typeof DENIAL_MESSAGES>): BrokerError =>
  new BrokerError(
    denied.code,
    DENIAL_MESSAGES[denied.code],
    {},
    denied.subject.grantId ? denied.subject : undefined,
  );

/** The audit subject of a token of a grant. */
export const subjectOf = (grant: GrantRecord, token: TokenRecord): Subject => ({
  grantId: grant.id,
  tokenId: token.tokenId,
  rootGrantId: grant.rootId,
  parentGrantId: grant.parentId,
  agent: grant.agent,
  issuedAt: token.issuedAt,
});

/** A new bearer token for a grant, and its record (only the keyed hash of the token is kept). */
export const mintToken = (ctx: TokenContext, grant: GrantRecord, now: number, ttl: number) => {
  const token = newToken(grant.tree);
  const record: TokenRecord = {
    tokenId: newTokenId(grant.tree),
    hash: ctx.hasher.hash(token),
    grantId: grant.id,
    issuedAt: now,
    expiresAt: Math.min(now + ttl, grant.notAfter),
  };
  return { token, record };
};
