import { type AuditEvent, grantTree, tokenIdTree } from "@perishable/protocol";
import { type RevocationRule, ruleSelects } from "../../policy/revocation.js";
import { RuleIndex } from "../../policy/rule-index.js";
import { isLive, matchesFilter, subtreeOf } from "../grant-tree.js";
import type { Reason } from "../reason.js";
import { windowWait } from "../sliding-window.js";
import {
  type AuditQuery,
  type AuditRead,
  type AuthorizeResult,
  type Candidate,
  type CreateResult,
  type Denied,
  type ExpiredGrant,
  type GrantFilter,
  type GrantLineage,
  type GrantRecord,
  type GrantState,
  type InspectResult,
  RECORD_GRACE_MS,
  type RefreshInput,
  type RefreshResult,
  type RevokeTokenResult,
  type Store,
  StoreUnavailableError,
  type Subject,
  type TokenDenial,
  type TokenRecord,
  type TokenRef,
  type TokenState,
} from "../types.js";
import { MemoryAuditTrail } from "./audit-trail.js";

interface StoredToken {
  readonly record: TokenRecord;
  revoked: boolean;
  readonly expireAt: number;
}

interface StoredGrant {
  readonly record: GrantRecord;
  revokedAt: number | null;
  used: number;
  /** Child grants created, for maxChildren. */
  children: number;
  latestTokenId: string;
  latestExpiresAt: number;
  readonly tokenIds: Set<string>;
  readonly expireAt: number;
}

interface Counter {
  count: number;
  readonly expireAt: number;
}

export interface MemoryStoreOptions {
  readonly auditMaxLen: number;
  /** How often expired records are swept (ms); records past their end are never honoured meanwhile. */
  readonly sweepMs?: number;
}

type Chain =
  | { ok: true; token: StoredToken; grant: StoredGrant; ancestors: StoredGrant[] }
  | Denied<TokenDenial>;

/**
 * The single-node store for development and demos: the same semantics as the Redis store
 * (the same contract suite runs against both), kept in this process's memory. Record expiry
 * mirrors the Redis TTLs; checks compare against the `now` they are given.
 */
export class MemoryStore implements Store {
  readonly #tokens = new Map<string, StoredToken>();
  readonly #tokenIds = new Map<string, string>();
  readonly #grants = new Map<string, StoredGrant>();
  readonly #trees = new Map<string, Map<string, string>>();
  readonly #tombs = new Map<string, number>();
  readonly #counters = new Map<string, Counter>();
  readonly #expiries = new Map<string, number>();
  #rules: RevocationRule[] = [];
  #closed = false;
  #index = new RuleIndex([]);
  readonly #audit: MemoryAuditTrail;
  readonly #sweeper: NodeJS.Timeout;

  constructor(options: MemoryStoreOptions) {
    this.#audit = new MemoryAuditTrail(options.auditMaxLen);
    this.#sweeper = setInterval(() => this.sweep(Date.now()), options.sweepMs ?? 30_000);
    this.#sweeper.unref();
  }

  async createGrant(
    grant: GrantRecord,
    token: TokenRecord,
    parent?: TokenRef,
    now = Date.now(),
  ): Promise<CreateResult> {
    if (parent) {
      const chain = this.#chain(parent, now);
      if (!chain.ok) return chain;
      if (chain.token.record.grantId !== grant.parentId) {
        return deny("token_invalid", subjectOf(chain.token, chain.grant), { kind: "parent_mismatch" });
      }
      const cap = chain.grant.record.maxChildren;
      if (cap !== undefined && chain.grant.children >= cap) {
        return deny("delegation_denied", subjectOf(chain.token, chain.grant), {
          kind: "children",
          limit: cap,
        });
      }
      chain.grant.children += 1;
    }
    this.#grants.set(grant.id, {
      record: grant,
      revokedAt: null,
      used: 0,
      children: 0,
      latestTokenId: token.tokenId,
      latestExpiresAt: token.expiresAt,
      tokenIds: new Set([token.tokenId]),
      expireAt: grant.notAfter + RECORD_GRACE_MS,
    });
    this.#storeToken(grant.tree, token);
    const tree = this.#trees.get(grant.tree) ?? new Map<string, string>();
    this.#trees.set(grant.tree, tree);
    tree.set(grant.id, grant.parentId ?? "");
    this.#expiries.set(grant.id, Math.max(this.#expiries.get(grant.id) ?? 0, token.expiresAt));
    return { ok: true };
  }

  async authorize(ref: TokenRef, now: number, candidates: readonly Candidate[]): Promise<AuthorizeResult> {
    const chain = this.#chain(ref, now);
    if (!chain.ok) return chain;
    const { token, grant } = chain;
    const subject = subjectOf(token, grant);
    const held = new Set(grant.record.scopes);
    let chosen: Candidate | undefined;
    let failed: string | undefined;
    for (const c of candidates) {
      if (!held.has(c.scope)) continue;
      if (c.pass) {
        chosen = c;
        break;
      }
      failed ??= c.scope;
    }
    if (!chosen)
      return failed
        ? deny("constraint_denied", subject, { kind: "constraint", scope: failed })
        : deny("scope_denied", subject, null);
    // maxUses of the grant and of every ancestor that has one: a use by a child is a use of each.
    const spend: StoredGrant[] = [];
    const { maxUses } = grant.record;
    if (maxUses !== null) {
      if (grant.used >= maxUses) return deny("forbidden", subject, { kind: "uses", limit: maxUses });
      spend.push(grant);
    }
    for (const ancestor of chain.ancestors) {
      const limit = ancestor.record.maxUses;
      if (limit === null) continue;
      if (ancestor.used >= limit)
        return deny("forbidden", subject, { kind: "uses", limit, ancestor: ancestor.record.id });
      spend.push(ancestor);
    }
    if (chosen.limit > 0) {
      const window = chosen.windowMs;
      const cur = Math.floor(now / window);
      const into = now - cur * window;
      const levels = [grant.record.id, ...grant.record.ancestors];
      const keys: string[] = [];
      for (const [i, id] of levels.entries()) {
        const base = `${grant.record.tree}:${id}:${chosen.scope}:`;
        const wait = windowWait({
          current: this.#count(`${base}${cur}`, now),
          previous: this.#count(`${base}${cur - 1}`, now),
          windowMs: window,
          into,
          limit: chosen.limit,
        });
        if (wait !== undefined) {
          const reason = { kind: "rate", scope: chosen.scope, ...(i === 0 ? {} : { ancestor: id }) } as const;
          return { ...deny("rate_limited", subject, reason), retryAfterMs: wait };
        }
        keys.push(`${base}${cur}`);
      }
      for (const key of keys) {
        const counter = this.#counters.get(key);
        if (counter && counter.expireAt > now) counter.count += 1;
        else this.#counters.set(key, { count: 1, expireAt: now + window * 2 });
      }
    }
    for (const g of spend) g.used += 1;
    return { ok: true, subject, scope: chosen.scope };
  }

  async inspect(ref: TokenRef, now: number): Promise<InspectResult> {
    const chain = this.#chain(ref, now);
    if (!chain.ok) return chain;
    return { ok: true, token: chain.token.record, grant: chain.grant.record, used: chain.grant.used };
  }

  async refresh(ref: TokenRef, now: number, next: RefreshInput): Promise<RefreshResult> {
    const chain = this.#chain(ref, now);
    if (!chain.ok) return chain;
    const grant = chain.grant.record;
    const ttl = next.ttl ?? grant.ttl;
    if (ttl > grant.maxTtl)
      return deny("ttl_exceeded", subjectOf(chain.token, chain.grant), { kind: "max_ttl" });
    const token: TokenRecord = {
      tokenId: next.tokenId,
      hash: next.hash,
      grantId: grant.id,
      issuedAt: now,
      expiresAt: Math.min(now + ttl, grant.notAfter),
    };
    this.#storeToken(grant.tree, token);
    chain.grant.tokenIds.add(token.tokenId);
    chain.grant.latestTokenId = token.tokenId;
    chain.grant.latestExpiresAt = token.expiresAt;
    this.#expiries.set(grant.id, Math.max(this.#expiries.get(grant.id) ?? 0, token.expiresAt));
    return { ok: true, token, grant };
  }

  async revokeGrant(grantId: string, now: number): Promise<number> {
    let count = 0;
    for (const id of this.#subtree(grantId)) {
      const stored = this.#grant(id, now);
      if (stored && stored.revokedAt === null && stored.record.notAfter > now) {
        stored.revokedAt = now;
        this.#expiries.delete(id);
        count += 1;
      }
    }
    return count;
  }

  async revokeToken(tokenId: string, now: number): Promise<RevokeTokenResult> {
    const tree = tokenIdTree(tokenId);
    const hash = this.#tokenIds.get(tokenId);
    const token = tree && hash ? this.#tokens.get(`${tree}/${hash}`) : undefined;
    if (!token || token.expireAt <= now || token.record.expiresAt <= now) return { status: "none" };
    const status = token.revoked ? "already" : "revoked";
    token.revoked = true;
    return { status, subject: subjectOf(token, this.#grant(token.record.grantId, now)) };
  }

  async getGrant(grantId: string, now: number): Promise<GrantState | undefined> {
    const stored = this.#grant(grantId, now);
    return stored ? stateOf(stored) : undefined;
  }

  async getLineage(grantId: string, now: number): Promise<GrantLineage | undefined> {
    const self = this.#grant(grantId, now);
    if (!self) return undefined;
    const states = (ids: readonly string[]) =>
      ids
        .map((id) => this.#grant(id, now))
        .filter((g): g is StoredGrant => g !== undefined)
        .map(stateOf);
    return {
      grant: stateOf(self),
      ancestors: states(self.record.ancestors),
      subtree: states(this.#subtree(grantId).slice(1)),
    };
  }

  async listGrants(
    filter: GrantFilter,
    cursor: string | null,
    limit: number,
    now: number,
  ): Promise<{ grants: GrantState[]; next: string | null }> {
    const all = [...this.#grants.values()]
      .filter((g) => g.expireAt > now)
      .map(stateOf)
      .filter((s) => isLive(s, now) && matchesFilter(s.grant, filter));
    const start = cursor ? Number(cursor) : 0;
    const page = all.slice(start, start + limit);
    return { grants: page, next: start + limit < all.length ? String(start + limit) : null };
  }

  async putRule(rule: RevocationRule): Promise<void> {
    this.#setRules([...this.#rules.filter((r) => r.id !== rule.id), rule]);
  }

  rules(): readonly RevocationRule[] {
    return this.#rules;
  }

  async purge(rule: RevocationRule, now: number): Promise<{ grants: number; tokens: number }> {
    const selected = [...this.#grants.values()].filter(
      (g) =>
        g.expireAt > now &&
        ruleSelects(rule, {
          agent: g.record.agent,
          scopes: g.record.scopes,
          rootId: g.record.rootId,
          createdAt: g.record.createdAt,
        }),
    );
    let grants = 0;
    let tokens = 0;
    const ids = new Set(selected.flatMap((g) => this.#subtree(g.record.id)));
    for (const id of ids) {
      const stored = this.#grants.get(id);
      if (!stored) continue;
      if (stored.revokedAt === null && stored.record.notAfter > now) grants += 1;
      for (const tokenId of stored.tokenIds) {
        const hash = this.#tokenIds.get(tokenId);
        if (hash && this.#tokens.delete(`${stored.record.tree}/${hash}`)) tokens += 1;
        this.#tokenIds.delete(tokenId);
      }
      this.#grants.delete(id);
      this.#expiries.delete(id);
      this.#trees.get(stored.record.tree)?.delete(id);
      const tombUntil = stored.record.notAfter + RECORD_GRACE_MS;
      this.#tombs.set(stored.record.tree, Math.max(this.#tombs.get(stored.record.tree) ?? 0, tombUntil));
    }
    return { grants, tokens };
  }

  async preview(rule: RevocationRule, now: number): Promise<number> {
    const ids = new Set<string>();
    for (const g of this.#grants.values()) {
      if (g.expireAt <= now) continue;
      const { agent, scopes, rootId, createdAt, id } = g.record;
      if (ruleSelects(rule, { agent, scopes, rootId, createdAt }))
        for (const s of this.#subtree(id)) ids.add(s);
    }
    let live = 0;
    for (const id of ids) {
      const g = this.#grant(id, now);
      if (g && g.revokedAt === null && g.record.notAfter > now) live += 1;
    }
    return live;
  }

  async getToken(tokenId: string, now: number): Promise<TokenState | undefined> {
    const tree = tokenIdTree(tokenId);
    const hash = this.#tokenIds.get(tokenId);
    const token = tree && hash ? this.#tokens.get(`${tree}/${hash}`) : undefined;
    if (!token || token.expireAt <= now) return undefined;
    const { grantId, issuedAt, expiresAt } = token.record;
    return { tokenId, grantId, issuedAt, expiresAt, revoked: token.revoked };
  }

  async claimExpired(now: number, limit: number): Promise<ExpiredGrant[]> {
    const claimed: ExpiredGrant[] = [];
    for (const [grantId, expiresAt] of this.#expiries) {
      if (claimed.length >= limit) break;
      if (expiresAt > now) continue;
      this.#expiries.delete(grantId);
      const stored = this.#grants.get(grantId);
      if (!stored || stored.revokedAt !== null) continue;
      claimed.push({
        reason: stored.latestExpiresAt >= stored.record.notAfter ? "grant" : "token",
        subject: {
          grantId,
          tokenId: stored.latestTokenId,
          rootGrantId: stored.record.rootId,
          parentGrantId: stored.record.parentId,
          agent: stored.record.agent,
          issuedAt: null,
        },
      });
    }
    return claimed;
  }

  async countLiveGrants(now: number): Promise<number> {
    let count = 0;
    for (const expiresAt of this.#expiries.values()) if (expiresAt > now) count += 1;
    return count;
  }

  async appendAudit(events: readonly AuditEvent[]): Promise<void> {
    this.#audit.append(events);
  }

  async readAudit(query: AuditQuery): Promise<AuditRead> {
    return this.#audit.read(query);
  }

  /** The audit trail held in memory, oldest first. */
  auditEvents(): readonly AuditEvent[] {
    return this.#audit.events();
  }

  async ping(): Promise<void> {
    if (this.#closed) throw new StoreUnavailableError("the store is closed");
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#sweeper);
  }

  /** Drops records past their end; exposed so tests can drive it with their own clock. */
  sweep(now: number): void {
    for (const [key, token] of this.#tokens) {
      if (token.expireAt <= now) {
        this.#tokens.delete(key);
        this.#tokenIds.delete(token.record.tokenId);
      }
    }
    for (const [id, grant] of this.#grants) {
      if (grant.expireAt <= now) {
        this.#grants.delete(id);
        this.#trees.get(grant.record.tree)?.delete(id);
      }
    }
    for (const [tree, links] of this.#trees) if (links.size === 0) this.#trees.delete(tree);
    for (const [tree, until] of this.#tombs) if (until <= now) this.#tombs.delete(tree);
    for (const [key, counter] of this.#counters) if (counter.expireAt <= now) this.#counters.delete(key);
    this.#setRules(this.#rules.filter((r) => r.expiresAt > now));
  }

  #setRules(rules: RevocationRule[]): void {
    this.#rules = rules;
    this.#index = new RuleIndex(rules);
  }

  #storeToken(tree: string, token: TokenRecord): void {
    this.#tokens.set(`${tree}/${token.hash}`, {
      record: token,
      revoked: false,
      expireAt: token.expiresAt + RECORD_GRACE_MS,
    });
    this.#tokenIds.set(token.tokenId, token.hash);
  }

  #grant(id: string, now: number): StoredGrant | undefined {
    const stored = this.#grants.get(id);
    return stored && stored.expireAt > now ? stored : undefined;
  }

  #count(key: string, now: number): number {
    const counter = this.#counters.get(key);
    return counter && counter.expireAt > now ? counter.count : 0;
  }

  /** The grant and every grant below it, parents before children. */
  #subtree(grantId: string): string[] {
    const treeId = grantTree(grantId);
    const tree = treeId ? this.#trees.get(treeId) : undefined;
    return subtreeOf(Object.fromEntries(tree ?? []), grantId);
  }

  #ruleHit(grant: GrantRecord, now: number): string | undefined {
    const subject = {
      agent: grant.agent,
      scopes: grant.scopes,
      rootId: grant.rootId,
      createdAt: grant.createdAt,
    };
    return this.#index.first(subject, now)?.id;
  }

  /** The same checks, in the same order, as `chain()` in the Lua scripts. */
  #chain(ref: TokenRef, now: number): Chain {
    const tomb = (this.#tombs.get(ref.tree) ?? 0) > now;
    const token = this.#tokens.get(`${ref.tree}/${ref.hash}`);
    if (!token || token.expireAt <= now) {
      return tomb ? deny("token_revoked", EMPTY_SUBJECT, PURGED) : deny("token_invalid", EMPTY_SUBJECT, null);
    }
    const grant = this.#grant(token.record.grantId, now);
    const subject = subjectOf(token, grant);
    if (token.revoked) return deny("token_revoked", subject, { kind: "token", id: token.record.tokenId });
    if (!grant) return tomb ? deny("token_revoked", subject, PURGED) : deny("token_invalid", subject, null);
    if (grant.revokedAt !== null)
      return deny("token_revoked", subject, { kind: "grant", id: grant.record.id });
    const hit = this.#ruleHit(grant.record, now);
    if (hit) return deny("token_revoked", subject, { kind: "rule", id: hit });
    const ancestors: StoredGrant[] = [];
    for (const id of grant.record.ancestors) {
      const ancestor = this.#grant(id, now);
      if (!ancestor || ancestor.revokedAt !== null)
        return deny("token_revoked", subject, { kind: "ancestor", id });
      const ancestorHit = this.#ruleHit(ancestor.record, now);
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

const EMPTY_SUBJECT: Subject = {
  grantId: null,
  tokenId: null,
  rootGrantId: null,
  parentGrantId: null,
  agent: null,
  issuedAt: null,
};

const stateOf = (stored: StoredGrant): GrantState => ({
  grant: stored.record,
  revokedAt: stored.revokedAt,
  used: stored.used,
  latestTokenId: stored.latestTokenId,
  latestExpiresAt: stored.latestExpiresAt,
});

const subjectOf = (token: StoredToken, grant: StoredGrant | undefined): Subject => ({
  grantId: token.record.grantId,
  tokenId: token.record.tokenId,
  rootGrantId: grant?.record.rootId ?? null,
  parentGrantId: grant?.record.parentId ?? null,
  agent: grant?.record.agent ?? null,
  issuedAt: token.record.issuedAt,
});

const PURGED: Reason = { kind: "purged" };

const deny = <C extends string>(code: C, subject: Subject, reason: Reason | null): Denied<C> => ({
  ok: false,
  code,
  subject,
  reason,
});
