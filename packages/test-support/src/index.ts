import "./provided.js";

export { type IsolatedRedis, isolatedRedis } from "./isolated.js";
export { type McpSeen, startMcpServer, type TestMcpServer } from "./mcp-server.js";
export { type Seen, seenCommand } from "./monitor.js";
export { type OidcProvider, type SignOptions, startOidcProvider } from "./oidc-provider.js";
export { withRealtime } from "./realtime.js";
export {
  type FoundRedis,
  findRedis,
  freePort,
  pingRedis,
  type RedisServer,
  startRedisServer,
} from "./redis.js";
export { type RedisCluster, startRedisCluster } from "./redis-cluster.js";
export { type RedisSentinel, startRedisSentinel } from "./redis-sentinel.js";
