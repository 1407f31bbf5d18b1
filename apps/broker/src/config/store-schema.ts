import { z } from "zod";
import { DEFAULTS } from "./defaults.js";

const RedisUrl = z.url({ protocol: /^rediss?$/, error: "a redis:// or rediss:// URL" });

/** The config file's `store` section: where grants live and how the nodes share them. */
export const StoreSection = z
  .strictObject({
    /** One Redis server. */
    redis: RedisUrl.optional(),
    /** Seed nodes of a Redis Cluster (any of its masters; the rest is discovered). */
    cluster: z.array(RedisUrl).min(1, "at least one node").optional(),
    /** Redis behind Sentinel: the sentinels and the monitored master's name. */
    sentinel: z
      .strictObject({
        nodes: z.array(RedisUrl).min(1, "at least one sentinel"),
        name: z.string().min(1),
        /** Password of the Redis master and replicas (the sentinels' own go in their URLs). */
        password: z.string().min(1).optional(),
      })
      .optional(),
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9:_-]{1,32}$/, "letters, digits, : _ - (max 32)")
      .default("prs"),
    /** Seconds a Redis command may take before the request fails closed (503). */
    command_timeout: z
      .number()
      .positive()
      .max(60)
      .default(DEFAULTS.redis.commandTimeoutMs / 1000),
    /** Seconds start waits for Redis. */
    connect_timeout: z
      .number()
      .positive()
      .max(300)
      .default(DEFAULTS.redis.connectTimeoutMs / 1000),
    /**
     * Seconds a node that hears nothing from the others still counts as live: a revoking call
     * waits at most this long for a node that stopped answering (crashed, cut off).
     */
    node_lease: z
      .number()
      .min(0.05)
      .max(30)
      .default(DEFAULTS.redis.nodeLeaseMs / 1000),
    /**
     * Serve what needs no counter in Redis from node-local state (docs/consistency.md); false:
     * every proxied request runs the authorisation script.
     */
    node_local: z.boolean().default(true),
    /**
     * Replicas a revocation must reach before its call answers (WAIT), so that a failover cannot
     * lose it: default 1 behind Sentinel, 0 otherwise. Not with a Cluster.
     */
    wait_replicas: z.int().min(0).max(16).optional(),
    /** Seconds a revoking call waits for those replicas before it answers 503 (the revocation stays in force). */
    wait_timeout: z
      .number()
      .min(0.01)
      .max(30)
      .default(DEFAULTS.redis.waitTimeoutMs / 1000),
  })
  .prefault({});
