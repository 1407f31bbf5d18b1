import { Cluster, type ClusterOptions, Redis, type RedisOptions, ReplyError } from "ioredis";
import { DEFAULTS } from "../../config/defaults.js";
import { StoreUnavailableError } from "../types.js";
import { SETTLE, SPEND_LEASE } from "./flight-scripts.js";
import { RATE_LEASE, RATE_RETURN, USES_LEASE, USES_RETURN } from "./lease-scripts.js";
import { BEAT, MEMBERS, SHOUT } from "./node-scripts.js";
import { PURGE, REVOKE_GRANT, REVOKE_TOKEN } from "./revoke-scripts.js";
import { AUDIT_APPEND, AUTHORIZE, CREATE, FACTS, INSPECT, REFRESH } from "./scripts.js";

/**
 * The Redis side of the store that is not about grants: connections (one server, a Cluster, a
 * master behind Sentinel), the scripts registered on them, and the one place where a Redis
 * failure becomes StoreUnavailableError (fail closed).
 */
export type Reply = string[];

export interface ScriptCommands {
  prsAuthorize(key: string, ...args: (string | number)[]): Promise<Reply>;
  prsFacts(key: string, ...args: (string | number)[]): Promise<Reply>;
  prsCreate(...keysAndArgs: (string | number)[]): Promise<Reply>;
  prsRefresh(k1: string, k2: string, k3: string, ...args: (string | number)[]): Promise<Reply>;
  prsInspect(key: string, ...args: (string | number)[]): Promise<Reply>;
  prsRevokeGrant(key: string, ...args: (string | number)[]): Promise<string[]>;
  prsRevokeToken(key: string, ...args: (string | number)[]): Promise<Reply>;
  prsPurge(key: string, ...args: (string | number)[]): Promise<[number, number, string[]]>;
  prsAuditAppend(key: string, ...args: (string | number)[]): Promise<number>;
  prsSettle(key: string, ...args: (string | number)[]): Promise<number>;
  prsBeat(key: string, ...args: (string | number)[]): Promise<number>;
  prsMembers(key: string): Promise<string[]>;
  prsShout(key: string, ...args: (string | number)[]): Promise<number>;
  prsRateLease(key: string, ...args: (string | number)[]): Promise<[number, number]>;
  prsRateReturn(key: string, ...args: (string | number)[]): Promise<number>;
  prsUsesLease(key: string, ...args: (string | number)[]): Promise<number>;
  prsUsesReturn(key: string, ...args: (string | number)[]): Promise<number>;
  prsSpendLease(key: string, ...args: (string | number)[]): Promise<(string | number)[]>;
}

export type Client = Redis | Cluster;
export type ScriptedRedis = Client & ScriptCommands;

/** Where Redis is: one server, a Cluster (seed nodes), or a master behind Sentinel. */
export type RedisConnection =
  | { readonly kind: "single"; readonly url: string }
  | { readonly kind: "cluster"; readonly urls: readonly string[] }
  | {
      readonly kind: "sentinel";
      readonly sentinels: readonly string[];
      readonly name: string;
      readonly password?: string | undefined;
    };

export interface ConnectionOptions {
  readonly commandTimeoutMs?: number | undefined;
  readonly connectTimeoutMs?: number | undefined;
}

/** Errors Redis answers with while it cannot serve (failover, loading, cluster trouble). */
const TRANSIENT_REPLY = /^(LOADING|READONLY|CLUSTERDOWN|MASTERDOWN|TRYAGAIN|BUSY|NOREPLICAS|MOVED|ASK)\b/;

/**
 * The store's two connections: one for commands and scripts, one subscribed to the rules and node bus channels.
 * ioredis emits 'error' on every failed reconnect; the store reports availability through ping()
 * and StoreUnavailableError instead, so those are expected and not thrown.
 */
export const openClients = (
  connection: RedisConnection,
  options: ConnectionOptions,
  /** Named in CLIENT LIST as `<name>:cmd`, `<name>:sub` and `<name>:rev` (the node's id: which broker is which). */
  name?: string,
  /** Also a connection of its own for revocations (`<name>:rev`), for WAIT to block on alone. */
  withWriter = false,
): { redis: ScriptedRedis; subscriber: Client; writer: ScriptedRedis | undefined } => {
  const redisOptions: RedisOptions = {
    ...(name ? { connectionName: `${name}:cmd` } : {}),
    lazyConnect: true,
    // Fail closed and fast while disconnected: no queue of requests waiting for a Redis
    // that may be gone for minutes; the proxy answers 503 store_unavailable at once.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: options.commandTimeoutMs ?? DEFAULTS.redis.commandTimeoutMs,
    connectTimeout: options.connectTimeoutMs ?? DEFAULTS.redis.connectTimeoutMs,
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 1_000),
    enableAutoPipelining: true,
  };
  const redis = createClient(connection, redisOptions) as ScriptedRedis;
  // Rules arrive on their own connection (a subscribed connection can do nothing else). It
  // waits for Redis instead of failing fast (nothing waits on it), and it subscribes again
  // itself on every `ready` (see RuleCache): ioredis's own re-subscribe is a promise nobody
  // holds, and with maxRetriesPerRequest 0 a connection dropped while it runs rejected it
  // unhandled, which ended the process.
  const subscriber = createClient(connection, {
    ...redisOptions,
    ...(name ? { connectionName: `${name}:sub` } : {}),
    enableAutoPipelining: false,
    enableOfflineQueue: true,
    maxRetriesPerRequest: null,
    autoResubscribe: false,
    commandTimeout: undefined,
  });
  const writer = withWriter
    ? (createClient(connection, {
        ...redisOptions,
        ...(name ? { connectionName: `${name}:rev` } : {}),
        enableAutoPipelining: false,
      }) as ScriptedRedis)
    : undefined;
  for (const client of [redis, subscriber, writer]) client?.on("error", () => {});
  defineScripts(redis);
  if (writer) defineScripts(writer);
  return { redis, subscriber, writer };
};

/** Registers the scripts on a connection (EVALSHA, EVAL on NOSCRIPT). */
const defineScripts = (redis: ScriptedRedis): void => {
  const scripts = {
    prsAuthorize: [1, AUTHORIZE],
    prsFacts: [1, FACTS],
    prsCreate: [undefined, CREATE],
    prsRefresh: [3, REFRESH],
    prsInspect: [1, INSPECT],
    prsRevokeGrant: [1, REVOKE_GRANT],
    prsRevokeToken: [1, REVOKE_TOKEN],
    prsPurge: [1, PURGE],
    prsAuditAppend: [1, AUDIT_APPEND],
    prsSettle: [1, SETTLE],
    prsBeat: [1, BEAT],
    prsMembers: [1, MEMBERS],
    prsShout: [1, SHOUT],
    prsRateLease: [1, RATE_LEASE],
    prsRateReturn: [1, RATE_RETURN],
    prsUsesLease: [1, USES_LEASE],
    prsUsesReturn: [1, USES_RETURN],
    prsSpendLease: [1, SPEND_LEASE],
  } as const;
  for (const [name, [numberOfKeys, lua]] of Object.entries(scripts)) {
    redis.defineCommand(name, numberOfKeys === undefined ? { lua } : { numberOfKeys, lua });
  }
};

/** The servers to SCAN: every master of a Cluster, or the one server. */
export const mastersOf = (redis: Client): Redis[] =>
  redis instanceof Cluster ? redis.nodes("master") : [redis as Redis];

/** Runs a Redis call; anything that stops Redis from answering comes out as StoreUnavailableError. */
export const call = async <T>(fn: () => Promise<T>): Promise<T> => {
  try {
    return await fn();
  } catch (error) {
    throw toStoreError(error);
  }
};

const hostPort = (url: string) => {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || 6379) };
};

/** Credentials and TLS from a redis(s):// URL, for clients built from host/port lists. */
const authOf = (url: string | undefined): Partial<RedisOptions> => {
  if (!url) return {};
  const u = new URL(url);
  return {
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === "rediss:" ? { tls: {} } : {}),
  };
};

const createClient = (connection: RedisConnection, options: RedisOptions): Client => {
  switch (connection.kind) {
    case "single":
      return new Redis(connection.url, options);
    case "cluster": {
      const { lazyConnect, enableOfflineQueue, enableAutoPipelining: _unused, ...redisOptions } = options;
      const clusterOptions: ClusterOptions = {
        lazyConnect,
        enableOfflineQueue,
        // ioredis's auto-pipelining groups commands by node, and its cluster pipelines insist on one
        // slot group: commands of different lineage trees issued in the same tick then fail. Off here.
        enableAutoPipelining: false,
        scaleReads: "master",
        clusterRetryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 1_000),
        redisOptions: { ...redisOptions, ...authOf(connection.urls[0]) },
      };
      return new Cluster(connection.urls.map(hostPort), clusterOptions);
    }
    case "sentinel": {
      const sentinelAuth = authOf(connection.sentinels[0]);
      return new Redis({
        ...options,
        sentinels: connection.sentinels.map(hostPort),
        name: connection.name,
        ...(connection.password ? { password: connection.password } : {}),
        ...(sentinelAuth.password ? { sentinelPassword: sentinelAuth.password } : {}),
        ...(sentinelAuth.username ? { sentinelUsername: sentinelAuth.username } : {}),
      });
    }
  }
};

/**
 * Anything that stops Redis from answering is StoreUnavailableError (→ 503, fail closed). A
 * ReplyError that is not about availability is a bug in a script: it propagates as is (→ 500).
 */
const toStoreError = (error: unknown): Error => {
  if (error instanceof StoreUnavailableError) return error;
  if (error instanceof ReplyError && !TRANSIENT_REPLY.test((error as Error).message)) return error as Error;
  return new StoreUnavailableError("store unavailable", { cause: error });
};

/**
 * Runs the steps of connecting with one deadline for all: rejects with StoreUnavailableError
 * when it passes, or when a step fails for any other reason.
 */
export const connectWithin = async (
  timeoutMs: number,
  steps: (within: <T>(p: Promise<T>) => Promise<T>) => Promise<void>,
): Promise<void> => {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new StoreUnavailableError(`Redis did not answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    timer.unref();
  });
  const within = <T>(p: Promise<T>) => Promise.race([p, deadline]);
  try {
    await steps(within);
  } catch (error) {
    throw error instanceof StoreUnavailableError
      ? error
      : new StoreUnavailableError("cannot connect to Redis", { cause: error });
  } finally {
    clearTimeout(timer);
  }
};

export interface RedisStoreOptions {
  /** One server, as a URL (shorthand for `connection: { kind: "single", url }`). */
  readonly url?: string;
  readonly connection?: RedisConnection;
  readonly prefix: string;
  readonly auditMaxLen: number;
  /** Per-command timeout: a hung Redis fails closed instead of hanging requests. */
  readonly commandTimeoutMs?: number;
  /** How long `connect()` waits for Redis before giving up. */
  readonly connectTimeoutMs?: number;
  /** How often rules are reloaded even without a pub/sub message (safety net). */
  readonly rulesReloadMs?: number;
  /** `store.node_lease`: how long a node that stops hearing the others still counts as a member. */
  readonly nodeLeaseMs?: number;
  /** `store.node_local` (default true): serve what can be served from node-local state (local-authority.ts). */
  readonly nodeLocal?: boolean;
  /** `store.wait_replicas`: replicas a revocation must reach before its call answers (durable.ts). */
  readonly waitReplicas?: number;
  readonly waitTimeoutMs?: number;
}
