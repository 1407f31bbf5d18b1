import { type AuditEvent, grantTree } from "@perishable/protocol";
import {
  type AuthorizeResult,
  type Candidate,
  type CreateResult,
  type Denied,
  type GrantRecord,
  type InspectResult,
  RECORD_GRACE_MS,
  type RefreshInput,
  type RefreshResult,
  type Store,
  type Subject,
  type TokenDenial,
  type TokenRecord,
  type TokenRef,
} from "../types.js";

interface StoredToken {
  readonly record: TokenRecord;
  revoked: boolean;
  readonly expireAt: number;
}

interface StoredGrant {
  readonly record: GrantRecord;
  revokedAt: number | null;
  used: number;
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
  readonly #counters = new Map<string, Counter>();
  readonly #audit: AuditEvent[] = [];
  readonly #auditMaxLen: number;
  readonly #sweeper: NodeJS.Timeout;

  constructor(options: MemoryStoreOptions) {
    this.#auditMaxLen = options.auditMaxLen;
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
      if (chain.token.record.grantId !== grant.parentId)
        return deny("token_invalid", subjectOf(chain.token, chain.grant), "parent mismatch");
    }
    this.#grants.set(grant.id, {
      record: grant,
      revokedAt: null,
      used: 0,
      expireAt: grant.notAfter + RECORD_GRACE_MS,
    });
    this.#storeToken(grant.tree, token);
    const tree = this.#trees.get(grant.tree) ?? new Map<string, string>();
    this.#trees.set(grant.tree, tree);
    tree.set(grant.id, grant.parentId ?? "");
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
      return failed ? deny("constraint_denied", subject, failed) : deny("scope_denied", subject, null);
    // maxUses of the grant and of every ancestor that has one: a use by a child is a use of each.
    const spend: StoredGrant[] = [];
    const { maxUses } = grant.record;
    if (maxUses !== null) {
      if (grant.used >= maxUses) return deny("forbidden", subject, `maxUses ${maxUses}`);
      spend.push(grant);
    }
    for (const ancestor of chain.ancestors) {
      const limit = ancestor.record.maxUses;
      if (limit === null) continue;
      if (ancestor.used >= limit)
        return deny("forbidden", subject, `maxUses ${limit} of ancestor ${ancestor.record.id}`);
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
        const c = this.#count(`${base}${cur}`, now);
        const p = this.#count(`${base}${cur - 1}`, now);
        const est = (p * (window - into)) / window + c;
        if (est + 1 > chosen.limit) {
          const wait =
            c + 1 > chosen.limit || p === 0
              ? window - into
              : Math.ceil(((est + 1 - chosen.limit) * window) / p);
          const rule = i === 0 ? chosen.scope : `${chosen.scope} (ancestor ${id})`;
          return { ...deny("rate_limited", subject, rule), retryAfterMs: wait };
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
    if (ttl > grant.maxTtl) return deny("ttl_exceeded", subjectOf(chain.token, chain.grant), "max_ttl");
    const token: TokenRecord = {
      tokenId: next.tokenId,
      hash: next.hash,
      grantId: grant.id,
      issuedAt: now,
      expiresAt: Math.min(now + ttl, grant.notAfter),
    };
    this.#storeToken(grant.tree, token);
    return { ok: true, token, grant };
  }

  async revokeGrant(grantId: string, now: number): Promise<number> {
    const treeId = grantTree(grantId);
    const tree = treeId ? this.#trees.get(treeId) : undefined;
    const children = new Map<string, string[]>();
    for (const [id, parent] of tree ?? []) {
      if (parent) children.set(parent, [...(children.get(parent) ?? []), id]);
    }
    let count = 0;
    const queue = [grantId];
    for (let i = 0; i < queue.length; i++) {
      const id = queue[i]!;
      const stored = this.#grant(id, now);
      if (stored && stored.revokedAt === null && stored.record.notAfter > now) {
        stored.revokedAt = now;
        count += 1;
      }
      queue.push(...(children.get(id) ?? []));
    }
    return count;
  }

  async appendAudit(events: readonly AuditEvent[]): Promise<void> {
    this.#audit.push(...events);
    if (this.#audit.length > this.#auditMaxLen) this.#audit.splice(0, this.#audit.length - this.#auditMaxLen);
  }

  /** The audit trail held in memory, oldest first. */
  auditEvents(): readonly AuditEvent[] {
    return this.#audit;
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
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
    for (const [key, counter] of this.#counters) if (counter.expireAt <= now) this.#counters.delete(key);
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

  /** The same checks, in the same order, as `chain()` in the Lua scripts. */
  #chain(ref: TokenRef, now: number): Chain {
    const token = this.#tokens.get(`${ref.tree}/${ref.hash}`);
    if (!token || token.expireAt <= now) return deny("token_invalid", EMPTY_SUBJECT, null);
    const grant = this.#grant(token.record.grantId, now);
    const subject = subjectOf(token, grant);
    if (token.revoked) return deny("token_revoked", subject, `token ${token.record.tokenId}`);
    if (!grant) return deny("token_invalid", subject, null);
    if (grant.revokedAt !== null) return deny("token_revoked", subject, `grant ${grant.record.id}`);
    const ancestors: StoredGrant[] = [];
    for (const id of grant.record.ancestors) {
      const ancestor = this.#grant(id, now);
      if (!ancestor || ancestor.revokedAt !== null) return deny("token_revoked", subject, `ancestor ${id}`);
      ancestors.push(ancestor);
    }
    if (grant.record.notAfter <= now) return deny("token_expired", subject, "grant notAfter");
    if (token.record.expiresAt <= now) return deny("token_expired", subject, "token");
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

const subjectOf = (token: StoredToken, grant: StoredGrant | undefined): Subject => ({
  grantId: token.record.grantId,
  tokenId: token.record.tokenId,
  rootGrantId: grant?.record.rootId ?? null,
  parentGrantId: grant?.record.parentId ?? null,
  agent: grant?.record.agent ?? null,
  issuedAt: token.record.issuedAt,
});

const deny = <C extends string>(code: C, subject: Subject, rule: string | null): Denied<C> => ({
  ok: false,
  code,
  subject,
  rule,
});
