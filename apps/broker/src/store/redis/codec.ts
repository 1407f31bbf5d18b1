import { reasonFromWire } from "../reason.js";
import type { Denied, GrantRecord, GrantState, Subject } from "../types.js";
import { type AUTHORIZED, DENIAL, field, type TOKEN_REVOKED } from "./schema.js";

/** Grant record ⇄ Redis hash fields. Scope and ancestor lists are comma-joined (names cannot hold commas). */
export const grantFields = (grant: GrantRecord): string[] => {
  // biome-ignore format: field/value pairs read best two to a line
  const fields = [
    "root", grant.rootId,
    "par", grant.parentId ?? "",
    "anc", grant.ancestors.join(","),
    "agent", grant.agent,
    "task", grant.task ?? "",
    "scopes", grant.scopes.join(","),
    "depth", String(grant.depth),
    "iss", grant.issuer,
    "ca", String(grant.createdAt),
    "na", String(grant.notAfter),
    "ttl", String(grant.ttl),
    "mt", String(grant.maxTtl),
    "meta", JSON.stringify(grant.metadata),
  ];
  if (grant.maxUses !== null) fields.push("mu", String(grant.maxUses));
  if (grant.maxChildren !== undefined) fields.push("mc", String(grant.maxChildren));
  if (grant.identity) fields.push("idi", grant.identity.issuer, "ids", grant.identity.subject);
  return fields;
};

export const pairsToMap = (flat: readonly string[], from: number): Map<string, string> => {
  const map = new Map<string, string>();
  for (let i = from; i + 1 < flat.length; i += 2) map.set(flat[i]!, flat[i + 1]!);
  return map;
};

export const grantFromFields = (id: string, tree: string, f: ReadonlyMap<string, string>): GrantRecord => {
  const list = (name: string) => {
    const value = f.get(name) ?? "";
    return value === "" ? [] : value.split(",");
  };
  const mu = f.get("mu");
  const mc = f.get("mc");
  return {
    id,
    tree,
    rootId: f.get("root") ?? id,
    parentId: f.get("par") || null,
    ancestors: list("anc"),
    agent: f.get("agent") ?? "",
    task: f.get("task") || null,
    scopes: list("scopes"),
    depth: Number(f.get("depth") ?? 0),
    issuer: f.get("iss") ?? "",
    createdAt: Number(f.get("ca")),
    notAfter: Number(f.get("na")),
    ttl: Number(f.get("ttl")),
    maxTtl: Number(f.get("mt")),
    maxUses: mu === undefined ? null : Number(mu),
    ...(mc === undefined ? {} : { maxChildren: Number(mc) }),
    metadata: JSON.parse(f.get("meta") ?? "{}") as Record<string, string>,
    identity: f.has("idi") ? { issuer: f.get("idi")!, subject: f.get("ids") ?? "" } : null,
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
  f: ReadonlyMap<string, string>,
): GrantState => ({
  grant: grantFromFields(id, tree, f),
  revokedAt: f.has("rev") ? Number(f.get("rev")) : null,
  used: Number(f.get("used") ?? 0),
  latestTokenId: f.get("lt") ?? null,
  latestExpiresAt: f.has("le") ? Number(f.get("le")) : null,
});
