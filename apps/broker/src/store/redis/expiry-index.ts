import { grantTree } from "@perishable/protocol";
import type { RedisKeys } from "../keys.js";
import type { ExpiredGrant } from "../types.js";
import { type Client, call } from "./client.js";
import { SCAN_COUNT } from "./scan.js";
import { GRANT_FIELDS } from "./schema.js";

/**
 * Grants by the expiry of their newest token (a sorted set of its own, so its own slot on a
 * Cluster): what the expiry watcher claims, and the live count.
 */
export class ExpiryIndex {
  readonly #redis: Client;
  readonly #keys: RedisKeys;
  readonly #key: string;

  constructor(redis: Client, keys: RedisKeys) {
    this.#redis = redis;
    this.#keys = keys;
    this.#key = keys.expiries();
  }

  /** A grant's newest token expires then (only ever moves later). */
  track(grantId: string, expiresAt: number): Promise<number> {
    return call(() => this.#redis.zadd(this.#key, "GT", expiresAt, grantId));
  }

  /**
   * Revoked or purged grants leave the index, so the live count drops at once and the watcher has
   * nothing to claim. A separate command after the tree's script; if it fails, the watcher skips
   * them later.
   */
  async forget(grantIds: readonly string[]): Promise<void> {
    for (let i = 0; i < grantIds.length; i += SCAN_COUNT) {
      const chunk = grantIds.slice(i, i + SCAN_COUNT);
      await call(() => this.#redis.zrem(this.#key, ...chunk));
    }
  }

  async claim(now: number, limit: number): Promise<ExpiredGrant[]> {
    const key = this.#key;
    const due = await call(() => this.#redis.zrangebyscore(key, "-inf", now, "LIMIT", 0, limit));
    const claimed: ExpiredGrant[] = [];
    for (const grantId of due) {
      // ZREM is the claim: across every broker node, exactly one gets 1 back.
      if ((await call(() => this.#redis.zrem(key, grantId))) !== 1) continue;
      const tree = grantTree(grantId);
      if (!tree) continue;
      const [na, rev, agent, root, par, lt, le, obo] = await call(() =>
        this.#redis.hmget(
          this.#keys.grant(tree, grantId),
          ...GRANT_FIELDS(
            "notAfter",
            "revokedAt",
            "agent",
            "rootId",
            "parentId",
            "latestTokenId",
            "latestExpiresAt",
            "onBehalfOf",
          ),
        ),
      );
      if (!na || rev) continue; // purged or revoked: that was its end, already audited
      if (le && Number(le) > now) {
        // Refreshed after the claim was due (the score lags the record): put it back.
        await call(() => this.#redis.zadd(key, "GT", Number(le), grantId));
        continue;
      }
      claimed.push({
        reason: Number(le ?? 0) >= Number(na) ? "grant" : "token",
        subject: {
          grantId,
          tokenId: lt ?? null,
          rootGrantId: root ?? null,
          parentGrantId: par || null,
          agent: agent ?? null,
          issuedAt: null,
          ...(obo ? { onBehalfOf: obo } : {}),
        },
      });
    }
    return claimed;
  }

  async countLive(now: number): Promise<number> {
    return call(() => this.#redis.zcount(this.#key, `(${now}`, "+inf"));
  }
}
