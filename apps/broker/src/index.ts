export { type RunningBroker, type StartOptions, startBroker } from "./broker.js";
export { buildCli, main } from "./cli/main.js";
export {
  ConfigError,
  type ConfigProblem,
  loadConfigFile,
  parseConfig,
  validateConfig,
} from "./config/load.js";
export type { ConfigInput } from "./config/schema.js";
export { Secret } from "./config/secret.js";
export type { BrokerConfig, IssuerConfig, ScopeConfig, UpstreamConfig } from "./config/types.js";
export { type DevBroker, type DevBrokerOptions, startDevBroker } from "./dev/dev-broker.js";
export { devConfig } from "./dev/dev-config.js";
export {
  type MockUpstream,
  type MockUpstreamOptions,
  type RecordedRequest,
  startMockUpstream,
} from "./dev/mock-upstream.js";
export { BrokerError } from "./errors.js";
export { type BrokerServer, type BuildServerOptions, buildServer } from "./server.js";
export { RedisKeys } from "./store/keys.js";
export { MemoryStore } from "./store/memory/memory-store.js";
export { openStore } from "./store/open.js";
export { RedisStore } from "./store/redis/redis-store.js";
export type { Store } from "./store/types.js";
export { StoreUnavailableError } from "./store/types.js";
