import { type AuditEvent, tokenIdTree } from "@perishable/protocol";
import { type RevocationRule, ruleSelects } from "../../policy/revocation.js";
import { isLive, matchesFilter } from "../grant-tree.js";
import { defaultLease } from "../lease.js";
import {
  type AuditLine,
  type AuditQuery,
  type AuditRead,
  type AuthorizeResult,
  type Candidate,
  type CreateResult,
  type ExpiredGrant,
  type Flight,
  type GrantFilter,
  type GrantLineage,
  type GrantRecord,
  type GrantState,
  type InspectResult,
  type Lease,
  type LiveInfo,
  type LiveQuery,
  type NodeReport,
  type NodeWork,
  RECORD_GRACE_MS,
  type RefreshInput,
  type RefreshResult,
  type Revoked,
  type RevokeTokenResult,
  type Settlement,
  type Store,
  StoreUnavailableError,
  type TokenRecord,
  type TokenRef,
  type TokenState,
} from "../types.js";
import { MemoryAuditTrail, OnceSet } from "./audit-trail.js";
import { authorize } from "./authorize.js";
import { noSpend, renewFlights, settleFlight } from "./flights.js";
import { LocalNode } from "./local-node.js";
import { deny, MemoryState, type StoredGrant, stateOf, subjectOf } from "./state.js";

export interface MemoryStoreOptions {
  readonly auditMaxLen: number;
  /** How often expired records are swept (ms); records past their end are never honoured meanwhile. */
  readonly sweepMs?: number;
}

/**
 * The single-node store for development and demos: the same semantics as the Redis store
 * (the same contract suite runs against both), kept in this process's memory. Record expiry
 * mirrors the Redis TTLs; checks compare against the `now` they are given.
 */
export class MemoryStore implements Store {
  readonly #state = new MemoryState();
  readonly #node = new LocalNode();
  #closed = false;
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
      const chain = this.#state.chain(parent, now);
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
    this.#state.grants.set(grant.id, {
      record: grant,
      revokedAt: null,
      used: 0,
      children: 0,
      latestTokenId: token.tokenId,
      latestExpiresAt: token.expiresAt,
      tokenIds: new Set([token.tokenId]),
      spend: noSpend(),
      expireAt: grant.notAfter + RECORD_GRACE_MS,
    });
    this.#state.storeToken(grant.tree, token);
    const tree = this.#state.trees.get(grant.tree) ?? new Map<string, string>();
    this.#state.trees.set(grant.tree, tree);
    tree.set(grant.id, grant.parentId ?? "");
    this.#state.expiries.set(grant.id, Math.max(this.#state.expiries.get(grant.id) ?? 0, token.expiresAt));
    return { ok: true };
  }

  async authorize(
    ref: TokenRef,
    now: number,
    candidates: readonly Candidate[],
    lease: Lease = defaultLease(now),
  ): Promise<AuthorizeResult> {
    return authorize(this.#state, ref, now, candidates, lease);
  }

  async settle(settlements: readonly Settlement[]): Promise<void> {
    for (const settlement of settlements) settleFlight(this.#state, settlement);
  }

  async renew(flights: readonly Flight[], until: number): Promise<void> {
    renewFlights(this.#state, flights, until);
  }

  async inspect(ref: TokenRef, now: number): Promise<InspectResult> {
    const chain = this.#state.chain(ref, now);
    if (!chain.ok) return chain;
    const { spend } = stateOf(chain.grant);
    return {
      ok: true,
      token: chain.token.record,
      grant: chain.grant.record,
      used: chain.grant.used,
      ...(spend ? { spend } : {}),
    };
  }

  async refresh(ref: TokenRef, now: number, next: RefreshInput): Promise<RefreshResult> {
    const chain = this.#state.chain(ref, now);
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
    this.#state.storeToken(grant.tree, token);
    chain.grant.tokenIds.add(token.tokenId);
    chain.grant.latestTokenId = token.tokenId;
    chain.grant.latestExpiresAt = token.expiresAt;
    this.#state.expiries.set(grant.id, Math.max(this.#state.expiries.get(grant.id) ?? 0, token.expiresAt));
    return { ok: true, token, grant };
  }

  /** One process: it never misses its own revocations. */
  deafSince = (): number | undefined => undefined;

  readonly nodeId = "local";

  serve(work: NodeWork): () => void {
    return this.#node.serve(work);
  }

  askLive(query: LiveQuery): Promise<NodeReport<LiveInfo>> {
    return this.#node.live(query);
  }

  async revokeGrant(grantId: string, now: number): Promise<Revoked> {
    const revoked: string[] = [];
    let count = 0;
    for (const id of this.#state.subtree(grantId)) {
      const stored = this.#state.grant(id, now);
      if (stored && stored.revokedAt === null && stored.record.notAfter > now) {
        stored.revokedAt = now;
        this.#state.expiries.delete(id);
        revoked.push(id);
        count += 1;
      }
    }
    const connections = revoked.length > 0 ? this.#node.cut({ grants: revoked, tokens: [] }) : 0;
    return { grants: count, connections };
  }

  async revokeToken(tokenId: string, now: number): Promise<RevokeTokenResult> {
    const tree = tokenIdTree(tokenId);
    const hash = this.#state.tokenIds.get(tokenId);
    const token = tree && hash ? this.#state.tokens.get(`${tree}/${hash}`) : undefined;
    if (!token || token.expireAt <= now || token.record.expiresAt <= now) return { status: "none" };
    const status = token.revoked ? "already" : "revoked";
    token.revoked = true;
    const connections = this.#node.cut({ grants: [], tokens: [tokenId] });
    return { status, subject: subjectOf(token, this.#state.grant(token.record.grantId, now)), connections };
  }

  async getGrant(grantId: string, now: number): Promise<GrantState | undefined> {
    const stored = this.#state.grant(grantId, now);
    return stored ? stateOf(stored) : undefined;
  }

  async getLineage(grantId: string, now: number): Promise<GrantLineage | undefined> {
    const self = this.#state.grant(grantId, now);
    if (!self) return undefined;
    const states = (ids: readonly string[]) =>
      ids
        .map((id) => this.#state.grant(id, now))
        .filter((g): g is StoredGrant => g !== undefined)
        .map(stateOf);
    return {
      grant: stateOf(self),
      ancestors: states(self.record.ancestors),
      subtree: states(this.#state.subtree(grantId).slice(1)),
    };
  }

  async listGrants(
    filter: GrantFilter,
    cursor: string | null,
    limit: number,
    now: number,
  ): Promise<{ grants: GrantState[]; next: string | null }> {
    const all = [...this.#state.grants.values()]
      .filter((g) => g.expireAt > now)
      .map(stateOf)
      .filter((s) => isLive(s, now) && matchesFilter(s.grant, filter));
    const start = cursor ? Number(cursor) : 0;
    const page = all.slice(start, start + limit);
    return { grants: page, next: start + limit < all.length ? String(start + limit) : null };
  }

  async putRule(rule: RevocationRule): Promise<void> {
    this.#state.setRules([...this.#state.rules.filter((r) => r.id !== rule.id), rule]);
  }

  rules(): readonly RevocationRule[] {
    return this.#state.rules;
  }

  async purge(rule: RevocationRule, now: number): Promise<Revoked & { tokens: number }> {
    const selected = [...this.#state.grants.values()].filter(
      (g) => g.expireAt > now && ruleSelects(rule, g.record),
    );
    let grants = 0;
    let tokens = 0;
    const ids = new Set(selected.flatMap((g) => this.#state.subtree(g.record.id)));
    for (const id of ids) {
      const stored = this.#state.grants.get(id);
      if (!stored) continue;
      if (stored.revokedAt === null && stored.record.notAfter > now) grants += 1;
      for (const tokenId of stored.tokenIds) {
        const hash = this.#state.tokenIds.get(tokenId);
        if (hash && this.#state.tokens.delete(`${stored.record.tree}/${hash}`)) tokens += 1;
        this.#state.tokenIds.delete(tokenId);
      }
      this.#state.grants.delete(id);
      this.#state.expiries.delete(id);
      this.#state.trees.get(stored.record.tree)?.delete(id);
      const tombUntil = stored.record.notAfter + RECORD_GRACE_MS;
      this.#state.tombs.set(
        stored.record.tree,
        Math.max(this.#state.tombs.get(stored.record.tree) ?? 0, tombUntil),
      );
    }
    const connections = ids.size > 0 ? this.#node.cut({ grants: [...ids], tokens: [] }) : 0;
    return { grants, tokens, connections };
  }

  async preview(rule: RevocationRule, now: number): Promise<number> {
    return this.#state.preview(rule, now);
  }

  async getToken(tokenId: string, now: number): Promise<TokenState | undefined> {
    const tree = tokenIdTree(tokenId);
    const hash = this.#state.tokenIds.get(tokenId);
    const token = tree && hash ? this.#state.tokens.get(`${tree}/${hash}`) : undefined;
    if (!token || token.expireAt <= now) return undefined;
    const { grantId, issuedAt, expiresAt } = token.record;
    return { tokenId, grantId, issuedAt, expiresAt, revoked: token.revoked };
  }

  async claimExpired(now: number, limit: number): Promise<ExpiredGrant[]> {
    const claimed: ExpiredGrant[] = [];
    for (const [grantId, expiresAt] of this.#state.expiries) {
      if (claimed.length >= limit) break;
      if (expiresAt > now) continue;
      this.#state.expiries.delete(grantId);
      const stored = this.#state.grants.get(grantId);
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
          ...(stored.record.onBehalfOf ? { onBehalfOf: stored.record.onBehalfOf } : {}),
        },
      });
    }
    return claimed;
  }

  async countLiveGrants(now: number): Promise<number> {
    let count = 0;
    for (const expiresAt of this.#state.expiries.values()) if (expiresAt > now) count += 1;
    return count;
  }

  async appendAudit(lines: readonly AuditLine[]): Promise<void> {
    this.#audit.append(lines);
  }

  async readAudit(query: AuditQuery): Promise<AuditRead> {
    return this.#audit.read(query);
  }

  /** The audit trail held in memory, oldest first. */
  auditEvents(): readonly AuditEvent[] {
    return this.#audit.events();
  }

  readonly #once = new OnceSet();
  async claimOnce(value: string, ttlMs: number, now: number): Promise<boolean> {
    return this.#once.claim(value, ttlMs, now);
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
    this.#state.sweep(now);
  }
}
