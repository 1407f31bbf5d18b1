import { grantTree } from "@perishable/protocol";
import { type RevocationRule, ruleSelects } from "../../policy/revocation.js";
import { RuleIndex } from "../../policy/rule-index.js";
import { subtreeOf } from "../grant-tree.js";
import type { Reason } from "../reason.js";
import {
  type Denied,
  type GrantRecord,
  type GrantState,
  RECORD_GRACE_MS,
  type Subject,
  type TokenDenial,
  type TokenRecord,
  type TokenRef,
} from "../types.js";
import type { MemoryFlight, MutableSpend } from "./flights.js";

/*
 * What the memory store keeps, and the checks every use of a token shares (`chain`): the
 * readable twin of the Lua prelude in `redis/scripts.ts`. Record expiry mirrors the Redis TTLs.
 */

export interface StoredToken {
  readonly record: TokenRecord;
  revoked: boolean;
  readonly expireAt: number;
}

export interface StoredGrant {
  readonly record: GrantRecord;
  revokedAt: number | null;
  used: number;
  /** Child grants created, for maxChildren. */
  children: number;
  latestTokenId: string;
  latestExpiresAt: number;
  readonly tokenIds: Set<string>;
  readonly expireAt: number;
  /** Spent, reserved and in flight (counted only for a tracked grant). */
  readonly spend: MutableSpend;
}

export interface Counter {
  count: number;
  readonly expireAt: number;
}

export type Chain =
  | { ok: true; token: StoredToken; grant: StoredGrant; ancestors: StoredGrant[] }
  | Denied<TokenDenial>;

export class MemoryState {
  readonly tokens = new Map<string, StoredToken>();
  readonly tokenIds = new Map<string, string>();
  readonly grants = new Map<string, StoredGrant>();
  readonly trees = new Map<string, Map<string, string>>();
  readonly tombs = new Map<string, number>();
  readonly counters = new Map<string, Counter>();
  readonly expiries = new Map<string, number>();
  /** Tree → its flights by member (the twin of the tree's `fl` set). */
  readonly flights = new Map<string, Map<string, MemoryFlight>>();
  #rules: RevocationRule[] = [];
  #index = new RuleIndex([]);

  get rules(): readonly RevocationRule[] {
    return this.#rules;
  }

  /** Drops records past their end; exposed so tests can drive it with their own clock. */
  sweep(now: number): void {
    for (const [key, token] of this.tokens) {
      if (token.expireAt <= now) {
        this.tokens.delete(key);
        this.tokenIds.delete(token.record.tokenId);
      }
    }
    for (const [id, grant] of this.grants) {
      if (grant.expireAt <= now) {
        this.grants.delete(id);
        this.trees.get(grant.record.tree)?.delete(id);
      }
    }
    for (const [tree, links] of this.trees) if (links.size === 0) this.trees.delete(tree);
    for (const [tree, until] of this.tombs) if (until <= now) this.tombs.delete(tree);
    for (const [key, counter] of this.counters) if (counter.expireAt <= now) this.counters.delete(key);
    this.setRules(this.#rules.filter((r) => r.expiresAt > now));
  }

  setRules(rules: RevocationRule[]): void {
    this.#rules = rules;
    this.#index = new RuleIndex(rules);
  }

  storeToken(tree: string, token: TokenRecord): void {
    this.tokens.set(`${tree}/${token.hash}`, {
      record: token,
      revoked: false,
      expireAt: token.expiresAt + RECORD_GRACE_MS,
    });
    this.tokenIds.set(token.tokenId, token.hash);
  }

  grant(id: string, now: number): StoredGrant | undefined {
    const stored = this.grants.get(id);
    return stored && stored.expireAt > now ? stored : undefined;
  }

  count(key: string, now: number): number {
    const counter = this.counters.get(key);
    return counter && counter.expireAt > now ? counter.count : 0;
  }

  /** The grant and every grant below it, parents before children. */
  subtree(grantId: string): string[] {
    const treeId = grantTree(grantId);
    const tree = treeId ? this.trees.get(treeId) : undefined;
    return subtreeOf(Object.fromEntries(tree ?? []), grantId);
  }

  ruleHit(grant: GrantRecord, now: number): string | undefined {
    const subject = {
      agent: grant.agent,
      scopes: grant.scopes,
      rootId: grant.rootId,
      onBehalfOf: grant.onBehalfOf,
      createdAt: grant.createdAt,
    };
    return this.#index.first(subject, now)?.id;
  }

  /** How many live grants (with their subtrees) a rule selects now. */
  preview(rule: RevocationRule, now: number): number {
    const ids = new Set<string>();
    for (const g of this.grants.values()) {
      if (g.expireAt <= now) continue;
      const { agent, scopes, rootId, createdAt, id, onBehalfOf } = g.record;
      if (ruleSelects(rule, { agent, scopes, rootId, createdAt, onBehalfOf }))
        for (const s of this.subtree(id)) ids.add(s);
    }
    let live = 0;
    for (const id of ids) {
      const g = this.grant(id, now);
      if (g && g.revokedAt === null && g.record.notAfter > now) live += 1;
    }
    return live;
  }

  /** The same checks, in the same order, as `chain()` in the Lua scripts. */
  chain(ref: TokenRef, now: number): Chain {
    const tomb = (this.tombs.get(ref.tree) ?? 0) > now;
    const token = this.tokens.get(`${ref.tree}/${ref.hash}`);
    if (!token || token.expireAt <= now) {
      return tomb ? deny("token_revoked", EMPTY_SUBJECT, PURGED) : deny("token_invalid", EMPTY_SUBJECT, null);
    }
    const grant = this.grant(token.record.grantId, now);
    const subject = subjectOf(token, grant);
    if (token.revoked) return deny("token_revoked", subject, { kind: "token", id: token.record.tokenId });
    if (!grant) return tomb ? deny("token_revoked", subject, PURGED) : deny("token_invalid", subject, null);
    if (grant.revokedAt !== null)
      return deny("token_revoked", subject, { kind: "grant", id: grant.record.id });
    const hit = this.ruleHit(grant.record, now);
    if (hit) return deny("token_revoked", subject, { kind: "rule", id: hit });
    const ancestors: StoredGrant[] = [];
    for (const id of grant.record.ancestors) {
      const ancestor = this.grant(id, now);
      if (!ancestor || ancestor.revokedAt !== null)
        return deny("token_revoked", subject, { kind: "ancestor", id });
      const ancestorHit = this.ruleHit(ancestor.record, now);
      if (ancestorHit) return deny("token_revoked", subject, { kind: "rule", id: ancestorHit, ancestor: id });
      ancestors.push(ancestor);
    }
    if (grant.record.notAfter <= now)
      return deny("token_expired", subject, { kind: "expired", what: "grant" });
    if (token.record.expiresAt <= now)
      return deny("token_expired", subject, { kind: "expired", what: "token" });
    return { ok: true, token, grant, ancestors };
  }
}

export const EMPTY_SUBJECT: Subject = {
  grantId: null,
  tokenId: null,
  rootGrantId: null,
  parentGrantId: null,
  agent: null,
  issuedAt: null,
};

export const stateOf = (stored: StoredGrant): GrantState => ({
  grant: stored.record,
  revokedAt: stored.revokedAt,
  used: stored.used,
  latestTokenId: stored.latestTokenId,
  latestExpiresAt: stored.latestExpiresAt,
  ...(stored.record.tracked ? { spend: { ...stored.spend } } : {}),
});

export const subjectOf = (token: StoredToken, grant: StoredGrant | undefined): Subject => ({
  grantId: token.record.grantId,
  tokenId: token.record.tokenId,
  rootGrantId: grant?.record.rootId ?? null,
  parentGrantId: grant?.record.parentId ?? null,
  agent: grant?.record.agent ?? null,
  issuedAt: token.record.issuedAt,
  ...(grant?.record.onBehalfOf ? { onBehalfOf: grant.record.onBehalfOf } : {}),
});

export const PURGED: Reason = { kind: "purged" };

export const deny = <C extends string>(code: C, subject: Subject, reason: Reason | null): Denied<C> => ({
  ok: false,
  code,
  subject,
  reason,
});
