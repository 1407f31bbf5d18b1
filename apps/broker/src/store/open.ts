import type { BrokerConfig } from "../config/types.js";
import { MemoryStore } from "./memory/memory-store.js";
import { RedisStore } from "./redis/redis-store.js";
import type { Store } from "./types.js";

/** The store the config asks for, connected: Redis when `store.redis` is set, else memory. */
export const openStore = async (config: BrokerConfig): Promise<Store> => {
  if (!config.store.redis) return new MemoryStore({ auditMaxLen: config.audit.streamMaxLen });
  const store = new RedisStore({
    url: config.store.redis.reveal(),
    prefix: config.store.prefix,
    auditMaxLen: config.audit.streamMaxLen,
  });
  try {
    await store.connect();
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
};

/** How the store is described in logs: never the URL (it may hold a password). */
export const describeStore = (config: BrokerConfig): string => {
  if (!config.store.redis) return "memory (one node; everything is lost on exit)";
  const url = new URL(config.store.redis.reveal());
  return `redis ${url.hostname}:${url.port || 6379} (prefix ${config.store.prefix})`;
};
