/**
 * Why a store refused, as data: the Lua scripts and the memory twin both answer one of these,
 * and `describeReason` is the one place that turns it into the words the audit trail records.
 * A new refusal (a budget, a concurrency cap) adds a kind here and a line in each switch below;
 * the compiler finds the rest.
 */
export type Reason =
  /** The presented token was revoked by id. */
  | { readonly kind: "token"; readonly id: string }
  /** The token's own grant was revoked. */
  | { readonly kind: "grant"; readonly id: string }
  /** An ancestor grant was revoked or is gone. */
  | { readonly kind: "ancestor"; readonly id: string }
  /** A bulk revocation rule selects the grant, or the ancestor it names. */
  | { readonly kind: "rule"; readonly id: string; readonly ancestor?: string }
  /** A bulk revocation purged the tree the token belongs to. */
  | { readonly kind: "purged" }
  /** The grant's notAfter, or the token's own expiry, has passed. */
  | { readonly kind: "expired"; readonly what: "grant" | "token" }
  /** The body broke this scope's constraints (the proxy knows which). */
  | { readonly kind: "constraint"; readonly scope: string }
  /** The scope's rate limit, on the grant or on the ancestor it names. */
  | { readonly kind: "rate"; readonly scope: string; readonly ancestor?: string }
  /** maxUses of the grant, or of the ancestor it names, is spent. */
  | { readonly kind: "uses"; readonly limit: number; readonly ancestor?: string }
  /** The parent grant has created limits.max_children children. */
  | { readonly kind: "children"; readonly limit: number }
  /** The budget of the grant (or of the ancestor it names) cannot cover the worst case. */
  | {
      readonly kind: "budget";
      readonly unit: "usd" | "tokens";
      readonly limit: number;
      readonly ancestor?: string;
    }
  /** The grant (or the ancestor it names) has maxConcurrent requests in flight. */
  | { readonly kind: "concurrency"; readonly limit: number; readonly ancestor?: string }
  /** A tracked lineage with a budget, and a request under this scope with no cost bound. */
  | { readonly kind: "unbudgeted"; readonly scope: string }
  /** A refresh asked for more than the grant's max_ttl. */
  | { readonly kind: "max_ttl" }
  /** A delegation's parent token is not of the parent grant. */
  | { readonly kind: "parent_mismatch" };

export type ReasonKind = Reason["kind"];

const ofAncestor = (ancestor: string | undefined): string => (ancestor ? ` (ancestor ${ancestor})` : "");

/** The reason as the audit trail's `rule` reads it. */
export const describeReason = (reason: Reason): string => {
  switch (reason.kind) {
    case "token":
    case "grant":
    case "ancestor":
      return `${reason.kind} ${reason.id}`;
    case "rule":
      return `rule ${reason.id}${ofAncestor(reason.ancestor)}`;
    case "purged":
      return "purged";
    case "expired":
      return reason.what === "grant" ? "grant notAfter" : "token";
    case "constraint":
      return reason.scope;
    case "rate":
      return `${reason.scope}${ofAncestor(reason.ancestor)}`;
    case "uses":
      return reason.ancestor
        ? `maxUses ${reason.limit} of ancestor ${reason.ancestor}`
        : `maxUses ${reason.limit}`;
    case "children":
      return `max_children ${reason.limit}`;
    case "budget":
      return `budget ${reason.unit === "usd" ? `$${reason.limit / 1e9}` : `${reason.limit} tokens`}${ofAncestor(reason.ancestor)}`;
    case "concurrency":
      return `maxConcurrent ${reason.limit}${ofAncestor(reason.ancestor)}`;
    case "unbudgeted":
      return reason.scope;
    case "max_ttl":
      return "max_ttl";
    case "parent_mismatch":
      return "parent mismatch";
  }
};

/**
 * A reason from the three strings a script answers (kind, value, ancestor); what the scripts
 * write is checked against the same kinds, so an unknown kind is a bug and reads as none.
 */
export const reasonFromWire = (kind: string, value: string, ancestor: string): Reason | null => {
  const above = ancestor ? { ancestor } : {};
  switch (kind as ReasonKind) {
    case "token":
    case "grant":
    case "ancestor":
      return { kind: kind as "token" | "grant" | "ancestor", id: value };
    case "rule":
      return { kind: "rule", id: value, ...above };
    case "purged":
      return { kind: "purged" };
    case "expired":
      return { kind: "expired", what: value === "grant" ? "grant" : "token" };
    case "constraint":
      return { kind: "constraint", scope: value };
    case "rate":
      return { kind: "rate", scope: value, ...above };
    case "uses":
      return { kind: "uses", limit: Number(value), ...above };
    case "children":
      return { kind: "children", limit: Number(value) };
    case "budget": {
      const [unit, limit] = value.split(":");
      return { kind: "budget", unit: unit === "tokens" ? "tokens" : "usd", limit: Number(limit), ...above };
    }
    case "concurrency":
      return { kind: "concurrency", limit: Number(value), ...above };
    case "unbudgeted":
      return { kind: "unbudgeted", scope: value };
    case "max_ttl":
      return { kind: "max_ttl" };
    case "parent_mismatch":
      return { kind: "parent_mismatch" };
    default:
      return null;
  }
};
