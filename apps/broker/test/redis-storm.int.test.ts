import { startRedisServer } from "@perishable/test-support";
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { SECRETS, startTestBroker } from "./support/broker.js";
import { startProcessBroker } from "./support/process-broker.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const codeOf = async (response: Response) =>
  response.status === 200 ? "ok" : ((await response.json()) as { error: { code: string } }).error.code;

describe("a storm of Redis connection kills", () => {
  it("never ends the process: it degrades to 503, recovers, and still refuses what was revoked", async () => {
    await using redis = await startRedisServer();
    await using a = await startTestBroker({ redisUrl: redis.url });
    // The node under test is a real process, so an exit (an unhandled rejection) is seen as one.
    await using b = await startProcessBroker(a.configDocument);
    const killer = new Redis(redis.url, { maxRetriesPerRequest: null });
    const call = (url: string, token: string) =>
      fetch(`${url}/proxy/openai/v1/models`, { headers: { authorization: `Bearer ${token}` } });
    const { token: steady } = await a.issue({ scopes: ["models:read"], ttl: 600 });

    const outcomes = new Set<string>();
    const accepted: string[] = [];
    let storming = true;
    const traffic = (async () => {
      while (storming) {
        outcomes.add(await call(b.url, steady).then(codeOf, () => "connection refused"));
        await sleep(2);
      }
    })();
    // Revocations while the storm goes on: each revoked token must never be accepted again.
    const revocations = (async () => {
      while (storming) {
        const issued = await a.call("/v1/tokens", SECRETS.issuer, {
          method: "POST",
          body: JSON.stringify({ scopes: ["models:read"], agent: "storm" }),
        });
        if (issued.status !== 201) {
          await sleep(20);
          continue;
        }
        const { token } = (await issued.json()) as { token: string };
        const revoked = await a.call("/v1/tokens/self", token, { method: "DELETE" });
        if (revoked.status !== 200) continue;
        if ((await codeOf(await call(b.url, token))) === "ok") accepted.push(token);
      }
    })();
    // pub/sub connections (the rules channel) and ordinary ones, killed over and over.
    // Tight bursts catch a connection between its reconnect and its re-subscribe.
    for (let i = 0; i < 400; i++) {
      await killer.client("KILL", "TYPE", i % 25 === 24 ? "normal" : "pubsub").catch(() => 0);
      await sleep(i % 50 < 40 ? 1 : 25);
    }
    storming = false;
    await Promise.all([traffic, revocations]);

    expect(b.process.exitCode, b.output()).toBeNull();
    expect([...outcomes].filter((c) => c !== "ok" && c !== "store_unavailable")).toEqual([]);
    expect(accepted.length, "revoked tokens accepted after the revoking call answered").toBe(0);
    // The same process serves again by itself, and a revocation answered by the other node holds.
    const deadline = Date.now() + 10_000;
    while ((await codeOf(await call(b.url, steady))) !== "ok") {
      expect(Date.now() < deadline, "the node did not recover").toBe(true);
      await sleep(50);
    }
    // The other node (in this process) reconnects by itself too; wait for it before using it.
    while ((await fetch(`${a.url}/readyz`)).status !== 200) {
      expect(Date.now() < deadline, "the other node did not recover").toBe(true);
      await sleep(50);
    }
    const { token: last } = await a.issue({ scopes: ["models:read"] });
    expect(await codeOf(await call(b.url, last))).toBe("ok");
    expect((await a.call("/v1/tokens/self", last, { method: "DELETE" })).status).toBe(200);
    expect(await codeOf(await call(b.url, last))).toBe("token_revoked");
    expect(b.output()).not.toContain("MaxRetriesPerRequestError");
    expect(b.output()).not.toContain("unhandled promise rejection");
    killer.disconnect();
  });
});
