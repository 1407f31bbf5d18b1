import { describe, expect, it } from "vitest";
import { type SpendLease, SpendSlices } from "./spend-slices.js";

/** A lineage's flights as SPEND_LEASE and SETTLE keep them: slices of `slots` slots and their worth in money. */
const fakeFlights = (slots: number) => {
  const log = { leases: 0, settled: [] as { member: string; usd: number }[] };
  const slices = new SpendSlices(
    {
      lease: async (_levels, want, _least, id) => {
        log.leases += 1;
        const lease: SpendLease = {
          usd: want.usd,
          tokens: 0,
          slots: Math.min(want.slots, slots),
          limitsUsd: true,
          limitsTokens: false,
          member: id,
          left: undefined,
        };
        return lease;
      },
      settle: async (_levels, member, usd) => {
        log.settled.push({ member, usd });
      },
      renew: async () => true,
    },
    30_000,
  );
  return { slices, log };
};
const lease = (n: number) => ({ id: `l${n}`, until: 1_000 + 30_000 });

describe("SpendSlices", () => {
  it("reserves each request's worst case from a slice, charges what it cost, and settles every slice of a revoked lineage", async () => {
    const { slices, log } = fakeFlights(1);
    const first = await slices.take(["g", "root"], { usd: 100, tokens: 0 }, 1_000, lease(1));
    const second = await slices.take(["g", "root"], { usd: 100, tokens: 0 }, 1_000, lease(2));
    expect(first && second).toBeTruthy();
    expect(log.leases).toBe(2); // one slot each: the first is still open
    first!.close({ usd: 30, tokens: 0 });
    first!.close({ usd: 30, tokens: 0 }); // once only
    slices.drop(["root"]);
    expect(log.settled).toEqual([{ member: "l1s", usd: 30 }]); // the other waits for its request
    second!.close(null); // no usage: its full reservation
    expect(log.settled).toEqual([
      { member: "l1s", usd: 30 },
      { member: "l2s", usd: 100 },
    ]);
    slices.stop();
  });

  it("refuses an unpriced request under a budget to the script, without leasing", async () => {
    const { slices, log } = fakeFlights(4);
    const priced = await slices.take(["g"], { usd: 10, tokens: 0 }, 1_000, lease(1));
    expect(await slices.take(["g"], null, 1_000, lease(2))).toBeUndefined();
    expect(log.leases).toBe(1);
    priced!.close({ usd: 1, tokens: 0 });
    slices.stop();
  });
});
