import { randomBytes } from "node:crypto";
import { Cluster, Redis } from "ioredis";

export interface IsolatedRedis {
  /** A key prefix no other test uses. */
  readonly prefix: string;
  /** A client for looking at what a test stored (a Cluster client for a cluster). */
  readonly client: Redis | Cluster;
  /** Every key under the prefix (SCAN on every master, never KEYS). */
  keys(): Promise<string[]>;
  /** Deletes the prefix's keys and closes the client. */
  readonly [Symbol.asyncDispose]: () => Promise<void>;
}

/**
 * A test's own corner of a shared Redis (one server, or a Cluster given as a list of node URLs):
 * isolation by key prefix, never by flushing.
 */
export const isolatedRedis = async (url: string | readonly string[], label = "t"): Promise<IsolatedRedis> => {
  const prefix = `test-${label}-${randomBytes(4).toString("hex")}`;
  const client =
    typeof url === "string"
      ? new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
      : new Cluster(
          url.map((u) => ({ host: new URL(u).hostname, port: Number(new URL(u).port) })),
          { lazyConnect: true },
        );
  // Fault tests stop the server under this client: its reconnect errors are expected.
  client.on("error", () => {});
  await client.connect();
  const masters = () => (client instanceof Cluster ? client.nodes("master") : [client]);
  const keys = async () => {
    const found: string[] = [];
    for (const node of masters()) {
      let cursor = "0";
      do {
        const [next, batch] = await node.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
        found.push(...batch);
        cursor = next;
      } while (cursor !== "0");
    }
    return found;
  };
  return {
    prefix,
    client,
    keys,
    [Symbol.asyncDispose]: async () => {
      // One key per command: on a Cluster the keys live in different slots.
      await Promise.all((await keys()).map((key) => client.unlink(key)));
      client.disconnect();
    },
  };
};
