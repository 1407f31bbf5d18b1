import "./provided.js";

export { type IsolatedRedis, isolatedRedis } from "./isolated.js";
export {
  type FoundRedis,
  findRedis,
  freePort,
  pingRedis,
  type RedisServer,
  startRedisServer,
} from "./redis.js";
