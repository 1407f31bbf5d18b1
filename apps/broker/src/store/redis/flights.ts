import type { RedisKeys } from "../keys.js";
import type { Flight, Settlement } from "../types.js";
import { call, type ScriptedRedis } from "./client.js";

/**
 * One SETTLE script per tree of the batch, all sent at once (auto-pipelined). A request served
 * from this node's slice of spend settles into the slice (spend-slices.ts), which settles here
 * in its turn.
 */
export const settleFlights = async (
  redis: ScriptedRedis,
  keys: RedisKeys,
  settlements: readonly Settlement[],
): Promise<void> => {
  for (const s of settlements) s.flight.local?.close(s.cost);
  const inRedis = settlements.filter((s) => !s.flight.local);
  if (inRedis.length === 0) return;
  await call(() =>
    Promise.all(
      [...byTree(inRedis, (s) => s.flight.tree)].map(([tree, batch]) =>
        redis.prsSettle(
          keys.flights(tree),
          keys.base(tree),
          ...batch.flatMap((s) => [s.flight.member, s.cost?.usd ?? "", s.cost?.tokens ?? ""]),
        ),
      ),
    ),
  );
};

/**
 * ZADD XX GT: a lease only grows, and a flight that settled (or was charged) is not brought back.
 * A request served from a slice is left out: its slice renews its own lease.
 */
export const renewFlights = async (
  redis: ScriptedRedis,
  keys: RedisKeys,
  flights: readonly Flight[],
  until: number,
): Promise<void> => {
  const inRedis = flights.filter((f) => !f.local);
  if (inRedis.length === 0) return;
  await call(() =>
    Promise.all(
      [...byTree(inRedis, (f) => f.tree)].map(([tree, batch]) =>
        redis.zadd(keys.flights(tree), "XX", "GT", ...batch.flatMap((f) => [until, f.member])),
      ),
    ),
  );
};

/** Items grouped by their tree, in order. */
const byTree = <T>(items: readonly T[], treeOf: (item: T) => string): Map<string, T[]> => {
  const trees = new Map<string, T[]>();
  for (const item of items) {
    const tree = treeOf(item);
    const list = trees.get(tree);
    if (list) list.push(item);
    else trees.set(tree, [item]);
  }
  return trees;
};
