import { startRedisServer } from "@perishable/test-support";
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
    const revoked = await b.admin(`/v1/grants/${root.grantId}`, { method: "DELETE" });
    expect(revoked.status).toBe(200);
    const answered = performance.now();
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
    await b.admin(`/v1/tokens/${one.tokenId}`, { method: "DELETE" });
    expect((await s1.ended).text).toContain('"code":"token_revoked"');
    await b.admin("/v1/revocations", {
      method: "POST",
      body: JSON.stringify({ agent: "cut-bulk" }),
      headers: { "content-type": "application/json" },
    });
    expect((await s2.ended).text).toContain('"code":"token_revoked"');
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
  it("ends what is live once its subscription has been down for longer than a lease (fail closed)", async () => {
    await using redis = await startRedisServer();
    const hold = new HoldAll();
    await using t = await startTestBroker({
      redisUrl: redis.url,
      mock: { streamGate: hold.wait },
      configure: (doc) => {
        doc.budgets = { lease: 2 };
      },
    });
    const { token } = await t.issue({ scopes: ["llm:complete"] });
    const stream = await openStream(t, token);
    const stopped = performance.now();
    await redis.stop();
    const { text, at } = await stream.ended;
    hold.release();
    // Not before the lease: a blip does not cut anything; not much after it either.
    expect(at - stopped).toBeGreaterThan(1_900);
    expect(at - stopped).toBeLessThan(4_000);
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
