import type { TokenResponse } from "@perishable/protocol";
import { budgetView } from "../admin/spend.js";
import type { AuditLog } from "../audit/audit-log.js";
import type { DpopVerifier } from "../auth/dpop.js";
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
  /** Checks DPoP proofs (RFC 9449) of the requests that send one. */
  readonly dpop: DpopVerifier;
}

/**
 * A token presented by a caller: the string (used only to hash it), its tree, and the key of a
 * valid DPoP proof that came with it (its JWK thumbprint), if one did.
 */
export interface PresentedToken {
  readonly token: string;
  readonly tree: string;
  readonly jkt?: string | undefined;
}

export interface TokenRef {
  readonly tree: string;
  readonly hash: string;
}

/**
 * Where the store finds a presented token: under the hash bound to the proof's key when a proof
 * came with it, then under the bearer hash (a proof sent with a bearer token proves nothing it
 * needs). A bound token without its key's proof finds nothing: `token_invalid`, nothing counted.
 */
export const tokenRefs = (
  hasher: TokenHasher,
  presented: PresentedToken,
): readonly { readonly ref: TokenRef; readonly jkt: string | undefined }[] => {
  const bearer = { ref: { tree: presented.tree, hash: hasher.hash(presented.token) }, jkt: undefined };
  return presented.jkt === undefined
    ? [bearer]
    : [
        {
          ref: { tree: presented.tree, hash: hasher.hash(presented.token, presented.jkt) },
          jkt: presented.jkt,
        },
        bearer,
      ];
};

/** `use` with each place the presented token may be found, until it is found (or refused otherwise). */
export const withPresented = async <R extends { readonly ok: boolean; readonly code?: string }>(
  hasher: TokenHasher,
  presented: PresentedToken,
  use: (ref: TokenRef, jkt: string | undefined) => Promise<R>,
): Promise<R> => {
  let result: R | undefined;
  for (const { ref, jkt } of tokenRefs(hasher, presented)) {
    result = await use(ref, jkt);
    if (result.ok || result.code !== "token_invalid") return result;
  }
  return result!;
};

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
  ...(grant.jkt === undefined ? {} : { cnf: { jkt: grant.jkt } }),
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
  ...(grant.onBehalfOf ? { onBehalfOf: grant.onBehalfOf } : {}),
});

/** A new bearer token for a grant, and its record (only the keyed hash of the token is kept). */
export const mintToken = (ctx: TokenContext, grant: GrantRecord, now: number, ttl: number) => {
  const token = newToken(grant.tree);
  const record: TokenRecord = {
    tokenId: newTokenId(grant.tree),
    hash: ctx.hasher.hash(token, grant.jkt),
    grantId: grant.id,
    issuedAt: now,
    expiresAt: Math.min(now + ttl, grant.notAfter),
  };
  return { token, record };
};
