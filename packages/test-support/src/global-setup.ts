import type { TestProject } from "vitest/node";
import "./provided.js";
import { findRedis } from "./redis.js";

/** Finds (or starts) the Redis every integration test of the project shares, once per run. */
export const setup = async (project: TestProject) => {
  const redis = await findRedis();
  project.provide("redisUrl", redis.url);
  process.stdout.write(`[test-support] integration tests use Redis from ${redis.source}\n`);
  return () => redis.stop();
};
