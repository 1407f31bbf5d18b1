import { type RevocationRule, ruleSelects } from "../policy/revocation.js";
import type { Cut, GrantRecord, LiveInfo, LiveQuery, NodeWork, Store } from "../store/types.js";
import { DEAF, type LiveConnections } from "./live.js";

/** A node reports at most this many connections per question (the views page nothing bigger). */
const REPORTED = 500;
/** A stale node that could not check what is live against Redis for this long cuts it all. */
const UNCHECKED_MS = 800;

/**
 * What this node does for the others (and itself) through the store's node bus: cuts what a
 * revocation ended, reports what is live, and — while it may have missed revocations (stale) —
 * checks every live connection against the store itself, a few times a second; when it cannot
 * (Redis is unreachable), it cuts them all within a second (fail closed).
 */
export class NodeWorker implements NodeWork {
  readonly #live: LiveConnections;
  readonly #store: Store;
  readonly #now: () => number;
  #checkedAt = Date.now();

  constructor(live: LiveConnections, store: Store, now: () => number) {
    this.#live = live;
    this.#store = store;
    this.#now = now;
  }

  cut(cut: Cut): number {
    return this.#live.cut(cut);
  }

  async live(query: LiveQuery): Promise<LiveInfo[]> {
    const all = this.#live.list(this.#store.nodeId);
    const chains = new Chains(this.#store, this.#now());
    const out: LiveInfo[] = [];
    for (const info of all) {
      if (out.length >= REPORTED) break;
      const chain = await chains.of(info.grantId);
      const hit =
        "grants" in query
          ? query.grants.some((id) => id === info.grantId || chain.some((g) => g?.id === id))
          : chain.some((g) => g !== undefined && selects(query.rule, g));
      if (hit) out.push(info);
    }
    return out;
  }

  /** Cuts what is live of grants and tokens that were revoked, purged or selected by a rule. */
  async resync(): Promise<void> {
    const now = this.#now();
    const chains = new Chains(this.#store, now);
    const rules = this.#store.rules();
    const grants: string[] = [];
    const tokens: string[] = [];
    for (const info of this.#live.list(this.#store.nodeId)) {
      const chain = await chains.of(info.grantId);
      const dead = chain.some((g) => g === undefined || rules.some((rule) => selects(rule, g)));
      if (dead || (await chains.revoked(info.grantId))) grants.push(info.grantId);
      else if ((await this.#store.getToken(info.tokenId, now))?.revoked) tokens.push(info.tokenId);
    }
    if (grants.length + tokens.length > 0) this.#live.cut({ grants, tokens });
  }

  /** Runs a few times a second: while the node is stale, it checks what is live itself. */
  async watch(): Promise<void> {
    if (this.#store.deafSince() === undefined || this.#live.size === 0) {
      this.#checkedAt = Date.now();
      return;
    }
    const started = Date.now();
    try {
      await this.resync();
      this.#checkedAt = started;
    } catch {
      if (Date.now() - this.#checkedAt > UNCHECKED_MS) this.#live.cutAll(DEAF);
    }
  }
}

const selects = (rule: RevocationRule, g: GrantRecord): boolean =>
  ruleSelects(rule, { agent: g.agent, scopes: g.scopes, rootId: g.rootId, createdAt: g.createdAt });

/** Grant chains read once per question: the grant then its ancestors (undefined: gone). */
class Chains {
  readonly #store: Store;
  readonly #now: number;
  readonly #states = new Map<string, Promise<{ grant: GrantRecord; revoked: boolean } | undefined>>();

  constructor(store: Store, now: number) {
    this.#store = store;
    this.#now = now;
  }

  async of(grantId: string): Promise<(GrantRecord | undefined)[]> {
    const own = await this.#state(grantId);
    if (!own) return [undefined];
    const ancestors = await Promise.all(own.grant.ancestors.map((id) => this.#state(id)));
    return [own.grant, ...ancestors.map((a) => a?.grant)];
  }

  /** True when the grant or an ancestor is revoked (or gone). */
  async revoked(grantId: string): Promise<boolean> {
    const own = await this.#state(grantId);
    if (!own) return true;
    const ancestors = await Promise.all(own.grant.ancestors.map((id) => this.#state(id)));
    return own.revoked || ancestors.some((a) => a === undefined || a.revoked);
  }

  #state(id: string) {
    let state = this.#states.get(id);
    if (!state) {
      state = this.#store
        .getGrant(id, this.#now)
        .then((s) => (s ? { grant: s.grant, revoked: s.revokedAt !== null } : undefined));
      this.#states.set(id, state);
    }
    return state;
  }
}
