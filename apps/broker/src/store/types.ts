import type { AuditLine, AuditQuery, AuditRead } from "./audit-types.js";

export type { AuditLine, AuditQuery, AuditRead, AuditRecord } from "./audit-types.js";

import type { BudgetLimits, WorstCase } from "../policy/pricing.js";
import type { RevocationRule } from "../policy/revocation.js";
import type { Reason } from "./reason.js";

/**
 * A grant as the store keeps it. Times are epoch milliseconds. Scopes are names from the config;
 * the store never interprets them beyond set membership.
 */
export interface GrantRecord {
  readonly id: string;
  /** The lineage tree (hash tag): the first characters of the root grant's id. */
  readonly tree: string;
  readonly rootId: string;
  readonly parentId: string | null;
  /** Ancestor grant ids, root first, without the grant itself. */
  readonly ancestors: readonly string[];
  readonly agent: string;
  readonly task: string | null;
  readonly scopes: readonly string[];
  readonly depth: number;
  /** Name of the issuer that created the root of this lineage. */
  readonly issuer: string;
  readonly createdAt: number;
  readonly notAfter: number;
  /** Default token lifetime for refreshes (ms). */
  readonly ttl: number;
  /** Largest token lifetime a refresh may ask for (ms). */
  readonly maxTtl: number;
  readonly maxUses: number | null;
  /** How many child grants this grant may create in its life (limits.max_children); none when absent. */
  readonly maxChildren?: number;
  /** What the grant and its descendants may spend (nano-dollars, tokens); none: its ancestors' bounds it. */
  readonly budget?: BudgetLimits;
  /** Requests in flight at once, its descendants' included. */
  readonly maxConcurrent?: number;
  /** True when it or an ancestor has a budget or maxConcurrent: its requests are then flights. */
  readonly tracked?: boolean;
  readonly metadata: Readonly<Record<string, string>>;
  /** The workload identity the root was granted to (children inherit it), or null for an issuer key. */
  readonly identity: { readonly issuer: string; readonly subject: string } | null;
  /**
   * DPoP binding: the JWK thumbprint every use of the grant's tokens must prove. Its tokens are
   * stored under `hasher.hash(token, jkt)`, so a bound token without a proof by that key finds
   * nothing: the store refuses it as it refuses a made-up token, before anything is counted.
   */
  readonly jkt?: string;
  /** Who the lineage acts for (`user:alice`): set on the root by its issuer, the same on every child. */
  readonly onBehalfOf?: string;
  /** Token exchange: the workload (OIDC issuer and subject) that asked for the grant, acting for its subject. */
  readonly actor?: { readonly issuer: string; readonly subject: string };
}

export interface TokenRecord {
  readonly tokenId: string;
  /** Keyed hash of the token; the token itself is never stored. */
  readonly hash: string;
  readonly grantId: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
}

/** A scope that matched the request's upstream, method and path, as the proxy hands it to `authorize`. */
export interface Candidate {
  readonly scope: string;
  /** False when the request body breaks this scope's constraints. */
  readonly pass: boolean;
  /** Requests per window, 0 for no limit. */
  readonly limit: number;
  readonly windowMs: number;
  /** The request's cost bound under this scope (nano-dollars, tokens), or null when it has none. */
  readonly worst: WorstCase | null;
}

import type { Cut, LiveInfo, LiveQuery, NodeReport, NodeWork, Revoked } from "./node-types.js";

export type { Cut, LiveInfo, LiveQuery, NodeReport, NodeWork, Revoked };

/** A candidate's cost bound, or null for none. */
export type WorstCaseOrNone = WorstCase | null;

/** A request in flight of a tracked lineage: what settles it (opaque but for its tree). */
export interface Flight {
  readonly tree: string;
  readonly member: string;
  /** A request served from this node's slice of the lineage's spend (redis/spend-slices.ts): settled here. */
  readonly local?: { close(cost: WorstCase | null): void };
}

/** What a flight really cost; null usd/tokens: its full reservation (no usage, an error, an abort). */
export interface Settlement {
  readonly flight: Flight;
  readonly cost: WorstCase | null;
}

/** What a tracked grant has spent (nano-dollars, tokens), holds reserved, and has in flight. */
export interface SpendState {
  readonly spentUsd: number;
  readonly spentTokens: number;
  readonly reservedUsd: number;
  readonly reservedTokens: number;
  readonly inFlight: number;
}

/** Who a decision is about, as far as the store could tell: what the audit trail records. */
export interface Subject {
  readonly grantId: string | null;
  readonly tokenId: string | null;
  readonly rootGrantId: string | null;
  readonly parentGrantId: string | null;
  readonly agent: string | null;
  /** When the presented token was issued (credential age at use), if known. */
  readonly issuedAt: number | null;
  /** Who the lineage acts for, when its root says. */
  readonly onBehalfOf?: string;
}

export type TokenDenial = "token_invalid" | "token_expired" | "token_revoked";
export type AuthorizeDenial =
  | TokenDenial
  | "scope_denied"
  | "constraint_denied"
  | "rate_limited"
  | "budget_exhausted"
  | "concurrency_limited"
  | "forbidden";

export type Denied<C extends string> = {
  readonly ok: false;
  readonly code: C;
  readonly subject: Subject;
  /** Why, as data (the revoked ancestor, the scope whose limit or constraint applied); `describeReason` words it. */
  readonly reason: Reason | null;
  readonly retryAfterMs?: number;
};

export type AuthorizeResult =
  | {
      readonly ok: true;
      readonly subject: Subject;
      readonly scope: string;
      readonly flight: Flight | null;
      /** The grant's end: what the request may stay open until. */
      readonly notAfter: number;
      /** What the lineage has left once this request is reserved (its tightest level), when it has a budget. */
      readonly left?: BudgetLeft;
    }
  | Denied<AuthorizeDenial>;

/** The least left of each unit over a lineage's levels, with that level's limit (nano-dollars, tokens). */
export interface BudgetLeft {
  readonly usd?: { readonly left: number; readonly limit: number };
  readonly tokens?: { readonly left: number; readonly limit: number };
}

/** Names a request's flight, should it be one: an id unique to it, and when its lease ends. */
export interface Lease {
  readonly id: string;
  readonly until: number;
}

export type InspectResult =
  | {
      readonly ok: true;
      readonly token: TokenRecord;
      readonly grant: GrantRecord;
      readonly used: number;
      /** The grant's spend, when it is tracked. */
      readonly spend?: SpendState;
    }
  | Denied<TokenDenial>;

export interface RefreshInput {
  readonly tokenId: string;
  readonly hash: string;
  /** Requested lifetime of the new token (ms), or undefined for the grant's default. */
  readonly ttl: number | undefined;
}

export type RefreshResult =
  | { readonly ok: true; readonly token: TokenRecord; readonly grant: GrantRecord }
  | Denied<TokenDenial | "ttl_exceeded">;

export type CreateResult = { readonly ok: true } | Denied<TokenDenial | "delegation_denied">;

/** Where to find a presented token: its tree (from the token's routing part) and keyed hash. */
export interface TokenRef {
  readonly tree: string;
  readonly hash: string;
}

/** A grant with its state, as admins see it. */
export interface GrantState {
  readonly grant: GrantRecord;
  readonly revokedAt: number | null;
  /** Proxied calls counted against the grant (only counted when it or an ancestor has maxUses). */
  readonly used: number;
  readonly latestTokenId: string | null;
  readonly latestExpiresAt: number | null;
  /** Set for a tracked grant. */
  readonly spend?: SpendState;
}

export interface TokenState {
  readonly tokenId: string;
  readonly grantId: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
  readonly revoked: boolean;
}

export interface GrantLineage {
  readonly grant: GrantState;
  /** Root first. */
  readonly ancestors: readonly GrantState[];
  /** Parents before children. */
  readonly subtree: readonly GrantState[];
}

export interface GrantFilter {
  readonly agent?: string;
  readonly scope?: string;
  readonly rootGrantId?: string;
}

export type RevokeTokenResult =
  | { readonly status: "none" }
  | { readonly status: "revoked" | "already"; readonly subject: Subject; readonly connections: number };

/** A grant whose newest token has expired without a successor: its authority ended by time. */
export interface ExpiredGrant {
  readonly subject: Subject;
  /** `grant`: it reached its notAfter; `token`: its holder stopped refreshing. */
  readonly reason: "grant" | "token";
}

/**
 * Everything the broker keeps, behind one interface with two implementations (Redis, memory)
 * that pass one contract suite. Every method that decides on a token does it atomically, in one
 * round trip, checking the token, its grant, every ancestor grant and the active revocation rules.
 *
 * Failures to reach the store reject with StoreUnavailableError; denials are results.
 */
export interface Store {
  /**
   * Stores a grant and its first token. With `parent`, the grant is a child: the parent token
   * is re-checked in the same atomic step, so a revocation racing the delegation always wins.
   */
  createGrant(grant: GrantRecord, token: TokenRecord, parent?: TokenRef, now?: number): Promise<CreateResult>;
  /**
   * The hot path: token → grant → ancestors → rules → scope → maxUses → rate limits → budgets and
   * slots, in one step. A tracked lineage's request becomes a flight under `lease`: its worst case
   * is reserved and a slot taken on the grant and every ancestor until it settles or its lease ends.
   */
  authorize(
    ref: TokenRef,
    now: number,
    candidates: readonly Candidate[],
    lease?: Lease,
  ): Promise<AuthorizeResult>;
  /** Charges flights what they cost and frees their slots (off the request path, in batches). */
  settle(settlements: readonly Settlement[]): Promise<void>;
  /** Extends open flights' leases (their requests are still running) to `until`. */
  renew(flights: readonly Flight[], until: number): Promise<void>;
  /**
   * Makes this node answer the others: every revocation of any node (grants with their subtrees,
   * tokens, what a bulk walk purged) is handed to `work.cut` before the revoking call answers, on
   * every live node. → the unsubscribe.
   */
  serve(work: NodeWork): () => void;
  /** This node's id among the live nodes. */
  readonly nodeId: string;
  /** The live connections every node reports for the query. */
  askLive(query: LiveQuery): Promise<NodeReport<LiveInfo>>;
  /** Since when this node may have missed revocations pushed by other nodes, or undefined. */
  deafSince(): number | undefined;
  /** A valid token's record and grant (for `GET /v1/tokens/self` and delegation). */
  inspect(ref: TokenRef, now: number): Promise<InspectResult>;
  /** A new token for the presented token's grant; the presented one stays valid to its own expiry. */
  refresh(ref: TokenRef, now: number, next: RefreshInput): Promise<RefreshResult>;
  /** Revokes a grant and its whole subtree, and cuts what is live of it on every node. */
  revokeGrant(grantId: string, now: number): Promise<Revoked>;
  /** Revokes one token by its public id. */
  revokeToken(tokenId: string, now: number): Promise<RevokeTokenResult>;

  /** A grant and its state, while its record exists (until a minute past its end). */
  getGrant(grantId: string, now: number): Promise<GrantState | undefined>;
  getLineage(grantId: string, now: number): Promise<GrantLineage | undefined>;
  /** Grants that are still live, a page at a time. */
  listGrants(
    filter: GrantFilter,
    cursor: string | null,
    limit: number,
    now: number,
  ): Promise<{ grants: GrantState[]; next: string | null }>;

  /** Stores a revocation rule; resolves once every live broker node enforces it. */
  putRule(rule: RevocationRule): Promise<void>;
  /** The rules this node enforces now. */
  rules(): readonly RevocationRule[];
  /**
   * The bulk revocation's walk: finds every grant `rule` selects, in batches, and deletes it with
   * its subtree and all their tokens (their trees keep a tombstone: their tokens read as revoked).
   */
  purge(rule: RevocationRule, now: number): Promise<Revoked & { readonly tokens: number }>;
  /** How many live grants (with their subtrees) a rule would revoke, without revoking anything. */
  preview(rule: RevocationRule, now: number): Promise<number>;
  /** One token by its public id, while its record exists. */
  getToken(tokenId: string, now: number): Promise<TokenState | undefined>;

  /** Grants whose newest token expired; each is handed to exactly one caller across all nodes. */
  claimExpired(now: number, limit: number): Promise<ExpiredGrant[]>;
  /** Grants with a token alive now (approximate: for metrics). */
  countLiveGrants(now: number): Promise<number>;

  /**
   * True the first time `value` is claimed within `ttlMs`, on any node; false after that (a DPoP
   * proof's key and jti: a replay on another node is refused too).
   */
  claimOnce(value: string, ttlMs: number, now: number): Promise<boolean>;
  /** Events as `AuditLine`s (their JSON text), in order. */
  appendAudit(lines: readonly AuditLine[]): Promise<void>;
  readAudit(query: AuditQuery): Promise<AuditRead>;
  /** Rejects when the store cannot serve requests. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export { StoreUnavailableError, UnreplicatedError } from "./errors.js";

/**
 * Records outlive their end by this much, so a token that expired a moment ago is answered with
 * `token_expired` (the SDK refreshes) rather than `token_invalid`, and clock skew between broker
 * nodes and Redis cannot turn an expiring ancestor into a false revocation. A record past its end
 * is never honoured: every check compares against the stored time, not the key's existence.
 */
export const RECORD_GRACE_MS = 60_000;
