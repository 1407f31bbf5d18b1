import { isolatedRedis } from "@perishable/test-support";
import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { RATE_LEASE, RATE_RETURN } from "../src/store/redis/lease-scripts.js";
import { RateSlices } from "../src/store/redis/rate-slices.js";

/**
 * The lease protocol of rate slices under failures, on real Redis's scripts: three nodes lease,
 * spend and give back while lease requests are lost before Redis sees them, lease replies are
 * lost after Redis applied them (units reserved that no node will ever spend), and give-backs
 * are lost. Whatever the interleaving, no fixed window lets more than the limit through: a
 * failure may only cost undershoot, never an extra unit.
 */
// Large enough for slices of several units (a slice is at most a sixteenth of the room left).
const LIMIT = 48;
const WINDOW = 1_000;
type Fault = "ok" | "lost-request" | "lost-reply";

let redis: Redis & {
  prsRateLease(key: string, ...args: (string | number)[]): Promise<[number, number]>;
  prsRateReturn(key: string, ...args: (string | number)[]): Promise<number>;
};
let prefix: string;
let dispose: (() => Promise<void>) | undefined;
beforeAll(async () => {
  const isolated = await isolatedRedis(inject("redisUrl"), "leasefail");
  prefix = isolated.prefix;
  dispose = () => isolated[Symbol.asyncDispose]();
  redis = new Redis(inject("redisUrl")) as typeof redis;
  redis.defineCommand("prsRateLease", { numberOfKeys: 1, lua: RATE_LEASE });
  redis.defineCommand("prsRateReturn", { numberOfKeys: 1, lua: RATE_RETURN });
});
afterAll(async () => {
  redis?.disconnect();
  await dispose?.();
});

/** A request on a node after some time; sometimes the node first gives back what it holds (idle, a revocation). */
const step = fc.record({
  node: fc.nat(2),
  // Mostly back to back, so that windows fill up to their limit; now and then time passes.
  waitMs: fc.oneof({ weight: 100, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat(WINDOW) }),
  release: fc.boolean(),
});
const faults = fc.array(fc.constantFrom<Fault>("ok", "ok", "lost-request", "lost-reply"), {
  minLength: 1,
  maxLength: 20,
});
const returnLost = fc.array(fc.boolean(), { minLength: 1, maxLength: 20 });

describe("rate-slice leases under lost requests, lost replies and lost give-backs (property)", () => {
  it("never lets more than the limit through in a window", async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 60, maxLength: 250 }),
        faults,
        returnLost,
        async (steps, leaseFaults, lostReturns) => {
          run += 1;
          const tree = `t${run}`;
          const base = `${prefix}:{${tree}}:`;
          const key = `${base}g:root`;
          let leases = 0;
          let returns = 0;
          const node = () =>
            new RateSlices(
              async (levels, scope, window, limit, want, now) => {
                const fault = leaseFaults[leases++ % leaseFaults.length]!;
                if (fault === "lost-request") throw new Error("connection reset before the script ran");
                const [taken, cur] = await redis.prsRateLease(
                  key,
                  base,
                  now,
                  scope,
                  window,
                  limit,
                  want,
                  ...levels,
                );
                if (fault === "lost-reply") throw new Error("connection reset after the script ran");
                return [Number(taken), Number(cur)] as const;
              },
              (levels, scope, cur, units) => {
                if (lostReturns[returns++ % lostReturns.length]) return;
                void redis.prsRateReturn(key, base, scope, cur, units, ...levels).catch(() => {});
              },
            );
          const nodes = [node(), node(), node()];
          let now = (Math.floor(Date.now() / WINDOW) + 2) * WINDOW;
          const allowed = new Map<number, number>();
          for (const s of steps) {
            now += s.waitMs;
            const ok = await nodes[s.node]!.take(["root"], "llm:complete", WINDOW, LIMIT, now).catch(
              () => false,
            );
            if (!ok) continue;
            const window = Math.floor(now / WINDOW);
            allowed.set(window, (allowed.get(window) ?? 0) + 1);
          }
          for (const n of nodes) n.stop();
          for (const [window, n] of allowed) expect(n, `window ${window}`).toBeLessThanOrEqual(LIMIT);
        },
      ),
      { numRuns: 60 },
    );
  });
});
