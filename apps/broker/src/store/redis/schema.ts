/**
 * The Redis data model, written once for TypeScript and Lua: the key segments of a lineage tree
 * (keys.ts builds them in TypeScript; the scripts get them from the prelude below) and the layouts
 * of the scripts' replies (decoded by name with `field`, never by a bare index).
 */

/** Key segments under a tree's base `<prefix>:{<tree>}:`. */
export const SEGMENT = {
  /** `g:<grantId>` grant record (hash) */
  grant: "g:",
  /** `t:<hash>` token record (hash): the keyed hash of the token, never the token */
  token: "t:",
  /** `ti:<tokenId>` token id → token hash */
  tokenId: "ti:",
  /** `gt:<grantId>` the grant's token ids (set), for purges */
  tokenSet: "gt:",
  /** `rl:<grantId>:<scope>:<window>` sliding-window counters */
  rate: "rl:",
  /** `tree` grant id → parent id (hash), for subtree walks */
  tree: "tree",
  /** `tomb` set when a bulk revocation purged part of the tree */
  tomb: "tomb",
  /** `fl` requests in flight of a tracked lineage (sorted set by lease end), see flight-scripts.ts */
  flights: "fl",
} as const;

/** A grant record's hash fields: the name the code uses → the short name stored. */
export const GRANT = {
  rootId: "root",
  parentId: "par",
  ancestors: "anc",
  agent: "agent",
  task: "task",
  scopes: "scopes",
  depth: "depth",
  issuer: "iss",
  createdAt: "ca",
  notAfter: "na",
  ttl: "ttl",
  maxTtl: "mt",
  metadata: "meta",
  maxUses: "mu",
  maxChildren: "mc",
  identityIssuer: "idi",
  identitySubject: "ids",
  /** DPoP binding: the key's JWK thumbprint, when bound. */
  jkt: "jkt",
  /** The person (or system) the lineage acts for: set on the root, copied to every child. */
  onBehalfOf: "obo",
  /** Token exchange's actor (OIDC issuer, subject), when one asked. */
  actorIssuer: "aci",
  actorSubject: "acs",
  /** Set when revoked (epoch ms). */
  revokedAt: "rev",
  /** Proxied calls counted (only when it or an ancestor has maxUses). */
  used: "used",
  /** Children created, for maxChildren. */
  children: "kids",
  latestTokenId: "lt",
  latestExpiresAt: "le",
  /** Budget limits (nano-dollars, tokens) and the cap on requests in flight, when set. */
  budgetUsd: "bu",
  budgetTokens: "bt",
  maxConcurrent: "mcc",
  /** "1" when the grant or an ancestor has a budget or maxConcurrent: its requests are flights. */
  tracked: "tr",
  /** What the grant and its descendants spent, hold reserved, and have in flight. */
  spentUsd: "su",
  spentTokens: "st",
  reservedUsd: "ru",
  reservedTokens: "rt",
  inFlight: "inf",
} as const;

/** A token record's hash fields. */
export const TOKEN = {
  grantId: "g",
  tokenId: "i",
  issuedAt: "a",
  expiresAt: "e",
  /** Set when the token alone was revoked. */
  revokedAt: "r",
} as const;

/** The stored names of some grant fields, for an HMGET. */
export const GRANT_FIELDS = (...names: (keyof typeof GRANT)[]): string[] => names.map((n) => GRANT[n]);
/** The stored names of some token fields, for an HMGET. */
export const TOKEN_FIELDS = (...names: (keyof typeof TOKEN)[]): string[] => names.map((n) => TOKEN[n]);

/**
 * What `chain()` reads of the token, its grant and each ancestor, in one HMGET each; the Lua
 * reads a value as `t[TR.expiresAt]`, `g[GR.agent]`, `a[AR.used]` (indexes generated below).
 */
export const TOKEN_READ = ["grantId", "tokenId", "issuedAt", "expiresAt", "revokedAt"] as const;
export const GRANT_READ = [
  "notAfter",
  "revokedAt",
  "ancestors",
  "rootId",
  "parentId",
  "agent",
  "scopes",
  "maxUses",
  "used",
  "ttl",
  "maxTtl",
  "createdAt",
  "tracked",
  "onBehalfOf",
] as const;
export const ANCESTOR_READ = [
  "notAfter",
  "revokedAt",
  "maxUses",
  "used",
  "agent",
  "scopes",
  "createdAt",
] as const;

const luaTable = (entries: ReadonlyArray<readonly [string, string | number]>): string =>
  `{${entries.map(([k, v]) => `${k} = ${typeof v === "number" ? v : `'${v}'`}`).join(", ")}}`;
const luaList = (values: readonly string[]): string => `{${values.map((v) => `'${v}'`).join(", ")}}`;
const indexes = (read: readonly string[]) => luaTable(read.map((name, i) => [name, i + 1] as const));

/**
 * Prepended to every script: the key segments `K` (`base .. K.grant .. id`), the field names
 * `F` (grant) and `T` (token), and for `chain()` the read lists and their indexes.
 */
export const LUA_SCHEMA = [
  `local K = ${luaTable(Object.entries(SEGMENT))}`,
  `local F = ${luaTable(Object.entries(GRANT))}`,
  `local T = ${luaTable(Object.entries(TOKEN))}`,
  `local TOKEN_READ = ${luaList(TOKEN_READ.map((n) => TOKEN[n]))}`,
  `local GRANT_READ = ${luaList(GRANT_READ.map((n) => GRANT[n]))}`,
  `local ANCESTOR_READ = ${luaList(ANCESTOR_READ.map((n) => GRANT[n]))}`,
  `local TR = ${indexes(TOKEN_READ)}`,
  `local GR = ${indexes(GRANT_READ)}`,
  `local AR = ${indexes(ANCESTOR_READ)}`,
  "",
].join("\n");

/** Who a reply is about, in the order every layout below carries it. */
const SUBJECT = [
  "grantId",
  "tokenId",
  "rootGrantId",
  "parentGrantId",
  "agent",
  "issuedAt",
  "onBehalfOf",
] as const;

/** A denial, as every script that acts on a token answers it (`fail()` in the Lua). */
export const DENIAL = [
  "code",
  ...SUBJECT,
  "reason",
  "reasonValue",
  "reasonAncestor",
  "retryAfterMs",
] as const;

/** AUTHORIZE's answer when it allows (then, when asked, the chain's rule facts). */
/** With facts asked for: `expiresAt`, `chain` ("1;" when the chain counts spend here, "u;" only uses, "0;" nothing; then the ancestors' ids), then facts. */
export const AUTHORIZED = [
  "ok",
  ...SUBJECT,
  "scope",
  "flight",
  "left",
  "notAfter",
  "expiresAt",
  "chain",
] as const;

/** FACTS' answer: the chain's root, the token's expiry and onBehalfOf, then (agent, scopes, createdAt) per grant. */
export const CHAIN_FACTS = ["ok", "rootGrantId", "expiresAt", "onBehalfOf"] as const;

/** REVOKE_TOKEN's answer: the status, then the token's subject as in a denial. */
export const TOKEN_REVOKED = ["status", ...SUBJECT] as const;

/** INSPECT's and REFRESH's answer: the token, then the grant's fields as name/value pairs. */
export const TOKEN_AND_GRANT = ["ok", "tokenId", "grantId", "issuedAt", "expiresAt"] as const;

/** The reply's value for a field of its layout ("" when the reply is shorter). */
export const field = <L extends readonly string[]>(
  layout: L,
  reply: readonly string[],
  name: L[number],
): string => reply[layout.indexOf(name)] ?? "";

/** Where the part after a layout starts (facts, field pairs). */
export const after = (layout: readonly string[]): number => layout.length;
