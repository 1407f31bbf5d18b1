import { type DevBroker, startDevBroker } from "@perishable/broker";
import { isolatedRedis } from "@perishable/test-support";

/** A dev broker on an isolated prefix of the test Redis, with the mock upstream, for SDK tests. */
export const devBrokerOnRedis = async (redisUrl: string): Promise<DevBroker> => {
  const redis = await isolatedRedis(redisUrl, "sdk");
  const dev = await startDevBroker({ redis: { url: redisUrl, prefix: redis.prefix } });
  const close = async () => {
    await dev.close();
    await redis[Symbol.asyncDispose]();
  };
  return { ...dev, close, [Symbol.asyncDispose]: close };
};
