import { describe, expect, it } from "vitest";
import { Slices } from "./slices.js";

/** A Redis counter for one window, with what was leased and given back. */
const fakeRedis = (limit: number) => {
  const log = { leased: [] as number[], returned: [] as number[], count: 0 };
  const slices = new Slices({
    rate: {
      lease: async (_levels, _scope, window, lim, want, now) => {
        const give = Math.min(want, lim - log.count);
        log.count += Math.max(0, give);
        log.leased.push(give);
        return [Math.max(0, give), Math.floor(now / window)] as const;
      },
      giveBack: (_levels, _scope, _cur, units) => {
        log.count -= units;
        log.returned.push(units);
      },
    },
  });
  return { slices, log, limit };
};

describe("Slices of a rate limit", () => {
  it("doubles its slice while it runs out, never takes past the limit, and says when nothing fits", async () => {
    const { slices, log } = fakeRedis(40);
    let spent = 0;
    for (let i = 0; i < 60; i++) if (await slices.rate(["g"], "s", 60_000, 40, 1_000)) spent += 1;
    expect(spent).toBe(40);
    expect(log.leased.slice(0, 3)).toEqual([1, 2, 2]); // capped at a sixteenth of the limit (2)
    expect(log.count).toBe(40);
    slices.stop();
  });

  it("gives back what it did not spend when the window turns, and when the lineage is revoked", async () => {
    const { slices, log } = fakeRedis(1_600);
    for (let i = 0; i < 7; i++) await slices.rate(["g", "root"], "s", 1_000, 1_600, 500); // slices 1, 2, 4: 7 spent
    for (let i = 0; i < 2; i++) await slices.rate(["g", "root"], "s", 1_000, 1_600, 500); // an 8-unit slice: 6 left
    await slices.rate(["g", "root"], "s", 1_000, 1_600, 1_500); // the next window: the 6 go back
    expect(log.returned).toEqual([6]);
    slices.drop(["root"]);
    expect(log.returned.length).toBe(2);
    expect(log.count).toBe(10); // 9 spent in the first window, 1 in the second: the rest went back
    slices.stop();
  });
});

/** A grant's `used` as USES_LEASE keeps it: a slice is at most a sixteenth of what is left. */
const fakeUses = (maxUses: number) => {
  const log = { leases: 0, used: 0, returned: [] as number[] };
  const slices = new Slices({
    rate: {
      lease: () => Promise.reject(new Error("no rate limit here")),
      giveBack: () => {},
    },
    uses: {
      lease: async (_levels, want) => {
        log.leases += 1;
        const give = Math.min(want, Math.floor((maxUses - log.used) / 16));
        if (give <= 0) return 0;
        log.used += give;
        return give;
      },
      giveBack: (_levels, units) => {
        log.used -= units;
        log.returned.push(units);
      },
    },
  });
  return { slices, log };
};

describe("Slices of maxUses", () => {
  it("spends uses from doubling slices, never once fewer than sixteen are left, and does not ask again at once when none fit", async () => {
    const { slices, log } = fakeUses(100);
    let spent = 0;
    for (let i = 0; i < 100; i++) if (await slices.use(["g", "root"], 1_000)) spent += 1;
    // 1 + 2 + 4 + 5 + 4 + 4 + 3 + ...: slices shrink to a sixteenth of what is left, then stop.
    expect(log.used).toBe(spent);
    expect(100 - log.used).toBeGreaterThanOrEqual(15);
    expect(100 - log.used).toBeLessThan(32);
    const leases = log.leases;
    for (let i = 0; i < 10; i++) expect(await slices.use(["g", "root"], 1_500)).toBe(false);
    expect(log.leases).toBe(leases); // the empty lease is believed for a second: the script counts them
    expect(await slices.use(["g", "root"], 2_100)).toBe(false);
    expect(log.leases).toBe(leases + 1);
    slices.stop();
  });

  it("gives back what it holds when the lineage is revoked, and takes back a use the script will count", async () => {
    const { slices, log } = fakeUses(10_000);
    for (let i = 0; i < 4; i++) await slices.use(["g", "root"], 1_000); // slices of 1, 2, then 4: 3 left
    expect(log.used).toBe(7);
    slices.unuse(["g", "root"]); // 4 left
    slices.drop(["root"]);
    expect(log.returned).toEqual([4]);
    expect(log.used).toBe(3);
    slices.stop();
  });
});
