import { isolatedRedis } from "@perishable/test-support";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { RedisStore } from "../src/store/redis/redis-store.js";
import type { Candidate } from "../src/store/types.js";
import { childGrant, rootGrant } from "./support/records.js";

const LIMIT = 6;
const WINDOW = 1_000;
const candidates: Candidate[] = [
  { scope: "llm:complete", pass: true, limit: LIMIT, windowMs: WINDOW, worst: null },
];

/** One step: a request on a node with the root's or the child's token, after some time passed. */
const step = fc.record({
  node: fc.nat(2),
  child: fc.boolean(),
  waitMs: fc.oneof(fc.constant(0), fc.nat(WINDOW)),
});

/**
 * Leased rate slices against the sliding window's bound, on real Redis with three nodes (three
 * stores, each with its node-local path and its slices): whatever the interleaving of requests
 * over nodes and tokens and the time between them, no fixed window lets more than the limit
 * through on any level — the child's requests count on the root too.
 */
describe("rate-limit slices over three nodes (property)", () => {
  const stores: RedisStore[] = [];
  let dispose: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    const redis = await isolatedRedis(inject("redisUrl"), "slices");
    dispose = () => redis[Symbol.asyncDispose]();
    for (let i = 0; i < 3; i++) {
      const store = new RedisStore({ url: inject("redisUrl"), prefix: redis.prefix, auditMaxLen: 100 });
      await store.connect();
      stores.push(store);
    }
  });
  afterAll(async () => {
    for (const store of stores) await store.close();
    await dispose?.();
  });

  it("never lets more than the limit through in a window, on any level", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 60 }), async (steps) => {
        // A fresh lineage per run (fresh counters), at a window's start a little in the future.
        let now = (Math.floor(Date.now() / WINDOW) + 2) * WINDOW;
        const root = rootGrant(now);
        const child = childGrant(now, root.grant);
        await stores[0]!.createGrant(root.grant, root.record, undefined, now);
        await stores[0]!.createGrant(child.grant, child.record, root.ref, now);
        const allowed = new Map<string, number>();
        for (const s of steps) {
          now += s.waitMs;
          const token = s.child ? child : root;
          const result = await stores[s.node]!.authorize(token.ref, now, candidates);
          if (!result.ok) {
            expect(result.code).toBe("rate_limited");
            continue;
          }
          const window = Math.floor(now / WINDOW);
          for (const level of s.child ? ["root", "child"] : ["root"]) {
            const key = `${level}:${window}`;
            allowed.set(key, (allowed.get(key) ?? 0) + 1);
          }
        }
        for (const [key, n] of allowed) expect(n, key).toBeLessThanOrEqual(LIMIT);
      }),
      { numRuns: 40 },
    );
  });
});
