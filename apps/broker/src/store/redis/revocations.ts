import { grantTree, tokenIdTree } from "@perishable/protocol";
import type { RevocationRule } from "../../policy/revocation.js";
import type { RedisKeys } from "../keys.js";
import type { Cut, Revoked, RevokeTokenResult } from "../types.js";
import { purgeByRule } from "./bulk-purge.js";
import { call, type ScriptedRedis } from "./client.js";
import { subjectOf } from "./codec.js";
import type { DurableWrites } from "./durable.js";
import type { ExpiryIndex } from "./expiry-index.js";
import type { NodeBus } from "./node-bus.js";
import { field, TOKEN_REVOKED } from "./schema.js";

/**
 * Revocation on Redis: a grant with its subtree, one token, the bulk walk's purge; each hands what
 * it ended to every live node (the node bus) and answers once they all cut their live connections
 * and, with `store.wait_replicas`, once the replicas hold it too (durable.ts).
 */
export class Revocations {
  readonly #redis: ScriptedRedis;
  readonly #durable: DurableWrites;
  readonly #keys: RedisKeys;
  readonly #expiries: ExpiryIndex;
  readonly #bus: NodeBus;

  constructor(durable: DurableWrites, keys: RedisKeys, expiries: ExpiryIndex, bus: NodeBus) {
    this.#durable = durable;
    this.#redis = durable.redis;
    this.#keys = keys;
    this.#expiries = expiries;
    this.#bus = bus;
  }

  async grant(grantId: string, now: number): Promise<Revoked> {
    const tree = grantTree(grantId);
    if (!tree) return { grants: 0, connections: 0 };
    const revoked = await call(() =>
      this.#redis.prsRevokeGrant(this.#keys.tree(tree), this.#keys.base(tree), grantId, now),
    );
    await this.#expiries.forget(revoked);
    const connections = await this.#durable.alongside(
      revoked.length > 0 ? this.#cut({ grants: revoked, tokens: [] }) : Promise.resolve(0),
    );
    return { grants: revoked.length, connections };
  }

  async token(tokenId: string, now: number): Promise<RevokeTokenResult> {
    const tree = tokenIdTree(tokenId);
    if (!tree) return { status: "none" };
    const reply = await call(() =>
      this.#redis.prsRevokeToken(this.#keys.tokenId(tree, tokenId), this.#keys.base(tree), now),
    );
    const status = field(TOKEN_REVOKED, reply, "status");
    if (status === "none") return { status: "none" };
    const connections = await this.#durable.alongside(this.#cut({ grants: [], tokens: [tokenId] }));
    return {
      status: status as "revoked" | "already",
      subject: subjectOf(TOKEN_REVOKED, reply),
      connections,
    };
  }

  /**
   * Purges what a rule selects (`bulk-purge.ts`); every batch's grants are cut on every node. Not
   * confirmed by replicas here: the rule that closes the walk is, and its WAIT covers these writes.
   */
  async purge(rule: RevocationRule, now: number): Promise<Revoked & { tokens: number }> {
    let connections = 0;
    const purged = await purgeByRule(this.#redis, this.#keys, this.#expiries, rule, now, async (gone) => {
      connections += await this.#cut({ grants: gone, tokens: [] });
    });
    return { ...purged, connections };
  }

  /** Every live node (this one too) cuts what is live of it; → how many connections, in all. */
  async #cut(cut: Cut): Promise<number> {
    const report = await this.#bus.ask("cut", cut);
    return report.answers.reduce((sum, n) => sum + n, 0);
  }
}
