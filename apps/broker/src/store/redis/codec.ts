import { reasonFromWire } from "../reason.js";
import type { BudgetLeft, Denied, GrantRecord, GrantState, Subject, TokenRecord } from "../types.js";
import { type AUTHORIZED, DENIAL, field, GRANT, TOKEN_AND_GRANT, type TOKEN_REVOKED } from "./schema.js";

/** Grant record ⇄ Redis hash fields (schema.ts `GRANT`). Scope and ancestor lists are comma-joined (names cannot hold commas). */
export const grantFields = (grant: GrantRecord): string[] => {
  const fields: string[] = [];
  const put = (name: keyof typeof GRANT, value: string) => fields.push(GRANT[name], value);
  put("rootId", grant.rootId);
  put("parentId", grant.parentId ?? "");
  put("ancestors", grant.ancestors.join(","));
  put("agent", grant.agent);
  put("task", grant.task ?? "");
  put("scopes", grant.scopes.join(","));
  put("depth", String(grant.depth));
  put("issuer", grant.issuer);
  put("createdAt", String(grant.createdAt));
  put("notAfter", String(grant.notAfter));
  put("ttl", String(grant.ttl));
  put("maxTtl", String(grant.maxTtl));
  put("metadata", JSON.stringify(grant.metadata));
  if (grant.maxUses !== null) put("maxUses", String(grant.maxUses));
  if (grant.maxChildren !== undefined) put("maxChildren", String(grant.maxChildren));
  if (grant.budget?.usd !== undefined) put("budgetUsd", String(grant.budget.usd));
  if (grant.budget?.tokens !== undefined) put("budgetTokens", String(grant.budget.tokens));
  if (grant.maxConcurrent !== undefined) put("maxConcurrent", String(grant.maxConcurrent));
  if (grant.tracked) put("tracked", "1");
  if (grant.identity) {
    put("identityIssuer", grant.identity.issuer);
    put("identitySubject", grant.identity.subject);
  }
  if (grant.jkt !== undefined) put("jkt", grant.jkt);
  if (grant.onBehalfOf !== undefined) put("onBehalfOf", grant.onBehalfOf);
  if (grant.actor) {
    put("actorIssuer", grant.actor.issuer);
    put("actorSubject", grant.actor.subject);
  }
  return fields;
};

export const pairsToMap = (flat: readonly string[], from: number): Map<string, string> => {
  const map = new Map<string, string>();
  for (let i = from; i + 1 < flat.length; i += 2) map.set(flat[i]!, flat[i + 1]!);
  return map;
};

/** A grant hash's fields read by the names the code uses. */
export const grantHash = (fields: ReadonlyMap<string, string>) => (name: keyof typeof GRANT) =>
  fields.get(GRANT[name]);

export const grantFromFields = (
  id: string,
  tree: string,
  fields: ReadonlyMap<string, string>,
): GrantRecord => {
  const f = grantHash(fields);
  const list = (name: "ancestors" | "scopes") => {
    const value = f(name) ?? "";
    return value === "" ? [] : value.split(",");
  };
  const mu = f("maxUses");
  const mc = f("maxChildren");
  const idi = f("identityIssuer");
  const bu = f("budgetUsd");
  const bt = f("budgetTokens");
  const mcc = f("maxConcurrent");
  const budget = {
    ...(bu === undefined ? {} : { usd: Number(bu) }),
    ...(bt === undefined ? {} : { tokens: Number(bt) }),
  };
  return {
    id,
    tree,
    rootId: f("rootId") ?? id,
    parentId: f("parentId") || null,
    ancestors: list("ancestors"),
    agent: f("agent") ?? "",
    task: f("task") || null,
    scopes: list("scopes"),
    depth: Number(f("depth") ?? 0),
    issuer: f("issuer") ?? "",
    createdAt: Number(f("createdAt")),
    notAfter: Number(f("notAfter")),
    ttl: Number(f("ttl")),
    maxTtl: Number(f("maxTtl")),
    maxUses: mu === undefined ? null : Number(mu),
    ...(mc === undefined ? {} : { maxChildren: Number(mc) }),
    ...(bu === undefined && bt === undefined ? {} : { budget }),
    ...(mcc === undefined ? {} : { maxConcurrent: Number(mcc) }),
    ...(f("tracked") === "1" ? { tracked: true } : {}),
    metadata: JSON.parse(f("metadata") ?? "{}") as Record<string, string>,
    identity: idi === undefined ? null : { issuer: idi, subject: f("identitySubject") ?? "" },
    ...(f("jkt") === undefined ? {} : { jkt: f("jkt")! }),
    ...(f("onBehalfOf") === undefined ? {} : { onBehalfOf: f("onBehalfOf")! }),
    ...(f("actorIssuer") === undefined
      ? {}
      : { actor: { issuer: f("actorIssuer")!, subject: f("actorSubject") ?? "" } }),
  };
};

/** The subject fields of a reply laid out as `layout` (a denial, a revoked token, an allowed call). */
export const subjectOf = (
  layout: typeof DENIAL | typeof TOKEN_REVOKED | typeof AUTHORIZED,
  reply: readonly string[],
): Subject => {
  const get = (
    name: (typeof DENIAL)[number] & (typeof TOKEN_REVOKED)[number] & (typeof AUTHORIZED)[number],
  ) => reply[(layout as readonly string[]).indexOf(name)] ?? "";
  const issuedAt = get("issuedAt");
  return {
    grantId: get("grantId") || null,
    tokenId: get("tokenId") || null,
    rootGrantId: get("rootGrantId") || null,
    parentGrantId: get("parentGrantId") || null,
    agent: get("agent") || null,
    issuedAt: issuedAt ? Number(issuedAt) : null,
    ...(get("onBehalfOf") ? { onBehalfOf: get("onBehalfOf") } : {}),
  };
};

/** Reads the denial layout the scripts share (schema.ts `DENIAL`). */
export const decodeDenial = <C extends string>(reply: readonly string[]): Denied<C> => {
  const retry = field(DENIAL, reply, "retryAfterMs");
  return {
    ok: false,
    code: field(DENIAL, reply, "code") as C,
    subject: subjectOf(DENIAL, reply),
    reason: reasonFromWire(
      field(DENIAL, reply, "reason"),
      field(DENIAL, reply, "reasonValue"),
      field(DENIAL, reply, "reasonAncestor"),
    ),
    ...(retry ? { retryAfterMs: Number(retry) } : {}),
  };
};

/** A grant hash as admins see it: the record plus revocation mark, uses, newest token. */
export const grantStateFromFields = (
  id: string,
  tree: string,
  fields: ReadonlyMap<string, string>,
): GrantState => {
  const f = grantHash(fields);
  const revokedAt = f("revokedAt");
  const latestExpiresAt = f("latestExpiresAt");
  return {
    grant: grantFromFields(id, tree, fields),
    revokedAt: revokedAt === undefined ? null : Number(revokedAt),
    used: Number(f("used") ?? 0),
    latestTokenId: f("latestTokenId") ?? null,
    latestExpiresAt: latestExpiresAt === undefined ? null : Number(latestExpiresAt),
    ...(f("tracked") === "1"
      ? {
          spend: {
            spentUsd: Number(f("spentUsd") ?? 0),
            spentTokens: Number(f("spentTokens") ?? 0),
            reservedUsd: Number(f("reservedUsd") ?? 0),
            reservedTokens: Number(f("reservedTokens") ?? 0),
            inFlight: Number(f("inFlight") ?? 0),
          },
        }
      : {}),
  };
};

/** The token part of an inspect or refresh reply: {'ok', tokenId, grantId, issuedAt, expiresAt, …}. */
export const tokenFromReply = (reply: readonly string[], hash: string): TokenRecord => ({
  tokenId: field(TOKEN_AND_GRANT, reply, "tokenId"),
  hash,
  grantId: field(TOKEN_AND_GRANT, reply, "grantId"),
  issuedAt: Number(field(TOKEN_AND_GRANT, reply, "issuedAt")),
  expiresAt: Number(field(TOKEN_AND_GRANT, reply, "expiresAt")),
});

/** AUTHORIZE's `left`: 'usdLeft:usdLimit:tokensLeft:tokensLimit', empty parts for units no level limits. */
export const decodeLeft = (text: string): BudgetLeft | undefined => {
  if (!text) return undefined;
  const [ul, ulim, tl, tlim] = text.split(":");
  return {
    ...(ul && ulim ? { usd: { left: Number(ul), limit: Number(ulim) } } : {}),
    ...(tl && tlim ? { tokens: { left: Number(tl), limit: Number(tlim) } } : {}),
  };
};
