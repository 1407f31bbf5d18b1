import { describe, expect, it } from "vitest";
import { RateSlices } from "./rate-slices.js";

/** A Redis counter for one window, with what was leased and given back. */
const fakeRedis = (limit: number) => {
  const log = { leased: [] as number[], returned: [] as number[], count: 0 };
  const slices = new RateSlices(
    async (_levels, _scope, window, lim, want, now) => {
      const give = Math.min(want, lim - log.count);
      log.count += Math.max(0, give);
      log.leased.push(give);
      return [Math.max(0, give), Math.floor(now / window)] as const;
    },
    (_levels, _scope, _cur, units) => {
      log.count -= units;
      log.returned.push(units);
    },
  );
  return { slices, log, limit };
};

describe("RateSlices", () => {
  it("doubles its slice while it runs out, never takes past the limit, and says when nothing fits", async () => {
    const { slices, log } = fakeRedis(40);
    let spent = 0;
    for (let i = 0; i < 60; i++) if (await slices.take(["g"], "s", 60_000, 40, 1_000)) spent += 1;
    expect(spent).toBe(40);
    expect(log.leased.slice(0, 3)).toEqual([1, 2, 2]); // capped at a sixteenth of the limit (2)
    expect(log.count).toBe(40);
    slices.stop();
  });

  it("gives back what it did not spend when the window turns, and when the lineage is revoked", async () => {
    const { slices, log } = fakeRedis(1_600);
    for (let i = 0; i < 7; i++) await slices.take(["g", "root"], "s", 1_000, 1_600, 500); // slices 1, 2, 4: 7 spent
    for (let i = 0; i < 2; i++) await slices.take(["g", "root"], "s", 1_000, 1_600, 500); // an 8-unit slice: 6 left
    await slices.take(["g", "root"], "s", 1_000, 1_600, 1_500); // the next window: the 6 go back
    expect(log.returned).toEqual([6]);
    slices.drop(["root"]);
    expect(log.returned.length).toBe(2);
    expect(log.count).toBe(10); // 9 spent in the first window, 1 in the second: the rest went back
    slices.stop();
  });
});
