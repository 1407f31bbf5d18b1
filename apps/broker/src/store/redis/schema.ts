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
} as const;

/** The segments as a Lua table `K`, prepended to every script: `base .. K.grant .. id`. */
export const LUA_SEGMENTS = `local K = {${Object.entries(SEGMENT)
  .map(([name, segment]) => `${name} = '${segment}'`)
  .join(", ")}}\n`;

/** Who a reply is about, in the order every layout below carries it. */
const SUBJECT = ["grantId", "tokenId", "rootGrantId", "parentGrantId", "agent", "issuedAt"] as const;

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
export const AUTHORIZED = ["ok", ...SUBJECT, "scope", "expiresAt"] as const;

/** FACTS' answer: the chain's root and the token's expiry, then (agent, scopes, createdAt) per grant. */
export const CHAIN_FACTS = ["ok", "rootGrantId", "expiresAt"] as const;

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
