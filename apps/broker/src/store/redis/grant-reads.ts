import { grantTree, tokenIdTree } from "@perishable/protocol";
import { type RevocationRule, ruleSelects } from "../../policy/revocation.js";
import { isLive, matchesFilter, subtreeOf } from "../grant-tree.js";
import type { RedisKeys } from "../keys.js";
import {
  type GrantFilter,
  type GrantLineage,
  type GrantState,
  RECORD_GRACE_MS,
  type TokenState,
} from "../types.js";
import { type Client, call, mastersOf } from "./client.js";
import { grantStateFromFields } from "./codec.js";
import { keyBatches, ruleSubjects, SCAN_COUNT } from "./scan.js";
import { TOKEN_FIELDS } from "./schema.js";

/** The admin API's reads of grants and tokens: records as they are, never through a script. */
export class GrantReads {
  readonly #redis: Client;
  readonly #keys: RedisKeys;

  constructor(redis: Client, keys: RedisKeys) {
    this.#redis = redis;
    this.#keys = keys;
  }

  async grant(grantId: string, now: number): Promise<GrantState | undefined> {
    const tree = grantTree(grantId);
    if (!tree) return undefined;
    const [state] = await this.states(tree, [grantId], now);
    return state;
  }

  async lineage(grantId: string, now: number): Promise<GrantLineage | undefined> {
    const tree = grantTree(grantId);
    if (!tree) return undefined;
    const [self] = await this.states(tree, [grantId], now);
    if (!self) return undefined;
    const ids = subtreeOf(await this.links(tree), grantId).slice(1);
    const states = await this.states(tree, [...self.grant.ancestors, ...ids], now);
    const byId = new Map(states.map((s) => [s.grant.id, s]));
    const present = (id: string) => byId.get(id);
    return {
      grant: self,
      ancestors: self.grant.ancestors.map(present).filter((s): s is GrantState => s !== undefined),
      subtree: ids.map(present).filter((s): s is GrantState => s !== undefined),
    };
  }

  async list(
    filter: GrantFilter,
    cursor: string | null,
    limit: number,
    now: number,
  ): Promise<{ grants: GrantState[]; next: string | null }> {
    const grants: GrantState[] = [];
    const wanted = (state: GrantState | undefined): state is GrantState =>
      state !== undefined && isLive(state, now) && matchesFilter(state.grant, filter);
    if (filter.rootGrantId) {
      const tree = grantTree(filter.rootGrantId);
      if (!tree) return { grants, next: null };
      const states = await this.states(tree, subtreeOf(await this.links(tree), filter.rootGrantId), now);
      return { grants: states.filter(wanted).slice(0, limit), next: null };
    }
    // The cursor is "<master index>:<SCAN cursor>": a Cluster is walked one master after the other.
    const masters = mastersOf(this.#redis);
    let [node, scan] = parseCursor(cursor);
    while (node < masters.length && grants.length < limit) {
      const master = masters[node]!;
      const [next, keys] = await call(() =>
        master.scan(scan, "MATCH", this.#keys.grantPattern(), "COUNT", SCAN_COUNT),
      );
      scan = next;
      const records = await call(() => Promise.all(keys.map((key) => this.#redis.hgetall(key))));
      records.forEach((record, i) => {
        const state = stateFromKey(keys[i]!, record);
        if (wanted(state)) grants.push(state);
      });
      if (scan === "0") node += 1;
    }
    return { grants, next: node < masters.length ? `${node}:${scan}` : null };
  }

  /** How many live grants a rule would revoke (the grants it selects and their subtrees). */
  async preview(rule: RevocationRule, now: number): Promise<number> {
    const selected = new Map<string, string[]>();
    for await (const keys of keyBatches(mastersOf(this.#redis), this.#keys.grantPattern())) {
      for (const { id, tree, subject } of await ruleSubjects(this.#redis, keys)) {
        if (ruleSelects(rule, subject)) selected.set(tree, [...(selected.get(tree) ?? []), id]);
      }
    }
    let live = 0;
    for (const [tree, ids] of selected) {
      const links = await this.links(tree);
      const all = new Set(ids.flatMap((id) => subtreeOf(links, id)));
      live += (await this.states(tree, [...all], now)).filter((s) => isLive(s, now)).length;
    }
    return live;
  }

  async token(tokenId: string, now: number): Promise<TokenState | undefined> {
    const tree = tokenIdTree(tokenId);
    if (!tree) return undefined;
    const hash = await call(() => this.#redis.get(this.#keys.tokenId(tree, tokenId)));
    if (!hash) return undefined;
    const [grantId, issuedAt, expiresAt, revoked] = await call(() =>
      this.#redis.hmget(
        this.#keys.token(tree, hash),
        ...TOKEN_FIELDS("grantId", "issuedAt", "expiresAt", "revokedAt"),
      ),
    );
    if (!grantId || Number(expiresAt) + RECORD_GRACE_MS <= now) return undefined;
    return {
      tokenId,
      grantId,
      issuedAt: Number(issuedAt),
      expiresAt: Number(expiresAt),
      revoked: revoked !== null,
    };
  }

  /** A tree's links: grant id → parent id ("" for the root). */
  links(tree: string): Promise<Record<string, string>> {
    return call(() => this.#redis.hgetall(this.#keys.tree(tree)));
  }

  async states(tree: string, ids: readonly string[], now: number): Promise<GrantState[]> {
    const records = await call(() =>
      Promise.all(ids.map((id) => this.#redis.hgetall(this.#keys.grant(tree, id)))),
    );
    const states: GrantState[] = [];
    records.forEach((record, i) => {
      if (!record.na || Number(record.na) + RECORD_GRACE_MS <= now) return;
      states.push(grantStateFromFields(ids[i]!, tree, new Map(Object.entries(record))));
    });
    return states;
  }
}

const parseCursor = (cursor: string | null): [number, string] => {
  if (!cursor) return [0, "0"];
  const [node, scan] = cursor.includes(":") ? cursor.split(":") : ["0", cursor];
  return [Number(node) || 0, scan ?? "0"];
};

const stateFromKey = (key: string, fields: Record<string, string>): GrantState | undefined => {
  const id = key.slice(key.lastIndexOf(":") + 1);
  const tree = grantTree(id);
  if (!tree || !fields.na) return undefined;
  return grantStateFromFields(id, tree, new Map(Object.entries(fields)));
};
