import { isolatedRedis } from "@perishable/test-support";
import { inject } from "vitest";
import { RedisStore } from "../src/store/redis/redis-store.js";
import { describeStoreContract } from "./support/store-contract.js";

describeStoreContract("redis", async () => {
  const redis = await isolatedRedis(inject("redisUrl"), "contract");
  const store = new RedisStore({ url: inject("redisUrl"), prefix: redis.prefix, auditMaxLen: 1000 });
  await store.connect();
  return Object.assign(store, {
    [Symbol.asyncDispose]: async () => {
      await store.close();
      await redis[Symbol.asyncDispose]();
    },
  });
});
