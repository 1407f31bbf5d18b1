import { execFile } from "node:child_process";
import {
  type RedisCluster,
  startRedisCluster,
  startRedisSentinel,
  startRedisServer,
} from "@perishable/test-support";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestBroker, type TestBroker } from "./support/broker.js";
import { revokeUnderLoad } from "./support/consistency-suite.js";
import { startProcessBroker } from "./support/process-broker.js";

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

  it("behind Sentinel, while the master fails over to its replica", async () => {
    await using first = await startRedisServer();
    // Two replicas: after the failover one is left to confirm revocations while the old master
    // rejoins as a replica (it needs a full sync first).
    await using second = await startRedisServer({ args: ["--replicaof", "127.0.0.1", String(first.port)] });
    await using third = await startRedisServer({ args: ["--replicaof", "127.0.0.1", String(first.port)] });
    await using sentinel = await startRedisSentinel(first.port);
    const watch = new Redis(sentinel.url);
    const replicas = [second, third].map((s) => new Redis(s.url));
    const master = async () =>
      ((await watch.call("SENTINEL", "get-master-addr-by-name", sentinel.masterName)) as string[])[1]!;
    // A failover promotes the replica: it must hold the master's data first (a full sync at start).
    for (const replica of replicas)
      await expect
        .poll(async () => /master_link_status:up/.test(await replica.info("replication")), {
          timeout: 15_000,
        })
        .toBe(true);
    await expect
      .poll(
        async () => ((await watch.call("SENTINEL", "replicas", sentinel.masterName)) as unknown[]).length,
        {
          timeout: 15_000,
        },
      )
      .toBe(2);
    // A revocation is on both replicas before its call answers, so whichever is promoted holds it.
    const nodes = await threeNodes({
      configure: (doc) => {
        doc.store = {
          sentinel: { nodes: [sentinel.url], name: sentinel.masterName },
          prefix: "failover",
          wait_replicas: 2,
        };
      },
    });
    const moved: string[] = [];
    try {
      const run = await revokeUnderLoad(nodes, {
        fault: async () => {
          await new Promise((resolve) => setTimeout(resolve, 300));
          await watch.call("SENTINEL", "FAILOVER", sentinel.masterName);
          await expect.poll(master, { timeout: 15_000, interval: 50 }).not.toBe(String(first.port));
          moved.push(await master());
        },
      });
      // The run went on after the failover, and revocations were answered on the new master.
      expect(moved).toHaveLength(1);
      expect(run.checked).toBeGreaterThan(0);
    } finally {
      watch.disconnect();
      for (const replica of replicas) replica.disconnect();
      await closeAll(nodes);
    }
  }, 60_000);

  it("keeps a rate limit exact across three nodes: 200 requests at once, exactly the limit upstream", async () => {
    await using redis = await startRedisServer();
    const nodes = await threeNodes({
      redisUrl: redis.url,
      configure: (doc) => {
        doc.scopes["models:limited"] = {
          upstream: "openai",
          endpoints: ["/v1/models/*"],
          methods: ["GET"],
          rate_limit: "50/minute",
        };
        (doc.issuers![0] as { scopes: string[] }).scopes.push("models:limited");
      },
    });
    try {
      const root = await nodes[0]!.issue({ scopes: ["models:limited"] });
      const child = (await (
        await nodes[1]!.call("/v1/tokens", root.token, {
          method: "POST",
          body: JSON.stringify({ scopes: ["models:limited"] }),
        })
      ).json()) as { token: string };
      const upstream = () =>
        nodes[0]!.mock.requests.filter((r) => r.url.startsWith("/v1/models/limited")).length;
      // A first wave warms every node (each learns the tokens and leases slices), then a second, concurrent one.
      const statuses: number[] = [];
      for (const wave of [30, 200]) {
        const calls = Array.from({ length: wave }, (_, i) =>
          nodes[i % 3]!.call(`/proxy/openai/v1/models/limited-${i}`, i % 2 ? root.token : child.token).then(
            async (r) => {
              await r.arrayBuffer();
              return r.status;
            },
          ),
        );
        statuses.push(...(await Promise.all(calls)));
      }
      expect(statuses.filter((s) => s === 200)).toHaveLength(50);
      expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
      expect(upstream()).toBe(50);
    } finally {
      await closeAll(nodes);
    }
  });

  it("keeps maxUses exact across three nodes from leased uses: 200 requests at once, never past it", async () => {
    await using redis = await startRedisServer();
    const nodes = await threeNodes({ redisUrl: redis.url });
    try {
      const root = await nodes[0]!.issue({ scopes: ["models:read"], maxUses: 150 });
      const child = (await (
        await nodes[1]!.call("/v1/tokens", root.token, {
          method: "POST",
          body: JSON.stringify({ scopes: ["models:read"], maxUses: 90 }),
        })
      ).json()) as { token: string };
      const upstream = () => nodes[0]!.mock.requests.filter((r) => r.url.startsWith("/v1/models/")).length;
      const statuses = { root: [] as number[], child: [] as number[] };
      const wave = async (size: number) => {
        const calls = Array.from({ length: size }, async (_, i) => {
          const whose = i % 2 ? "root" : "child";
          const r = await nodes[i % 3]!.call(
            `/proxy/openai/v1/models/used-${i}`,
            whose === "root" ? root.token : child.token,
          );
          await r.arrayBuffer();
          statuses[whose].push(r.status);
        });
        await Promise.all(calls);
      };
      const allowed = () => [...statuses.root, ...statuses.child].filter((s) => s === 200).length;
      // A first wave warms every node (each learns the tokens and leases uses), then 200 at once.
      await wave(30);
      await wave(200);
      expect(allowed()).toBeLessThanOrEqual(150);
      expect(statuses.child.filter((s) => s === 200).length).toBeLessThanOrEqual(90);
      // Uses a node held and did not spend go back after a second unused: then exactly the limit.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      await wave(60);
      expect(allowed()).toBe(150);
      expect(statuses.child.filter((s) => s === 200).length).toBeLessThanOrEqual(90);
      expect([...statuses.root, ...statuses.child].filter((s) => s !== 200 && s !== 403)).toEqual([]);
      expect(upstream()).toBe(150);
      const view = (await (await nodes[2]!.call("/v1/tokens/self", root.token)).json()) as {
        usesLeft: number;
      };
      expect(view.usesLeft).toBe(0);
    } finally {
      await closeAll(nodes);
    }
  });

  it("answers a revocation at most a lease after a node was SIGKILLed, and the survivors refuse", async () => {
    await using redis = await startRedisServer();
    await using a = await startTestBroker({ redisUrl: redis.url });
    await using b = await startProcessBroker(a.configDocument);
    const models = (url: string, token: string) =>
      fetch(`${url}/proxy/openai/v1/models`, { headers: { authorization: `Bearer ${token}` } });
    const first = await a.issue({ scopes: ["models:read"] });
    const second = await a.issue({ scopes: ["models:read"] });
    for (const url of [a.url, b.url])
      for (const t of [first, second]) expect((await models(url, t.token)).status).toBe(200);
    b.process.kill("SIGKILL");
    const started = performance.now();
    const revoked = await a.admin(`/v1/grants/${first.grantId}`, { method: "DELETE" });
    const took = performance.now() - started;
    expect(revoked.status).toBe(200);
    // It waited for the dead node's lease (store.node_lease, 1 s), not longer.
    expect(took).toBeLessThan(1_600);
    expect((await models(a.url, first.token)).status).toBe(401);
    // The dead node has left the member set: the next revocation does not wait for it.
    const again = performance.now();
    await a.admin(`/v1/grants/${second.grantId}`, { method: "DELETE" });
    expect(performance.now() - again).toBeLessThan(500);
    expect((await models(a.url, second.token)).status).toBe(401);
  });

  it("forgets what it served itself when Redis restarts empty: tokens Redis lost are refused", async () => {
    await using redis = await startRedisServer();
    await using t = await startTestBroker({ redisUrl: redis.url });
    const { token } = await t.issue({ scopes: ["models:read"] });
    for (let i = 0; i < 3; i++) expect((await t.call("/proxy/openai/v1/models", token)).status).toBe(200);
    await redis.stop();
    await redis.start(); // no persistence: every grant and token is gone
    await expect
      .poll(async () => (await t.call("/proxy/openai/v1/models", token)).status, { timeout: 10_000 })
      .toBe(401);
    const body = (await (await t.call("/proxy/openai/v1/models", token)).json()) as {
      error: { code: string };
    };
    expect(body.error.code).toBe("token_invalid");
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
    it("three nodes, every way of revoking, while slots move from one master to another", async () => {
      const nodes = await threeNodes({ redisCluster: cluster.urls });
      const [from, to] = cluster.urls.map((u) => new URL(u).port);
      const cli = (...args: string[]) =>
        new Promise<string>((resolve, reject) =>
          execFile("redis-cli", args, { timeout: 60_000 }, (error, out, err) =>
            error ? reject(new Error(err)) : resolve(out),
          ),
        );
      const id = async (port: string) => (await cli("-p", port, "cluster", "myid")).trim();
      try {
        const [fromId, toId] = [await id(from!), await id(to!)];
        // Resharding under traffic and revocations: keys of live lineages move while they are used.
        const reshard = () =>
          cli(
            "--cluster",
            "reshard",
            `127.0.0.1:${from}`,
            "--cluster-from",
            fromId,
            "--cluster-to",
            toId,
            "--cluster-slots",
            "2000",
            "--cluster-yes",
          ).then(() => undefined);
        const slotsOf = async (nodeId: string) => {
          const line = (await cli("-p", from!, "cluster", "nodes"))
            .split("\n")
            .find((l) => l.startsWith(nodeId))!;
          return line
            .split(" ")
            .slice(8)
            .reduce((n, range) => {
              const [lo, hi] = range.split("-").map(Number);
              return n + (hi === undefined ? 1 : hi - lo! + 1);
            }, 0);
        };
        const before = await slotsOf(toId);
        const result = await revokeUnderLoad(nodes, { victims: 15, fault: reshard });
        expect(result.checked).toBeGreaterThan(0);
        expect(await slotsOf(toId)).toBe(before + 2000);
      } finally {
        await closeAll(nodes);
      }
    }, 120_000);
  });
});
