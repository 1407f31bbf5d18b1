import { grantTree, tokenIdTree } from "@perishable/protocol";
import type { RevocationRule } from "../../policy/revocation.js";
import type { RedisKeys } from "../keys.js";
import type { Cut, RevokeTokenResult } from "../types.js";
import { purgeByRule } from "./bulk-purge.js";
import { call, type ScriptedRedis } from "./client.js";
import { subjectOf } from "./codec.js";
import type { ExpiryIndex } from "./expiry-index.js";
import { field, TOKEN_REVOKED } from "./schema.js";

/**
 * Revocation on Redis: a grant with its subtree, one token, the bulk walk's purge; each pushes
 * what it ended on the cuts channel before it answers, so every node cuts its live connections.
 */
export class Revocations {
  readonly #redis: ScriptedRedis;
  readonly #keys: RedisKeys;
  readonly #expiries: ExpiryIndex;

  constructor(redis: ScriptedRedis, keys: RedisKeys, expiries: ExpiryIndex) {
    this.#redis = redis;
    this.#keys = keys;
    this.#expiries = expiries;
  }

  async grant(grantId: string, now: number): Promise<number> {
    const tree = grantTree(grantId);
    if (!tree) return 0;
    const revoked = await call(() =>
      this.#redis.prsRevokeGrant(this.#keys.tree(tree), this.#keys.base(tree), grantId, now),
    );
    await this.#expiries.forget(revoked);
    if (revoked.length > 0) await this.#publish({ grants: revoked, tokens: [] });
    return revoked.length;
  }

  async token(tokenId: string, now: number): Promise<RevokeTokenResult> {
    const tree = tokenIdTree(tokenId);
    if (!tree) return { status: "none" };
    const reply = await call(() =>
      this.#redis.prsRevokeToken(this.#keys.tokenId(tree, tokenId), this.#keys.base(tree), now),
    );
    const status = field(TOKEN_REVOKED, reply, "status");
    if (status === "none") return { status: "none" };
    await this.#publish({ grants: [], tokens: [tokenId] });
    return { status: status as "revoked" | "already", subject: subjectOf(TOKEN_REVOKED, reply) };
  }

  /** Purges what a rule selects (`bulk-purge.ts`); every batch's grants are pushed to be cut. */
  purge(rule: RevocationRule, now: number): Promise<{ grants: number; tokens: number }> {
    return purgeByRule(this.#redis, this.#keys, this.#expiries, rule, now, (gone) =>
      this.#publish({ grants: gone, tokens: [] }),
    );
  }

  /** Every node (this one too, through its subscription) hears it and cuts what is live. */
  async #publish(cut: Cut): Promise<void> {
    await call(() => this.#redis.publish(this.#keys.cuts(), JSON.stringify(cut)));
  }
}
