import { isolatedRedis } from "@perishable/test-support";
import { Redis } from "ioredis";
import { afterAll, beforeAll, inject } from "vitest";

/** A Lua script called with one key, as `defineCommand` makes it a method. */
type Script = (key: string, ...args: (string | number)[]) => Promise<unknown>;

/**
 * For a test file that drives the store's Lua scripts directly: a connection to the test Redis
 * with `scripts` defined as commands (each with one key), and an isolated key prefix. Opened
 * before the file's tests and closed, its keys cleared, after them; read `redis` and `prefix`
 * inside a test.
 */
export const scriptedRedis = <C extends Record<string, Script>>(
  label: string,
  scripts: { readonly [K in keyof C]: string },
): { readonly redis: Redis & C; readonly prefix: string } => {
  const held: { redis?: Redis & C; prefix?: string } = {};
  let dispose: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    const isolated = await isolatedRedis(inject("redisUrl"), label);
    held.prefix = isolated.prefix;
    dispose = () => isolated[Symbol.asyncDispose]();
    const redis = new Redis(inject("redisUrl"));
    for (const [name, lua] of Object.entries<string>(scripts))
      redis.defineCommand(name, { numberOfKeys: 1, lua });
    held.redis = redis as Redis & C;
  });
  afterAll(async () => {
    held.redis?.disconnect();
    await dispose?.();
  });
  return {
    get redis() {
      if (!held.redis) throw new Error("scriptedRedis: read it inside a test");
      return held.redis;
    },
    get prefix() {
      if (held.prefix === undefined) throw new Error("scriptedRedis: read it inside a test");
      return held.prefix;
    },
  };
};
