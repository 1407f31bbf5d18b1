import type { BrokerConfig, RedisTarget } from "../config/types.js";
import { MemoryStore } from "./memory/memory-store.js";
import { type RedisConnection, RedisStore } from "./redis/redis-store.js";
import type { Store } from "./types.js";

/** The store the config asks for, connected: Redis (one server, Cluster or Sentinel) when set, else memory. */
export const openStore = async (config: BrokerConfig): Promise<Store> => {
  if (!config.store.redis) return new MemoryStore({ auditMaxLen: config.audit.streamMaxLen });
  const store = new RedisStore({
    connection: connectionOf(config.store.redis),
    prefix: config.store.prefix,
    auditMaxLen: config.audit.streamMaxLen,
    commandTimeoutMs: config.store.commandTimeoutMs,
    connectTimeoutMs: config.store.connectTimeoutMs,
    nodeLeaseMs: config.store.nodeLeaseMs,
    nodeLocal: config.store.nodeLocal,
    waitReplicas: config.store.waitReplicas,
    waitTimeoutMs: config.store.waitTimeoutMs,
  });
  try {
    await store.connect();
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
};

export const connectionOf = (target: RedisTarget): RedisConnection => {
  switch (target.kind) {
    case "single":
      return { kind: "single", url: target.url.reveal() };
    case "cluster":
      return { kind: "cluster", urls: target.urls.map((u) => u.reveal()) };
    case "sentinel":
      return {
        kind: "sentinel",
        sentinels: target.nodes.map((u) => u.reveal()),
        name: target.name,
        password: target.password?.reveal(),
      };
  }
};

/** How the store is described in logs: hosts and ports, never a URL (it may hold a password). */
export const describeStore = (config: BrokerConfig): string => {
  const target = config.store.redis;
  if (!target) return "memory (one node; everything is lost on exit)";
  const hostOf = (url: string) => {
    const u = new URL(url);
    return `${u.hostname}:${u.port || 6379}`;
  };
  const where =
    target.kind === "single"
      ? `redis ${hostOf(target.url.reveal())}`
      : target.kind === "cluster"
        ? `redis cluster ${target.urls.map((u) => hostOf(u.reveal())).join(", ")}`
        : `redis sentinel ${target.name} via ${target.nodes.map((u) => hostOf(u.reveal())).join(", ")}`;
  return `${where} (prefix ${config.store.prefix})`;
};
