import { isolatedRedis, type RedisCluster, startRedisCluster } from "@perishable/test-support";
import { afterAll, beforeAll } from "vitest";
import { RedisStore } from "../src/store/redis/redis-store.js";
import { startTestBroker } from "./support/broker.js";
import { describeMultiNode } from "./support/multi-node-suite.js";
import { describeStoreContract } from "./support/store-contract.js";

/** A real 3-master Redis Cluster, started from redis-server for this file and torn down after it. */
let cluster: RedisCluster;
beforeAll(async () => {
  cluster = await startRedisCluster(3);
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

describeStoreContract("redis cluster", async () => {
  const redis = await isolatedRedis(cluster.urls, "contract");
  const store = new RedisStore({
    connection: { kind: "cluster", urls: cluster.urls },
    prefix: redis.prefix,
    auditMaxLen: 1000,
  });
  await store.connect();
  return Object.assign(store, {
    [Symbol.asyncDispose]: async () => {
      await store.close();
      await redis[Symbol.asyncDispose]();
    },
  });
});

describeMultiNode("Redis Cluster (3 masters)", () =>
  startTestBroker({ redisCluster: cluster.urls, cutoffMarginMs: 50 }),
);
