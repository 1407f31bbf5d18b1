import { type RedisCluster, startRedisCluster, startRedisServer } from "@perishable/test-support";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestBroker, type TestBroker } from "./support/broker.js";
import { revokeUnderLoad } from "./support/consistency-suite.js";

/** Three broker nodes on one store (the first on `target`, the others its peers). */
const threeNodes = async (first: Parameters<typeof startTestBroker>[0]): Promise<TestBroker[]> => {
  const a = await startTestBroker(first);
  return [a, await startTestBroker({ peerOf: a }), await startTestBroker({ peerOf: a })];
};

const closeAll = async (nodes: readonly TestBroker[]) => {
  for (const node of [...nodes].reverse()) await node[Symbol.asyncDispose]();
};

/** Runs `step` every `everyMs` until `stop()` says so. */
const repeat = (everyMs: number, step: () => Promise<unknown>) => {
  let on = true;
  const done = (async () => {
    while (on) {
      await step().catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return {
    stop: async () => {
      on = false;
      await done;
    },
  };
};

describe("the revocation guarantee under load: nothing revoked is let through once the call answered", () => {
  it("on one Redis, three nodes, every way of revoking", async () => {
    await using redis = await startRedisServer();
    const nodes = await threeNodes({ redisUrl: redis.url });
    try {
      const run = await revokeUnderLoad(nodes);
      expect(run.allowed).toBeGreaterThan(100);
    } finally {
      await closeAll(nodes);
    }
  });

  it("while the nodes' pub/sub connections are killed again and again", async () => {
    await using redis = await startRedisServer();
    const nodes = await threeNodes({ redisUrl: redis.url });
    const probe = new Redis(redis.url);
    let fault: { stop(): Promise<void> } | undefined;
    try {
      const run = await revokeUnderLoad(nodes, {
        fault: async () => {
          fault = repeat(150, () => probe.client("KILL", "TYPE", "pubsub"));
        },
      });
      expect(run.checked).toBeGreaterThan(0);
    } finally {
      await fault?.stop();
      probe.disconnect();
      await closeAll(nodes);
    }
  });

  it("while Redis is paused now and then (CLIENT PAUSE)", async () => {
    await using redis = await startRedisServer();
    const nodes = await threeNodes({ redisUrl: redis.url });
    const probe = new Redis(redis.url);
    let fault: { stop(): Promise<void> } | undefined;
    try {
      await revokeUnderLoad(nodes, {
        fault: async () => {
          fault = repeat(400, () => probe.client("PAUSE", "150", "ALL"));
        },
      });
    } finally {
      await fault?.stop();
      probe.disconnect();
      await closeAll(nodes);
    }
  });

  describe("on a Redis Cluster of 3 masters", () => {
    let cluster: RedisCluster;
    beforeAll(async () => {
      cluster = await startRedisCluster(3);
    }, 60_000);
    afterAll(async () => {
      await cluster?.stop();
    });

    it("three nodes, every way of revoking", async () => {
      const nodes = await threeNodes({ redisCluster: cluster.urls });
      try {
        await revokeUnderLoad(nodes, { victims: 15 });
      } finally {
        await closeAll(nodes);
      }
    });
  });
});
