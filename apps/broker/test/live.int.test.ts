import type { GrantDetail } from "@perishable/protocol";
import { startRedisServer } from "@perishable/test-support";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startTestBroker, type TestBroker } from "./support/broker.js";
import { HoldAll } from "./support/gate.js";

const STREAM = JSON.stringify({
  model: "gpt-4o-mini",
  stream: true,
  messages: [{ role: "user", content: "hi" }],
});

/** Opens a held SSE stream; resolves to its whole text (as the client saw it) and when it ended. */
const openStream = async (t: TestBroker, token: string) => {
  const response = await t.call("/proxy/openai/v1/chat/completions", token, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: STREAM,
  });
  expect(response.status).toBe(200);
  const reader = response.body!.getReader();
  const first = await reader.read(); // the first chunk: the stream is live
  let text = Buffer.from(first.value ?? []).toString("utf8");
  const ended = (async () => {
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) return { text, at: performance.now() };
      text += Buffer.from(value).toString("utf8");
    }
  })();
  return { ended };
};

describe("revocation cuts what is live, on every node", () => {
  const hold = new HoldAll();
  let a: TestBroker;
  let b: TestBroker;
  beforeAll(async () => {
    a = await startTestBroker({
      redisUrl: inject("redisUrl"),
      mock: { streamGate: hold.wait },
      cutoffMarginMs: 50,
    });
    b = await startTestBroker({ peerOf: a });
  });
  afterAll(async () => {
    hold.release();
    await b?.[Symbol.asyncDispose]();
    await a?.[Symbol.asyncDispose]();
  });

  it("ends an open stream on node A within a second of node B revoking its parent grant", async () => {
    const root = await a.issue({ scopes: ["llm:complete"], agent: "cut-root" });
    const child = (await (
      await a.call("/v1/tokens", root.token, {
        method: "POST",
        body: JSON.stringify({ scopes: ["llm:complete"] }),
      })
    ).json()) as { token: string };
    const { ended } = await openStream(a, child.token);
    const abortedBefore = a.mock.aborted();
    // Node A's view of it, as the console shows it: one connection open under the root.
    const detail = (await (await b.admin(`/v1/grants/${root.grantId}`)).json()) as GrantDetail;
    expect(detail.live).toMatchObject({ nodes: 2, missing: 0 });
    expect(detail.live?.connections).toEqual([
      expect.objectContaining({ node: a.broker.store.nodeId, kind: "http", upstream: "openai" }),
    ]);
    const revoked = await b.admin(`/v1/grants/${root.grantId}`, { method: "DELETE" });
    expect(revoked.status).toBe(200);
    const answered = performance.now();
    // The call answered after node A cut it, and says so; so does the audit trail.
    expect(await revoked.json()).toEqual({ revoked: 2, connections: 1 });
    const { text, at } = await ended;
    expect(at - answered).toBeLessThan(1_000);
    expect(text).toMatch(/event: error\ndata: \{"error":\{"code":"token_revoked"/);
    // The upstream request was aborted too.
    await expect.poll(() => a.mock.aborted()).toBeGreaterThan(abortedBefore);
  });

  it("cuts on a single token's revocation and on a bulk selector, leaving others open", async () => {
    const one = await a.issue({ scopes: ["llm:complete"], agent: "cut-token" });
    const bulk = await a.issue({ scopes: ["llm:complete"], agent: "cut-bulk" });
    const bystander = await a.issue({ scopes: ["llm:complete"], agent: "bystander" });
    const s1 = await openStream(a, one.token);
    const s2 = await openStream(a, bulk.token);
    const s3 = await openStream(a, bystander.token);
    const byToken = await b.admin(`/v1/tokens/${one.tokenId}`, { method: "DELETE" });
    expect(await byToken.json()).toMatchObject({ tokens: 1, connections: 1 });
    expect((await s1.ended).text).toContain('"code":"token_revoked"');
    const selector = { method: "POST", headers: { "content-type": "application/json" } };
    const preview = await b.admin("/v1/revocations?dryRun=true", {
      ...selector,
      body: JSON.stringify({ agent: "cut-bulk" }),
    });
    expect(await preview.json()).toEqual({ revoked: 1, connections: 1, dryRun: true });
    const bulkly = await b.admin("/v1/revocations", {
      ...selector,
      body: JSON.stringify({ agent: "cut-bulk" }),
    });
    expect(await bulkly.json()).toMatchObject({ revoked: 1, connections: 1 });
    expect((await s2.ended).text).toContain('"code":"token_revoked"');
    const metrics = await (await fetch(`${a.url}/metrics`)).text();
    expect(metrics).toMatch(/perishable_connections_cut_total\{reason="revoked"\} [1-9]/);
    expect(metrics).toMatch(/perishable_live_connections\{upstream="openai",kind="http"\} 1\b/);
    hold.release(); // the bystander's stream was never cut: it finishes as the upstream sends it
    const rest = await s3.ended;
    expect(rest.text).toContain("data: [DONE]");
    expect(rest.text).not.toContain("event: error");
  });

  it("ends a stream at its grant's notAfter, but not when only its token expires", async () => {
    hold.arm();
    const short = await a.issue({ scopes: ["llm:complete"], agent: "short", ttl: 60, lifetime: 2 });
    const opened = performance.now();
    const dying = await openStream(a, short.token);
    const lasting = await a.issue({ scopes: ["llm:complete"], agent: "lasting", ttl: 1, lifetime: 60 });
    const stays = await openStream(b, lasting.token);
    const { text, at } = await dying.ended;
    expect(at - opened).toBeGreaterThan(1_000);
    expect(text).toContain('"code":"token_expired"');
    // The token of `lasting` expired a second ago; its stream is still open.
    const settled = await Promise.race([
      stays.ended.then(() => "ended"),
      new Promise((r) => setTimeout(r, 300, "open")),
    ]);
    expect(settled).toBe("open");
    hold.release();
    expect((await stays.ended).text).toContain("data: [DONE]");
  });
});

describe("a node that cannot hear revocations", () => {
  it("checks what is live itself, so a revocation still cuts within a second, and nothing else", async () => {
    await using redis = await startRedisServer();
    const probe = new Redis(redis.url);
    await probe.acl("SETUSER", "deaf", "on", ">deaf-pw", "~*", "allchannels", "+@all");
    const hold = new HoldAll();
    await using a = await startTestBroker({ redisUrl: redis.url, mock: { streamGate: hold.wait } });
    // Node B reaches Redis as a user whose pub/sub rights are taken away below.
    await using b = await startTestBroker({
      peerOf: a,
      configure: (doc) => {
        doc.store = { ...doc.store, redis: redis.url.replace("redis://", "redis://deaf:deaf-pw@") };
      },
    });
    const doomed = await b.issue({ scopes: ["llm:complete"], agent: "deaf-doomed" });
    const spared = await b.issue({ scopes: ["llm:complete"], agent: "deaf-spared" });
    const s1 = await openStream(b, doomed.token);
    const s2 = await openStream(b, spared.token);
    // B can still run commands, but hears nothing (its subscription is dropped and refused) and
    // can answer nothing: A's revocation waits out B's lease, and B must act on its own.
    await probe.acl("SETUSER", "deaf", "resetchannels");
    const revoked = await a.admin(`/v1/grants/${doomed.grantId}`, { method: "DELETE" });
    const answered = performance.now();
    expect(await revoked.json()).toEqual({ revoked: 1, connections: 0 });
    const { text, at } = await s1.ended;
    expect(at - answered).toBeLessThan(1_000);
    expect(text).toContain('"code":"token_revoked"');
    // B could still read Redis: it cut only what was revoked.
    const open = await Promise.race([
      s2.ended.then(() => "ended"),
      new Promise((r) => setTimeout(r, 500, "open")),
    ]);
    expect(open).toBe("open");
    hold.release();
    expect((await s2.ended).text).toContain("data: [DONE]");
    probe.disconnect();
  });

  it("ends what is live within a second once it cannot reach Redis to check it (fail closed)", async () => {
    await using redis = await startRedisServer();
    const hold = new HoldAll();
    await using t = await startTestBroker({ redisUrl: redis.url, mock: { streamGate: hold.wait } });
    const { token } = await t.issue({ scopes: ["llm:complete"] });
    const stream = await openStream(t, token);
    const stopped = performance.now();
    await redis.stop();
    const { text, at } = await stream.ended;
    hold.release();
    // Not at the first failed read: a blip does not cut anything; but within a second or so.
    expect(at - stopped).toBeGreaterThan(400);
    expect(at - stopped).toBeLessThan(2_000);
    expect(text).toContain('"code":"store_unavailable"');
    await redis.start(); // so that the broker and the test's own Redis client close cleanly
  });
});

describe("a scope's max_connection_seconds", () => {
  it("ends a stream the scope allowed once they have passed, whatever the grant's end", async () => {
    const hold = new HoldAll();
    await using t = await startTestBroker({
      mock: { streamGate: hold.wait },
      configure: (doc) => {
        doc.scopes["llm:brief"] = {
          upstream: "openai",
          endpoints: ["/v1/chat/completions"],
          methods: ["POST"],
          max_connection_seconds: 1,
        };
        (doc.issuers![0] as { scopes: string[] }).scopes.push("llm:brief");
      },
    });
    const { token } = await t.issue({ scopes: ["llm:brief"], lifetime: 3600 });
    const opened = performance.now();
    const { text, at } = await (await openStream(t, token)).ended;
    hold.release();
    expect(at - opened).toBeGreaterThan(900);
    expect(text).toContain("max_connection_seconds (1) have passed");
  });
});
