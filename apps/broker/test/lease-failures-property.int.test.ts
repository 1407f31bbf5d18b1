import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RATE_LEASE, RATE_RETURN, USES_LEASE, USES_RETURN } from "../src/store/redis/lease-scripts.js";
import { Slices } from "../src/store/redis/slices.js";
import { scriptedRedis } from "./support/scripted-redis.js";

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

const db = scriptedRedis<{
  prsRateLease(key: string, ...args: (string | number)[]): Promise<[number, number]>;
  prsRateReturn(key: string, ...args: (string | number)[]): Promise<number>;
  prsUsesLease(key: string, ...args: (string | number)[]): Promise<number>;
  prsUsesReturn(key: string, ...args: (string | number)[]): Promise<number>;
}>("leasefail", {
  prsRateLease: RATE_LEASE,
  prsRateReturn: RATE_RETURN,
  prsUsesLease: USES_LEASE,
  prsUsesReturn: USES_RETURN,
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
    const { redis, prefix } = db;
    let run = 0;
    let through = 0;
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
            new Slices({
              rate: {
                lease: async (levels, scope, window, limit, want, now) => {
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
                giveBack: (levels, scope, cur, units) => {
                  if (lostReturns[returns++ % lostReturns.length]) return;
                  void redis.prsRateReturn(key, base, scope, cur, units, ...levels).catch(() => {});
                },
              },
            });
          const nodes = [node(), node(), node()];
          let now = (Math.floor(Date.now() / WINDOW) + 2) * WINDOW;
          const allowed = new Map<number, number>();
          for (const s of steps) {
            now += s.waitMs;
            const ok = await nodes[s.node]!.rate(["root"], "llm:complete", WINDOW, LIMIT, now).catch(
              () => false,
            );
            if (!ok) continue;
            through += 1;
            const window = Math.floor(now / WINDOW);
            allowed.set(window, (allowed.get(window) ?? 0) + 1);
          }
          for (const n of nodes) n.stop();
          for (const [window, n] of allowed) expect(n, `window ${window}`).toBeLessThanOrEqual(LIMIT);
        },
      ),
      { numRuns: 60 },
    );
    expect(through).toBeGreaterThan(1_000); // served from slices: the bound was tested, not avoided
  });
});

/** AUTHORIZE's maxUses check and count, for the levels' grant keys: → 1 counted, 0 refused. */
const COUNT_ONE = `
for _, k in ipairs(KEYS) do
  local v = redis.call('HMGET', k, 'mu', 'used')
  if (tonumber(v[2]) or 0) >= tonumber(v[1]) then return 0 end
end
for _, k in ipairs(KEYS) do redis.call('HINCRBY', k, 'used', 1) end
return 1
`;

describe("maxUses leases under lost requests, lost replies and lost give-backs (property)", () => {
  it("never lets more than any level's maxUses through, and Redis counts exactly what was spent or lost", async () => {
    const { redis, prefix } = db;
    let run = 0;
    let fromSlices = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ node: fc.nat(2), child: fc.boolean(), release: fc.boolean() }), {
          minLength: 150,
          maxLength: 300,
        }),
        fc.record({ root: fc.integer({ min: 20, max: 100 }), child: fc.integer({ min: 16, max: 60 }) }),
        faults,
        returnLost,
        async (steps, maxUses, leaseFaults, lostReturns) => {
          run += 1;
          const base = `${prefix}:{u${run}}:`;
          await redis.hset(`${base}g:root`, "mu", maxUses.root);
          await redis.hset(`${base}g:child`, "mu", maxUses.child);
          let leases = 0;
          let returns = 0;
          // Units Redis counts that no node will spend: replies lost after Redis applied them, give-backs lost.
          const lost = { root: 0, child: 0 };
          const lose = (levels: readonly string[], units: number) => {
            for (const id of levels) lost[id as keyof typeof lost] += units;
          };
          const returning: Promise<unknown>[] = [];
          const node = () =>
            new Slices({
              rate: { lease: () => Promise.reject(new Error("no rate limit")), giveBack: () => {} },
              uses: {
                lease: async (levels, want) => {
                  const fault = leaseFaults[leases++ % leaseFaults.length]!;
                  if (fault === "lost-request") throw new Error("connection reset before the script ran");
                  const taken = await redis.prsUsesLease(`${base}g:${levels[0]}`, base, want, ...levels);
                  if (fault === "lost-reply") {
                    lose(levels, Number(taken));
                    throw new Error("connection reset after the script ran");
                  }
                  return Number(taken);
                },
                giveBack: (levels, units) => {
                  if (lostReturns[returns++ % lostReturns.length]) return lose(levels, units);
                  returning.push(redis.prsUsesReturn(`${base}g:${levels[0]}`, base, units, ...levels));
                },
              },
            });
          const nodes = [node(), node(), node()];
          const spent = { root: 0, child: 0 };
          const now = Date.now();
          for (const s of steps) {
            const levels = s.child ? ["child", "root"] : ["root"];
            if (s.release) nodes[s.node]!.drop(levels);
            // Whatever a slice cannot give, the script counts one by one (as AUTHORIZE does).
            const fromSlice = await nodes[s.node]!.use(levels, now).catch(() => false);
            if (fromSlice) fromSlices += 1;
            const ok =
              fromSlice ||
              (await redis.eval(COUNT_ONE, levels.length, ...levels.map((id) => `${base}g:${id}`))) === 1;
            if (!ok) continue;
            spent.root += 1;
            if (s.child) spent.child += 1;
          }
          for (const n of nodes) n.stop(); // gives back what every node still holds
          await Promise.all(returning);
          expect(spent.root).toBeLessThanOrEqual(maxUses.root);
          expect(spent.child).toBeLessThanOrEqual(maxUses.child);
          // Redis's count is every use spent plus exactly what the failures lost: nothing given back twice.
          const used = async (id: string) => Number((await redis.hget(`${base}g:${id}`, "used")) ?? 0);
          expect(await used("root")).toBe(spent.root + lost.root);
          expect(await used("child")).toBe(spent.child + lost.child);
        },
      ),
      { numRuns: 60 },
    );
    // Uses were spent from slices, not only by the script beside them.
    expect(fromSlices).toBeGreaterThan(500);
  });
});
