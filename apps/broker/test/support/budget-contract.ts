import { describe, expect, it } from "vitest";
import type { Candidate, Store } from "../../src/store/types.js";
import { childGrant, rootGrant } from "./records.js";

const priced = (usd: number, tokens = 0): Candidate => ({
  scope: "llm:complete",
  pass: true,
  limit: 0,
  windowMs: 0,
  worst: { usd, tokens },
});
const unbounded: Candidate = { scope: "llm:complete", pass: true, limit: 0, windowMs: 0, worst: null };
const lease = (id: string, until: number) => ({ id, until });

/**
 * Budgets and concurrency, the same on every Store: a tracked lineage's request reserves its
 * worst case on the grant and every ancestor in the same step as the other checks, settles at
 * what it cost, and a lease that runs out is charged in full.
 */
export const describeBudgetContract = (open: () => Promise<Store & AsyncDisposable>) => {
  describe("budgets and concurrency", () => {
    it("reserves the worst case, refuses what the rest cannot cover, and settles at the real cost", async () => {
      await using store = await open();
      const now = Date.now();
      const root = rootGrant(now, { budget: { usd: 1_000 } });
      await store.createGrant(root.grant, root.record);
      const first = await store.authorize(root.ref, now, [priced(600, 10)], lease("a", now + 30_000));
      expect(first).toMatchObject({ ok: true, flight: { tree: root.grant.tree } });
      expect(await store.authorize(root.ref, now, [priced(600)], lease("b", now + 30_000))).toMatchObject({
        ok: false,
        code: "budget_exhausted",
        reason: { kind: "budget", unit: "usd", limit: 1_000 },
      });
      expect((await store.getGrant(root.grant.id, now))?.spend).toEqual({
        spentUsd: 0,
        spentTokens: 0,
        reservedUsd: 600,
        reservedTokens: 10,
        inFlight: 1,
      });
      if (!first.ok) throw new Error("unreachable");
      await store.settle([{ flight: first.flight!, cost: { usd: 100, tokens: 4 } }]);
      // Settling twice changes nothing: the flight is gone.
      await store.settle([{ flight: first.flight!, cost: { usd: 100, tokens: 4 } }]);
      expect((await store.getGrant(root.grant.id, now))?.spend).toEqual({
        spentUsd: 100,
        spentTokens: 4,
        reservedUsd: 0,
        reservedTokens: 0,
        inFlight: 0,
      });
      expect(await store.authorize(root.ref, now, [priced(900)], lease("c", now + 30_000))).toMatchObject({
        ok: true,
      });
      expect(await store.authorize(root.ref, now, [priced(1)], lease("d", now + 30_000))).toMatchObject({
        code: "budget_exhausted",
      });
    });

    it("pools a lineage: a child without a budget draws on its parent's, and its spend is the parent's", async () => {
      await using store = await open();
      const now = Date.now();
      const root = rootGrant(now, { budget: { usd: 1_000, tokens: 50 } });
      const child = childGrant(now, root.grant);
      await store.createGrant(root.grant, root.record);
      await store.createGrant(child.grant, child.record, root.ref, now);
      const spent = await store.authorize(child.ref, now, [priced(700, 10)], lease("a", now + 30_000));
      expect(spent).toMatchObject({ ok: true });
      expect(await store.authorize(root.ref, now, [priced(400)], lease("b", now + 30_000))).toMatchObject({
        code: "budget_exhausted",
        reason: { kind: "budget", unit: "usd", limit: 1_000 },
      });
      expect(await store.authorize(child.ref, now, [priced(400)], lease("c", now + 30_000))).toMatchObject({
        code: "budget_exhausted",
        reason: { kind: "budget", unit: "usd", limit: 1_000, ancestor: root.grant.id },
      });
      // Tokens are a budget of their own.
      expect(await store.authorize(child.ref, now, [priced(1, 41)], lease("d", now + 30_000))).toMatchObject({
        code: "budget_exhausted",
        reason: { kind: "budget", unit: "tokens", limit: 50, ancestor: root.grant.id },
      });
      if (!spent.ok) throw new Error("unreachable");
      await store.settle([{ flight: spent.flight!, cost: null }]); // no usage: charged in full
      expect((await store.getGrant(root.grant.id, now))?.spend).toMatchObject({
        spentUsd: 700,
        reservedUsd: 0,
      });
      expect((await store.getGrant(child.grant.id, now))?.spend).toMatchObject({
        spentUsd: 700,
        inFlight: 0,
      });
    });

    it("refuses a request with no cost bound under a budget, and lets it through a slot-only lineage", async () => {
      await using store = await open();
      const now = Date.now();
      const budgeted = rootGrant(now, { budget: { usd: 1_000_000 } });
      const slotted = rootGrant(now, { maxConcurrent: 5 });
      await store.createGrant(budgeted.grant, budgeted.record);
      await store.createGrant(slotted.grant, slotted.record);
      expect(await store.authorize(budgeted.ref, now, [unbounded], lease("a", now + 30_000))).toMatchObject({
        code: "constraint_denied",
        reason: { kind: "unbudgeted", scope: "llm:complete" },
      });
      expect(await store.authorize(slotted.ref, now, [unbounded], lease("b", now + 30_000))).toMatchObject({
        ok: true,
      });
    });

    it("counts requests in flight on the grant and every ancestor, until they settle", async () => {
      await using store = await open();
      const now = Date.now();
      const root = rootGrant(now, { maxConcurrent: 2 });
      const child = childGrant(now, root.grant);
      await store.createGrant(root.grant, root.record);
      await store.createGrant(child.grant, child.record, root.ref, now);
      const one = await store.authorize(child.ref, now, [priced(0)], lease("a", now + 30_000));
      const two = await store.authorize(root.ref, now, [priced(0)], lease("b", now + 30_000));
      expect([one.ok, two.ok]).toEqual([true, true]);
      expect(await store.authorize(child.ref, now, [priced(0)], lease("c", now + 30_000))).toMatchObject({
        code: "concurrency_limited",
        reason: { kind: "concurrency", limit: 2, ancestor: root.grant.id },
        retryAfterMs: 1000,
      });
      if (!one.ok) throw new Error("unreachable");
      await store.settle([{ flight: one.flight!, cost: { usd: 0, tokens: 0 } }]);
      expect(await store.authorize(child.ref, now, [priced(0)], lease("d", now + 30_000))).toMatchObject({
        ok: true,
      });
    });

    it("charges a flight whose lease ran out in full, frees its slot, and ignores its late settlement", async () => {
      await using store = await open();
      const now = Date.now();
      const root = rootGrant(now, { budget: { usd: 1_000 }, maxConcurrent: 1 });
      await store.createGrant(root.grant, root.record);
      const held = await store.authorize(root.ref, now, [priced(300, 7)], lease("a", now + 1_000));
      if (!held.ok) throw new Error(`refused: ${held.code}`);
      expect(await store.authorize(root.ref, now + 500, [priced(1)], lease("b", now + 1_500))).toMatchObject({
        code: "concurrency_limited",
      });
      // Renewed: still in flight past its first lease.
      await store.renew([held.flight!], now + 3_000);
      expect(
        await store.authorize(root.ref, now + 2_000, [priced(1)], lease("c", now + 4_000)),
      ).toMatchObject({
        code: "concurrency_limited",
      });
      // Its node is gone: once the lease ends, the next use of the tree charges it and frees the slot.
      const after = await store.authorize(root.ref, now + 3_001, [priced(1)], lease("d", now + 33_000));
      expect(after).toMatchObject({ ok: true });
      expect((await store.getGrant(root.grant.id, now + 3_001))?.spend).toEqual({
        spentUsd: 300,
        spentTokens: 7,
        reservedUsd: 1,
        reservedTokens: 0,
        inFlight: 1,
      });
      await store.settle([{ flight: held.flight!, cost: { usd: 1, tokens: 1 } }]);
      expect((await store.getGrant(root.grant.id, now + 3_001))?.spend).toMatchObject({
        spentUsd: 300,
        inFlight: 1,
      });
    });

    it("leaves an untracked lineage's requests out of it entirely", async () => {
      await using store = await open();
      const now = Date.now();
      const root = rootGrant(now);
      await store.createGrant(root.grant, root.record);
      expect(await store.authorize(root.ref, now, [unbounded], lease("a", now + 30_000))).toMatchObject({
        ok: true,
        flight: null,
      });
      expect((await store.getGrant(root.grant.id, now))?.spend).toBeUndefined();
    });
  });
};
