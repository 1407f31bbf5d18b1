import { isolatedRedis } from "@perishable/test-support";
import fc from "fast-check";
import { describe, expect, inject, it } from "vitest";
import { MemoryStore } from "../src/store/memory/memory-store.js";
import { RedisStore } from "../src/store/redis/redis-store.js";
import type { AuthorizeResult, Candidate, Flight, Store } from "../src/store/types.js";
import { childGrant, type Issued, rootGrant } from "./support/records.js";

/** One step of a lineage's life: a request reserves, a flight settles (at a cost, or in full), time passes. */
type Step =
  | { readonly kind: "reserve"; readonly level: number; readonly usd: number; readonly tokens: number }
  | { readonly kind: "settle"; readonly pick: number; readonly share: number | null }
  | { readonly kind: "wait"; readonly ms: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("reserve" as const),
      level: fc.nat(2),
      usd: fc.nat(400),
      tokens: fc.nat(40),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("settle" as const),
      pick: fc.nat(20),
      share: fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: null }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("wait" as const), ms: fc.integer({ min: 100, max: 1_500 }) }),
  },
);

const LEASE_MS = 1_000;
const candidate = (usd: number, tokens: number): Candidate[] => [
  { scope: "llm:complete", pass: true, limit: 0, windowMs: 0, worst: { usd, tokens } },
];

/** A root with a budget, a child with a smaller one, a grandchild with none (it draws on both). */
const lineage = (now: number): Issued[] => {
  const root = rootGrant(now, { budget: { usd: 1_000, tokens: 100 }, maxConcurrent: 4 });
  const child = childGrant(now, root.grant, { budget: { usd: 600 } });
  const grandchild = childGrant(now, child.grant);
  return [root, child, grandchild];
};

interface Run {
  readonly decisions: string[];
  readonly spends: unknown[];
}

/**
 * Plays the steps on a store, checking after each that no level's spend plus holdings exceeds its
 * budget, and that what was charged is exactly what settled (at its cost, or in full) plus what
 * expired (in full): never less.
 */
const play = async (
  store: Store,
  issued: readonly Issued[],
  steps: readonly Step[],
  start: number,
): Promise<Run> => {
  for (const [i, g] of issued.entries())
    await store.createGrant(g.grant, g.record, i === 0 ? undefined : issued[i - 1]!.ref, start);
  let now = start;
  let lease = 0;
  const open: { flight: Flight; usd: number; tokens: number; until: number; level: number }[] = [];
  const charged: number[] = [0, 0, 0];
  const decisions: string[] = [];
  const spends: unknown[] = [];
  for (const s of steps) {
    if (s.kind === "wait") now += s.ms;
    else if (s.kind === "reserve") {
      const until = now + LEASE_MS;
      const result: AuthorizeResult = await store.authorize(
        issued[s.level]!.ref,
        now,
        candidate(s.usd, s.tokens),
        {
          id: `l${lease++}`,
          until,
        },
      );
      decisions.push(result.ok ? "ok" : `${result.code}:${JSON.stringify(result.reason)}`);
      if (result.ok)
        open.push({ flight: result.flight!, usd: s.usd, tokens: s.tokens, until, level: s.level });
      // What the store charged in full when it swept leases that ran out (this step's `now`).
      for (const f of open.filter((f) => f.until <= now)) {
        for (let l = 0; l <= f.level; l++) charged[l] = charged[l]! + f.usd;
        open.splice(open.indexOf(f), 1);
      }
    } else if (open.length > 0) {
      const f = open.splice(s.pick % open.length, 1)[0]!;
      const cost =
        s.share === null
          ? null
          : { usd: Math.floor(f.usd * s.share), tokens: Math.floor(f.tokens * s.share) };
      // Not swept yet (that happens at the tree's next reservation), so it settles at its cost.
      await store.settle([{ flight: f.flight, cost }]);
      for (let l = 0; l <= f.level; l++) charged[l] = charged[l]! + (cost?.usd ?? f.usd);
    }
    for (const [l, g] of issued.entries()) {
      const spend = (await store.getGrant(g.grant.id, now))!.spend!;
      const budget = g.grant.budget?.usd;
      if (budget !== undefined) expect(spend.spentUsd + spend.reservedUsd).toBeLessThanOrEqual(budget);
      // Each level is charged for itself and every level below it (the lineage is nested).
      expect(spend.spentUsd).toBe(charged[l]);
      spends.push(spend);
    }
  }
  return { decisions, spends };
};

describe("budgets under random interleavings", () => {
  it("never let a lineage spend more than any budget, never under-count, and agree between memory and Redis", async () => {
    const redis = await isolatedRedis(inject("redisUrl"), "budget-prop");
    const store = new RedisStore({ url: inject("redisUrl"), prefix: redis.prefix, auditMaxLen: 10 });
    await store.connect();
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 5, maxLength: 40 }), async (steps) => {
          const start = Date.now();
          const issued = lineage(start);
          const memory = new MemoryStore({ auditMaxLen: 10 });
          const twin = await play(memory, issued, steps, start);
          const real = await play(store, issued, steps, start);
          await memory.close();
          expect(real).toEqual(twin);
        }),
        { numRuns: 60 },
      );
    } finally {
      await store.close();
      await redis[Symbol.asyncDispose]();
    }
  });
});
