import type { RevocationRule } from "../../policy/revocation.js";
import { ruleSelects } from "../../policy/revocation.js";
import type { RedisKeys } from "../keys.js";
import { RECORD_GRACE_MS } from "../types.js";
import { call, mastersOf, type ScriptedRedis } from "./client.js";
import type { ExpiryIndex } from "./expiry-index.js";
import { keyBatches, ruleSubjects } from "./scan.js";

/**
 * The bulk walk behind a revocation rule: SCAN every master for grant records in batches, read
 * what the rule looks at, and run one PURGE script per lineage tree of a batch (deleting the
 * selected grants, their subtrees and their tokens, and leaving a tombstone).
 */
export const purgeByRule = async (
  redis: ScriptedRedis,
  keys: RedisKeys,
  expiries: ExpiryIndex,
  rule: RevocationRule,
  now: number,
  onGone: (ids: string[]) => Promise<void> = async () => {},
): Promise<{ grants: number; tokens: number }> => {
  let grants = 0;
  let tokens = 0;
  for await (const batch of keyBatches(mastersOf(redis), keys.grantPattern())) {
    const selected = new Map<string, { ids: string[]; tombUntil: number }>();
    for (const { id, tree, notAfter, subject } of await ruleSubjects(redis, batch)) {
      if (!ruleSelects(rule, subject)) continue;
      const ofTree = selected.get(tree) ?? { ids: [], tombUntil: 0 };
      ofTree.ids.push(id);
      ofTree.tombUntil = Math.max(ofTree.tombUntil, notAfter + RECORD_GRACE_MS);
      selected.set(tree, ofTree);
    }
    const results = await call(() =>
      Promise.all(
        [...selected].map(([tree, ofTree]) =>
          redis.prsPurge(keys.tree(tree), keys.base(tree), now, ofTree.tombUntil, ...ofTree.ids),
        ),
      ),
    );
    const gone: string[] = [];
    for (const [g, t, ids] of results) {
      grants += Number(g);
      tokens += Number(t);
      gone.push(...ids);
    }
    // One ZREM per chunk of this SCAN batch, not one per tree: every root grant is a tree.
    await expiries.forget(gone);
    if (gone.length > 0) await onGone(gone);
  }
  return { grants, tokens };
};
