import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";

export interface IsolatedRedis {
  /** A key prefix no other test uses. */
  readonly prefix: string;
  /** A client for looking at what a test stored. */
  readonly client: Redis;
  /** Every key under the prefix (SCAN, never KEYS). */
  keys(): Promise<string[]>;
  /** Deletes the prefix's keys and closes the client. */
  readonly [Symbol.asyncDispose]: () => Promise<void>;
}

/** A test's own corner of a shared Redis: isolation by key prefix, never by flushing. */
export const isolatedRedis = async (url: string, label = "t"): Promise<IsolatedRedis> => {
  const prefix = `test-${label}-${randomBytes(4).toString("hex")}`;
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await client.connect();
  const keys = async () => {
    const found: string[] = [];
    let cursor = "0";
    do {
      const [next, batch] = await client.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      found.push(...batch);
      cursor = next;
    } while (cursor !== "0");
    return found;
  };
  return {
    prefix,
    client,
    keys,
    [Symbol.asyncDispose]: async () => {
      const found = await keys();
      for (let i = 0; i < found.length; i += 500) await client.unlink(...found.slice(i, i + 500));
      client.disconnect();
    },
  };
};
