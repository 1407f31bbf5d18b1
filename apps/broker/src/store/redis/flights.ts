import type { RedisKeys } from "../keys.js";
import type { Flight, Settlement } from "../types.js";
import { call, type ScriptedRedis } from "./client.js";

/** One SETTLE script per tree of the batch, all sent at once (auto-pipelined). */
export const settleFlights = async (
  redis: ScriptedRedis,
  keys: RedisKeys,
  settlements: readonly Settlement[],
): Promise<void> => {
  await call(() =>
    Promise.all(
      [...byTree(settlements, (s) => s.flight.tree)].map(([tree, batch]) =>
        redis.prsSettle(
          keys.flights(tree),
          keys.base(tree),
          ...batch.flatMap((s) => [s.flight.member, s.cost?.usd ?? "", s.cost?.tokens ?? ""]),
        ),
      ),
    ),
  );
};

/** ZADD XX GT: a lease only grows, and a flight that settled (or was charged) is not brought back. */
export const renewFlights = async (
  redis: ScriptedRedis,
  keys: RedisKeys,
  flights: readonly Flight[],
  until: number,
): Promise<void> => {
  await call(() =>
    Promise.all(
      [...byTree(flights, (f) => f.tree)].map(([tree, batch]) =>
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
