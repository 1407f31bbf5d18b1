import type { Problems } from "../problems.js";
import type { ConfigFile } from "../schema.js";
import { Secret } from "../secret.js";
import type { RedisTarget } from "../types.js";

/** `store:` and `secret:` → where grants live (nothing: the memory store), and the token-hashing secret. */
export const resolveStore = (
  file: Pick<ConfigFile, "store" | "secret">,
  problems: Problems,
): RedisTarget | undefined => {
  const { redis, cluster, sentinel } = file.store;
  if ([redis, cluster, sentinel].filter((v) => v !== undefined).length > 1) {
    problems.add("store", "set one of redis, cluster, sentinel");
  }
  const target: RedisTarget | undefined = redis
    ? { kind: "single", url: new Secret(redis) }
    : cluster
      ? { kind: "cluster", urls: cluster.map((u) => new Secret(u)) }
      : sentinel
        ? {
            kind: "sentinel",
            nodes: sentinel.nodes.map((u) => new Secret(u)),
            name: sentinel.name,
            password: sentinel.password ? new Secret(sentinel.password) : undefined,
          }
        : undefined;
  if (target && !file.secret) {
    problems.add(
      "secret",
      "is required with a Redis store (every broker node must hash tokens with the same secret): secret: ${PERISHABLE_SECRET}",
    );
  }
  if (target?.kind === "cluster" && (file.store.wait_replicas ?? 0) > 0) {
    problems.add(
      "store.wait_replicas",
      "works with redis or sentinel; on a Cluster each shard fails over by itself (leave it unset)",
    );
  }
  return target;
};

/** Replicas a revocation must reach before it answers: as set, else 1 behind Sentinel and 0 otherwise. */
export const waitReplicasOf = (file: Pick<ConfigFile, "store">): number =>
  file.store.wait_replicas ?? (file.store.sentinel ? 1 : 0);
