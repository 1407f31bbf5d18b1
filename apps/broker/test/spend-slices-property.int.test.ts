import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SETTLE, SPEND_LEASE } from "../src/store/redis/flight-scripts.js";
import {
  SpendSlices,
  type SpentFromSlice,
  spendLeaseArgs,
  spendLeaseOf,
} from "../src/store/redis/spend-slices.js";
import { scriptedRedis } from "./support/scripted-redis.js";

/**
 * Slices of a budget and of maxConcurrent under failures, on Redis's own scripts: three nodes lease,
 * serve and settle while lease replies are lost after Redis applied them, settlements are lost (the
 * slice then stays reserved until its lease ends and is charged in full), renewals fail, lineages
 * are revoked on one node at random, and requests end at random costs. After every step no level's
 * spent + reserved passes its budget and no level has more slots in flight than maxConcurrent; no
 * more requests are open at once than maxConcurrent; and once every lease has ended, nothing stays
 * reserved or in flight and Redis has charged at least what the requests cost.
 */
const LEASE_MS = 300;
const WORST = 1_000; // nano-dollars a request reserves
type Fault = "ok" | "lost-request" | "lost-reply";

const db = scriptedRedis<{
  prsSpendLease(key: string, ...args: (string | number)[]): Promise<(string | number)[]>;
  prsSettle(key: string, ...args: (string | number)[]): Promise<number>;
}>("spendfail", { prsSpendLease: SPEND_LEASE, prsSettle: SETTLE });

const step = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ kind: fc.constant("start" as const), node: fc.nat(2), child: fc.boolean() }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("finish" as const),
      pick: fc.nat(40),
      share: fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: null }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("drop" as const), node: fc.nat(2), child: fc.boolean() }),
  },
);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("spend slices under lost replies, lost settlements and revocations (property)", () => {
  it("never reserves past a budget or holds more slots than maxConcurrent, and never charges less than was spent", async () => {
    const { redis, prefix } = db;
    let run = 0;
    let served = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 40, maxLength: 120 }),
        fc.array(fc.constantFrom<Fault>("ok", "ok", "ok", "lost-request", "lost-reply"), {
          minLength: 1,
          maxLength: 12,
        }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 12 }),
        fc.record({ budget: fc.integer({ min: 30, max: 200 }), slots: fc.integer({ min: 16, max: 64 }) }),
        async (steps, leaseFaults, settlesLost, limits) => {
          run += 1;
          const base = `${prefix}:{s${run}}:`;
          const fkey = `${base}fl`;
          const budget = limits.budget * WORST;
          // The root has the budget and the slots; the child draws on both.
          await redis.hset(`${base}g:root`, "bu", budget, "mcc", limits.slots);
          await redis.hset(`${base}g:child`, "tr", "1");
          let leases = 0;
          let settles = 0;
          let ids = 0;
          const pending: Promise<unknown>[] = [];
          const node = () =>
            new SpendSlices({
              lease: async (levels, want, least, id, until) => {
                const fault = leaseFaults[leases++ % leaseFaults.length]!;
                if (fault === "lost-request") throw new Error("connection reset before the script ran");
                const reply = await redis.prsSpendLease(
                  fkey,
                  ...spendLeaseArgs(base, id, until, want, least, levels),
                );
                if (fault === "lost-reply") throw new Error("connection reset after the script ran");
                return spendLeaseOf(reply);
              },
              settle: async (_levels, member, usd, tokens) => {
                if (settlesLost[settles++ % settlesLost.length]) return; // left to its lease: charged in full
                const settled = redis.prsSettle(fkey, base, member, usd, tokens);
                pending.push(settled);
                await settled;
              },
              renew: async (_levels, member, until) =>
                (await redis.zadd(fkey, "XX", "GT", "CH", until, member)) === 1,
            });
          const nodes = [node(), node(), node()];
          const open: { spent: SpentFromSlice; child: boolean }[] = [];
          let cost = 0;
          const check = async () => {
            const [root] = await Promise.all([redis.hmget(`${base}g:root`, "su", "ru", "inf")]);
            const [su, ru, inf] = root.map((v) => Number(v ?? 0));
            expect(su! + ru!).toBeLessThanOrEqual(budget);
            expect(inf).toBeLessThanOrEqual(limits.slots);
            expect(open.length).toBeLessThanOrEqual(limits.slots);
          };
          for (const s of steps) {
            if (s.kind === "start") {
              const levels = s.child ? ["child", "root"] : ["root"];
              const now = Date.now();
              ids += 1;
              const spent = await nodes[s.node]!.take(levels, { usd: WORST, tokens: 0 }, now, {
                id: `r${run}.${ids}`,
                until: now + LEASE_MS,
              }).catch(() => undefined);
              if (spent) {
                served += 1;
                open.push({ spent, child: s.child });
              }
            } else if (s.kind === "finish") {
              const done = open.splice(s.pick % Math.max(1, open.length), 1)[0];
              if (done) {
                const usd = s.share === null ? WORST : Math.floor(WORST * s.share);
                cost += usd;
                done.spent.close(s.share === null ? null : { usd, tokens: 0 });
              }
            } else nodes[s.node]!.drop(s.child ? ["child"] : ["root"]);
            await check();
          }
          for (const o of open.splice(0)) {
            cost += WORST;
            o.spent.close(null);
          }
          for (const n of nodes) n.stop();
          await Promise.allSettled(pending);
          // Every lease has ended: a lease on the tree settles whatever was left to its lease, in full.
          await sleep(LEASE_MS + 50);
          for (let i = 0; i < 5 && (await redis.zcard(fkey)) > 0; i++)
            await redis.prsSpendLease(fkey, base, Date.now(), "sweep", 0, 0, 0, 0, 0, 0, "root");
          expect(await redis.zcard(fkey)).toBe(0);
          await check();
          const [su, ru, inf] = (await redis.hmget(`${base}g:root`, "su", "ru", "inf")).map((v) =>
            Number(v ?? 0),
          );
          expect(ru).toBe(0);
          expect(inf).toBe(0);
          expect(su).toBeGreaterThanOrEqual(cost);
        },
      ),
      { numRuns: 40 },
    );
    // Requests were served from slices (a lease that always failed would make the rest vacuous).
    expect(served).toBeGreaterThan(200);
  });
});
