import { once } from "node:events";
import { request } from "node:http";
import type { SelfResponse, TokenResponse } from "@perishable/protocol";
import { startRedisSentinel, startRedisServer } from "@perishable/test-support";
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { SECRETS, startTestBroker } from "./support/broker.js";
import { startProcessBroker } from "./support/process-broker.js";

const codeOf = async (response: Response) =>
  response.status === 200 ? "ok" : ((await response.json()) as { error: { code: string } }).error.code;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** A private redis-server that keeps its data across a restart (append-only file in a temp dir). */
const durableRedis = () => startRedisServer({ durable: true });

describe("Redis goes away mid-traffic", () => {
  it("fails closed with 503 store_unavailable, never a 500, and recovers by itself when Redis is back", async () => {
    await using redis = await durableRedis();
    await using t = await startTestBroker({ redisUrl: redis.url });
    const { token } = await t.issue({ scopes: ["models:read"], ttl: 600 });
    const outcomes: string[] = [];
    let running = true;
    const traffic = (async () => {
      while (running) {
        outcomes.push(await codeOf(await t.call("/proxy/openai/v1/models", token)));
        await sleep(5);
      }
    })();
    await sleep(200);
    await redis.stop();
    await sleep(500);
    const issued = await t.call("/v1/tokens", SECRETS.issuer, {
      method: "POST",
      body: '{"scopes":["models:read"]}',
    });
    expect(issued.status).toBe(503);
    expect(await codeOf(issued)).toBe("store_unavailable");
    expect((await fetch(`${t.url}/readyz`)).status).toBe(503);
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
    const duringOutage = outcomes.length;
    await redis.start();
    const restarted = Date.now();
    while ((await codeOf(await t.call("/proxy/openai/v1/models", token))) !== "ok") {
      expect(Date.now() - restarted, "the broker did not recover").toBeLessThan(10_000);
      await sleep(50);
    }
    await sleep(100);
    running = false;
    await traffic;
    expect(new Set(outcomes)).toEqual(new Set(["ok", "store_unavailable"]));
    expect(outcomes.slice(0, 5)).toEqual(["ok", "ok", "ok", "ok", "ok"]);
    expect(outcomes.slice(duringOutage - 5, duringOutage)).toEqual(Array(5).fill("store_unavailable"));
    expect(outcomes.at(-1)).toBe("ok");
    expect((await fetch(`${t.url}/readyz`)).status).toBe(200);
  });

  it("answers 503 within the command timeout when Redis hangs, and recovers when it wakes", async () => {
    await using redis = await startRedisServer();
    await using t = await startTestBroker({ redisUrl: redis.url });
    const { token } = await t.issue({ scopes: ["models:read"] });
    redis.pause();
    try {
      const started = Date.now();
      expect(await codeOf(await t.call("/proxy/openai/v1/models", token))).toBe("store_unavailable");
      expect(Date.now() - started).toBeLessThan(4_000);
    } finally {
      redis.resume();
    }
    const woke = Date.now();
    while ((await codeOf(await t.call("/proxy/openai/v1/models", token))) !== "ok") {
      expect(Date.now() - woke).toBeLessThan(10_000);
      await sleep(50);
    }
  });
});

describe("upstream faults", () => {
  it("turns a malformed answer into upstream_error and a truncated stream into a cut connection, without leaking", async () => {
    await using t = await startTestBroker({
      configure: (doc) => {
        doc.scopes!.faulty = {
          upstream: "slow",
          endpoints: ["/v1/malformed", "/v1/truncated", "/v1/reset"],
          methods: ["GET"],
        };
        (doc.issuers![0]!.scopes as string[]).push("faulty");
      },
    });
    const { token } = await t.issue({ scopes: ["faulty", "models:read"] });
    const malformed = await t.call("/proxy/slow/v1/malformed", token);
    expect(malformed.status).toBe(502);
    expect(await codeOf(malformed)).toBe("upstream_error");
    const truncated = await t.call("/proxy/slow/v1/truncated", token);
    expect(truncated.status).toBe(200);
    await expect(truncated.text()).rejects.toThrow();

    const handles = () =>
      (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;
    const baseline = handles();
    const heap = process.memoryUsage().heapUsed;
    for (let i = 0; i < 150; i++) {
      const path = ["/v1/malformed", "/v1/truncated", "/v1/reset"][i % 3]!;
      const response = await t.call(`/proxy/slow${path}`, token);
      await response.arrayBuffer().catch(() => {});
    }
    await sleep(500);
    expect(handles()).toBeLessThanOrEqual(baseline + 10);
    expect(process.memoryUsage().heapUsed - heap).toBeLessThan(64 * 1024 * 1024);
    expect((await t.call("/proxy/openai/v1/models", token)).status).toBe(200);
  });
});

describe("the broker process", () => {
  it("on SIGTERM finishes its streams, refuses new connections and exits 0", async () => {
    await using redis = await startRedisServer();
    await using a = await startTestBroker({ redisUrl: redis.url, mock: { chunks: 10, chunkDelayMs: 100 } });
    await using b = await startProcessBroker(a.configDocument);
    const { token } = await a.issue({ scopes: ["llm:complete"] });
    const response = await fetch(`${b.url}/proxy/openai/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt-4o-mini", stream: true, messages: [] }),
    });
    const reader = response.body!.getReader();
    await reader.read();
    const exited = once(b.process, "exit");
    b.process.kill("SIGTERM");
    await sleep(200);
    const refused = request({
      host: "127.0.0.1",
      port: new URL(b.url).port,
      path: "/healthz",
      agent: false,
    }).end();
    const [error] = (await once(refused, "error")) as [NodeJS.ErrnoException];
    expect(error.code).toBe("ECONNREFUSED");
    let rest = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(rest).toContain("chunk 9");
    expect(rest).toContain("[DONE]");
    const [code] = (await exited) as [number | null];
    expect(code).toBe(0);
  });

  it("keeps tokens and grants across a restart, with Redis up", async () => {
    await using redis = await startRedisServer();
    await using a = await startTestBroker({ redisUrl: redis.url });
    const first = await startProcessBroker(a.configDocument);
    const issued = (await (
      await fetch(`${first.url}/v1/tokens`, {
        method: "POST",
        headers: { authorization: `Bearer ${SECRETS.issuer}`, "content-type": "application/json" },
        body: JSON.stringify({ scopes: ["models:read"], agent: "survivor" }),
      })
    ).json()) as TokenResponse;
    await first[Symbol.asyncDispose]();
    await using second = await startProcessBroker(a.configDocument);
    const self = (await (
      await fetch(`${second.url}/v1/tokens/self`, { headers: { authorization: `Bearer ${issued.token}` } })
    ).json()) as SelfResponse;
    expect(self.grant).toMatchObject({ grantId: issued.grantId, agent: "survivor" });
    expect(
      (
        await fetch(`${second.url}/proxy/openai/v1/models`, {
          headers: { authorization: `Bearer ${issued.token}` },
        })
      ).status,
    ).toBe(200);
  });
});

describe("Redis behind Sentinel", () => {
  it("finds the master through Sentinel and serves from it", async () => {
    await using master = await startRedisServer();
    await using sentinel = await startRedisSentinel(master.port);
    await using t = await startTestBroker({
      configure: (doc) => {
        doc.store = {
          sentinel: { nodes: [sentinel.url], name: sentinel.masterName },
          prefix: "sentinel-test",
        };
      },
    });
    const { token } = await t.issue({ scopes: ["models:read"] });
    expect((await t.call("/proxy/openai/v1/models", token)).status).toBe(200);
    expect(t.logs()).toContain(`redis sentinel ${sentinel.masterName} via`);
  });
});

describe("revocations a failover cannot lose (store.wait_replicas)", () => {
  it("answers once the replica holds the revocation, and 503 while it cannot: the revocation in force on every node", async () => {
    await using master = await startRedisServer();
    await using replica = await startRedisServer({ args: ["--replicaof", "127.0.0.1", String(master.port)] });
    await using sentinel = await startRedisSentinel(master.port);
    const probe = new Redis(replica.url);
    await expect
      .poll(async () => /master_link_status:up/.test(await probe.info("replication")), { timeout: 15_000 })
      .toBe(true);
    probe.disconnect();
    // wait_replicas is left to its default behind Sentinel: 1.
    await using a = await startTestBroker({
      cutoffMarginMs: 20,
      configure: (doc) => {
        doc.store = {
          sentinel: { nodes: [sentinel.url], name: sentinel.masterName },
          prefix: "durable",
          wait_timeout: 0.3,
        };
      },
    });
    await using b = await startTestBroker({ peerOf: a });
    const models = (node: typeof a, token: string) => node.call("/proxy/openai/v1/models", token);
    const kept = await a.issue({ scopes: ["models:read"] });
    const first = await a.issue({ scopes: ["models:read"] });
    const second = await a.issue({ scopes: ["models:read"] });
    for (const node of [a, b])
      for (const t of [kept, first, second]) expect((await models(node, t.token)).status).toBe(200);

    const revoked = await a.admin(`/v1/grants/${first.grantId}`, { method: "DELETE" });
    expect(revoked.status).toBe(200);

    // The replica stops acknowledging: the revocation is written and every node told, but the call says it is not safe yet.
    replica.pause();
    try {
      const unconfirmed = await b.admin(`/v1/grants/${second.grantId}`, { method: "DELETE" });
      expect(unconfirmed.status).toBe(503);
      const body = (await unconfirmed.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("store_unavailable");
      expect(body.error.message).toContain("0 of 1 replicas confirmed it within 300 ms");
      // Asked again on the other node, which wrote none of it, or by the token itself: still not
      // confirmed — "already revoked" is no answer while the replica lacks the revocation.
      expect((await a.admin(`/v1/grants/${second.grantId}`, { method: "DELETE" })).status).toBe(503);
      expect((await a.call("/v1/tokens/self", second.token, { method: "DELETE" })).status).toBe(503);
      for (const node of [a, b]) {
        expect(await codeOf(await models(node, second.token))).toBe("token_revoked");
        expect((await models(node, kept.token)).status).toBe(200);
      }
    } finally {
      replica.resume();
    }
    // Asked again once the replica is back: answered, by the admin and by the token itself.
    expect((await b.admin(`/v1/grants/${second.grantId}`, { method: "DELETE" })).status).toBe(200);
    const self = await a.call("/v1/tokens/self", second.token, { method: "DELETE" });
    expect(await self.json()).toEqual({ revoked: 0, connections: 0 });
    for (const node of [a, b]) expect(await codeOf(await models(node, first.token))).toBe("token_revoked");

    // A selector while the replica is away: 503, the selected refused at once, and its rule still
    // closed after the walk, so the agent's new tokens work once it is back.
    const agent = await a.issue({ scopes: ["models:read"], agent: "unreplicated-agent" });
    replica.pause();
    try {
      const bulk = await a.admin("/v1/revocations", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ agent: "unreplicated-agent" }),
      });
      expect(bulk.status).toBe(503);
      for (const node of [a, b]) expect(await codeOf(await models(node, agent.token))).toBe("token_revoked");
    } finally {
      replica.resume();
    }
    await sleep(100); // past the rule's cutoff margin
    const later = await a.issue({ scopes: ["models:read"], agent: "unreplicated-agent" });
    for (const node of [a, b]) expect((await models(node, later.token)).status).toBe(200);
  });
});
