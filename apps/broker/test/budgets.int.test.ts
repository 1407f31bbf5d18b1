import {
  type AdminGrantView,
  type AuditPage,
  eventsOf,
  type GrantDetail,
  grantTree,
  type SelfResponse,
} from "@perishable/protocol";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { ConfigInput } from "../src/config/schema.js";
import { SECRETS, startTestBroker, type TestBroker } from "./support/broker.js";
import { HoldAll } from "./support/gate.js";
import { startProcessBroker } from "./support/process-broker.js";

type Refusal = { error: { code: string; message: string } };

// $1 per million input tokens and $2 per million output: 1,000 and 2,000 nano-dollars a token.
const budgeted = (doc: ConfigInput) => {
  doc.prices = {
    anthropic: { "claude-*": { input: 3, output: 15 } },
    openai: { "gpt-4o-mini": { input: 1, output: 2 }, "gpt-4.1-*": { input: 2, output: 8, max_output: 50 } },
  };
  doc.budgets = { lease: 2 };
};

const chat = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: "hi" }],
    max_completion_tokens: 100,
    ...extra,
  });

const post = (t: TestBroker, token: string, body: string, init: RequestInit = {}) =>
  t.call("/proxy/openai/v1/chat/completions", token, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
    ...init,
  });

const spendOf = async (t: TestBroker, grantId: string) =>
  ((await (await t.admin(`/v1/grants/${grantId}`)).json()) as GrantDetail).grant.spend!;

const until = async (check: () => Promise<boolean>, ms = 5_000) => {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
};

describe("budgets on two broker nodes sharing one Redis", () => {
  const hold = new HoldAll();
  let a: TestBroker;
  let b: TestBroker;
  beforeAll(async () => {
    a = await startTestBroker({
      redisUrl: inject("redisUrl"),
      mock: { streamGate: hold.wait },
      configure: budgeted,
    });
    b = await startTestBroker({ peerOf: a });
  });
  afterAll(async () => {
    hold.release();
    await b?.[Symbol.asyncDispose]();
    await a?.[Symbol.asyncDispose]();
  });

  it("lets 60 concurrent requests spend no more than the budget, then charges what they used", async () => {
    hold.arm();
    const { token, grantId } = await a.issue({ scopes: ["llm:complete"], budget: { usd: 0.0235 } });
    const before = a.mock.requests.length;
    const body = chat({ stream: true });
    // An allowed stream answers 200 with its first chunk, then is held open at the upstream: all 60
    // decisions are made while every reservation is still held.
    const responses = await Promise.all(
      Array.from({ length: 60 }, (_, i) => post(i % 2 ? b : a, token, body)),
    );
    const refused = responses.filter((r) => r.status === 402);
    const sent = a.mock.requests.length - before;
    expect(responses.filter((r) => r.status === 200).length).toBe(sent);
    expect(refused.length).toBe(60 - sent);
    const held = await spendOf(a, grantId);
    const worst = held.usd.reserved / sent;
    expect(sent).toBeGreaterThan(0);
    // Exact under concurrency: every request the budget could cover went, and not one more.
    expect(sent * worst).toBeLessThanOrEqual(0.0235 + 1e-12);
    expect((sent + 1) * worst).toBeGreaterThan(0.0235);
    expect(held.inFlight).toBe(sent);
    const denial = refused[0]!;
    expect(denial.headers.get("x-should-retry")).toBe("false");
    expect(await denial.json()).toMatchObject({ error: { code: "budget_exhausted" } });
    hold.release();
    for (const response of responses.filter((r) => r.status === 200)) {
      const text = await response.text();
      // The client gets the usage chunk it would get by asking, and the stream as sent.
      expect(text).toContain('"usage":{"prompt_tokens":9,"completion_tokens":5');
      expect(text.endsWith("data: [DONE]\n\n")).toBe(true);
    }
    // Settled off the request path: 9 input tokens at $1/M and 5 output at $2/M each.
    await until(async () => (await spendOf(b, grantId)).inFlight === 0);
    const spent = await spendOf(b, grantId);
    expect(spent.usd.spent).toBeCloseTo(sent * 0.000019, 12);
    expect(spent.usd.reserved).toBe(0);
    expect(spent.tokens.spent).toBe(sent * 14);
    expect(spent.usd.spent).toBeLessThanOrEqual(0.0235);
    // The upstream was asked for usage on the client's behalf.
    const forwarded = a.mock.requests
      .slice(before)
      .map((r) => JSON.parse(r.body) as { stream_options?: unknown });
    expect(forwarded.every((f) => JSON.stringify(f.stream_options) === '{"include_usage":true}')).toBe(true);
  });

  it("charges a JSON answer its usage, and a client that leaves its whole reservation", async () => {
    const { token, grantId } = await a.issue({ scopes: ["llm:complete"], budget: { usd: 1 } });
    const json = await post(a, token, chat());
    expect(json.status).toBe(200);
    // What is left once this request's worst case is held back, on every answer of a budgeted lineage.
    expect(json.headers.get("x-perishable-budget-left")).toMatch(/^usd=0\.99\d+, usd-limit=1$/);
    await json.json();
    await until(async () => (await spendOf(a, grantId)).inFlight === 0);
    expect((await spendOf(a, grantId)).usd.spent).toBeCloseTo(9 * 1e-6 + 6 * 2e-6, 12);

    hold.arm();
    const leaving = new AbortController();
    const open = await post(b, token, chat({ stream: true }), { signal: leaving.signal });
    expect(open.status).toBe(200);
    const reserved = (await spendOf(a, grantId)).usd.reserved;
    expect(reserved).toBeGreaterThan(0);
    leaving.abort();
    await until(async () => (await spendOf(a, grantId)).inFlight === 0);
    hold.release();
    const after = await spendOf(a, grantId);
    expect(after.usd.spent).toBeCloseTo(9 * 1e-6 + 6 * 2e-6 + reserved, 12);
    await a.broker.server.audit.flush();
    await b.broker.server.audit.flush();
    const page = (await (await a.admin(`/v1/audit?grantId=${grantId}&type=used`)).json()) as AuditPage;
    // Two nodes write their own batches: the order between them is not the order of the requests.
    expect(
      eventsOf(page.events, "used")
        .map((e) => e.cost?.basis)
        .sort(),
    ).toEqual(["reservation", "usage"]);
  });

  it("charges an Anthropic stream its usage without asking for it, beside chat on the same budget", async () => {
    const { token, grantId } = await a.issue({
      scopes: ["claude:messages", "llm:complete"],
      budget: { usd: 1 },
    });
    const stream = await a.call("/proxy/anthropic/v1/messages", token, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "claude-sonnet-4-5",
        max_tokens: 100,
        stream: true,
        messages: [{ role: "user", content: "hi" }],
      }),
    });
    expect(stream.status).toBe(200);
    const events = await stream.text();
    // Anthropic streams its usage unasked: nothing was added to the request or the answer.
    expect(JSON.parse(a.mock.requests.at(-1)!.body).stream_options).toBeUndefined();
    expect(events).toContain("message_delta");
    await until(async () => (await spendOf(a, grantId)).inFlight === 0);
    // 9 input tokens at $3/M, 5 output at $15/M.
    expect((await spendOf(a, grantId)).usd.spent).toBeCloseTo(9 * 3e-6 + 5 * 15e-6, 12);
    const chatted = await a.call("/proxy/openai/v1/chat/completions", token, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chat(),
    });
    await chatted.text();
    await until(async () => (await spendOf(a, grantId)).inFlight === 0);
    expect((await spendOf(a, grantId)).usd.spent).toBeCloseTo(9 * 3e-6 + 5 * 15e-6 + 21e-6, 12);
  });

  it("pools a lineage: a child draws on its parent's budget, and can be handed no more than is left", async () => {
    const root = await a.issue({ scopes: ["llm:complete"], budget: { usd: 0.01, tokens: 100_000 } });
    const tooMuch = await a.call("/v1/tokens", root.token, {
      method: "POST",
      body: JSON.stringify({ scopes: ["llm:complete"], budget: { usd: 0.02 } }),
    });
    expect(tooMuch.status).toBe(403);
    expect(await tooMuch.json()).toMatchObject({ error: { code: "delegation_denied" } });
    const child = (await (
      await a.call("/v1/tokens", root.token, {
        method: "POST",
        body: JSON.stringify({ scopes: ["llm:complete"] }),
      })
    ).json()) as { token: string; grantId: string };
    const slice = (await (
      await b.call("/v1/tokens", child.token, {
        method: "POST",
        body: JSON.stringify({ scopes: ["llm:complete"], budget: { usd: 0.003 } }),
      })
    ).json()) as { token: string; grantId: string };
    expect((await post(b, slice.token, chat())).status).toBe(200);
    await until(async () => (await spendOf(a, root.grantId)).inFlight === 0);
    expect((await spendOf(a, root.grantId)).usd.spent).toBeCloseTo(21e-6, 12);
    expect((await spendOf(a, child.grantId)).usd.spent).toBeCloseTo(21e-6, 12);
    // The slice's own budget is the tightest: a request whose worst case is above it is refused.
    const wide = await post(a, slice.token, chat({ max_completion_tokens: 2_000 }));
    expect(wide.status).toBe(402);
    expect(((await wide.json()) as Refusal).error.message).toMatch(/^budget \$0\.003 cannot cover/);
    const self = (await (await a.call("/v1/tokens/self", slice.token)).json()) as SelfResponse;
    expect(self.grant.budget).toEqual({ usd: 0.003 });
    expect(self.spend.map((s) => s.grantId)).toEqual([root.grantId, child.grantId, slice.grantId]);
    expect(self.budgetLeft.usd).toBeCloseTo(0.003 - 21e-6, 12);
    expect(self.budgetLeft.tokens).toBe(100_000 - 15);
  });

  it("caps requests in flight across nodes, an open stream counting until it closes", async () => {
    hold.arm();
    const { token, grantId } = await a.issue({ scopes: ["llm:complete"], maxConcurrent: 2 });
    const first = await post(a, token, chat({ stream: true }));
    const second = await post(b, token, chat({ stream: true }));
    expect([first.status, second.status]).toEqual([200, 200]);
    const third = await post(a, token, chat({ stream: true }));
    expect(third.status).toBe(429);
    expect(third.headers.get("retry-after")).toBe("1");
    expect(await third.json()).toMatchObject({ error: { code: "concurrency_limited" } });
    hold.release();
    await first.text();
    await second.text();
    await until(async () => (await spendOf(a, grantId)).inFlight === 0);
    expect((await post(b, token, chat())).status).toBe(200);
  });

  it("never refuses a caller that waits for each answer, with maxConcurrent 1", async () => {
    const { token } = await a.issue({ scopes: ["llm:complete"], maxConcurrent: 1, budget: { usd: 1 } });
    // On one node the settlement goes out before the next request's script can (same connection,
    // written on the next turn of the event loop); across nodes it is a Redis round trip behind.
    for (let i = 0; i < 30; i++) {
      const response = await post(a, token, chat({ stream: i % 3 === 0 }));
      expect(response.status).toBe(200);
      await response.text();
    }
  });

  it("refuses what a budget cannot price, naming it, and lets the same through without a budget", async () => {
    const { token } = await a.issue({
      scopes: ["llm:complete", "llm:bounded", "files:rw"],
      budget: { usd: 1 },
    });
    // gpt-4.1-* is priced with max_output 50: a body that states no limit gets that one.
    const filled = await post(a, token, chat({ model: "gpt-4.1-nano", max_completion_tokens: undefined }));
    expect(filled.status).toBe(200);
    expect(JSON.parse(a.mock.requests.at(-1)!.body)).toMatchObject({ max_completion_tokens: 50 });
    const unpriced = await a.call("/proxy/openai/v1/completions", token, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "davinci-x", prompt: "hi", max_tokens: 10 }),
    });
    expect(unpriced.status).toBe(403);
    const { error } = (await unpriced.json()) as Refusal;
    expect(error.code).toBe("constraint_denied");
    expect(error.message).toContain('model "davinci-x" has no price for upstream openai');
    const upload = await a.call("/proxy/files/v1/files", token, { method: "POST", body: "x" });
    expect(upload.status).toBe(403);
    expect(((await upload.json()) as Refusal).error.message).toContain(
      "not an endpoint the broker can price",
    );
    const free = await a.issue({ scopes: ["files:rw", "llm:bounded"] });
    expect((await a.call("/proxy/files/v1/files", free.token, { method: "POST", body: "x" })).status).toBe(
      200,
    );
    const plain = await a.call("/proxy/openai/v1/completions", free.token, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "davinci-x", prompt: "hi", max_tokens: 10 }),
    });
    expect(plain.status).toBe(200);
  });

  it("forwards a body it could not price as it came, to a lineage without a budget", async () => {
    // A priced endpoint's body is read to price it; one that is not JSON is no one's business
    // without a budget, and must reach the upstream byte for byte.
    const { token } = await a.issue({ scopes: ["llm:embed"] });
    const sent = await a.call("/proxy/openai/v1/embeddings", token, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "not json at all",
    });
    expect(sent.status).toBe(200);
    const seen = a.mock.requests.at(-1)!;
    expect(seen.body).toBe("not json at all");
    expect(seen.headers["content-type"]).toBe("text/plain");
  });

  it("refuses a negative, non-finite or absurd budget with 400", async () => {
    for (const budget of [{ usd: -1 }, { usd: 1e9 }, { tokens: 1.5 }, {}, { usd: "5" }]) {
      const response = await a.call("/v1/tokens", undefined, {
        method: "POST",
        headers: { authorization: `Bearer ${SECRETS.issuer}`, "content-type": "application/json" },
        body: JSON.stringify({ scopes: ["llm:complete"], budget }),
      });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: { code: "bad_request" } });
    }
    const nan = await a.call("/v1/tokens", undefined, {
      method: "POST",
      headers: { authorization: `Bearer ${SECRETS.issuer}`, "content-type": "application/json" },
      body: '{"scopes":["llm:complete"],"budget":{"usd":1e999}}',
    });
    expect(nan.status).toBe(400);
  });

  it("shows spend in the admin views", async () => {
    const { token, grantId } = await a.issue({
      scopes: ["llm:complete"],
      budget: { usd: 1 },
      maxConcurrent: 3,
    });
    await (await post(a, token, chat())).text();
    await until(async () => (await spendOf(a, grantId)).inFlight === 0);
    const list = (await (await a.admin("/v1/grants?limit=10000")).json()) as { grants: AdminGrantView[] };
    const view = list.grants.find((g) => g.grantId === grantId)!;
    expect(view.budget).toEqual({ usd: 1 });
    expect(view.maxConcurrent).toBe(3);
    expect(view.spend).toMatchObject({ usd: { limit: 1, reserved: 0 }, maxConcurrent: 3, inFlight: 0 });
    const plain = await a.issue({ scopes: ["llm:complete"] });
    expect(
      ((await (await a.admin(`/v1/grants/${plain.grantId}`)).json()) as GrantDetail).grant.spend,
    ).toBeNull();
  });
});

describe("a node that dies mid-stream", () => {
  /** A survivor in this process and a doomed broker process beside it, one lineage, and calls through the doomed one. */
  const deadNodePair = async (maxConcurrent: number) => {
    const hold = new HoldAll();
    const survivor = await startTestBroker({
      redisUrl: inject("redisUrl"),
      mock: { streamGate: hold.wait },
      configure: budgeted,
    });
    const doomed = await startProcessBroker(survivor.configDocument);
    const { token, grantId } = await survivor.issue({
      scopes: ["llm:complete"],
      budget: { usd: 1 },
      maxConcurrent,
    });
    const call = (body: string) =>
      fetch(`${doomed.url}/proxy/openai/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body,
      });
    return {
      hold,
      survivor,
      doomed,
      token,
      grantId,
      call,
      async [Symbol.asyncDispose]() {
        hold.release();
        await doomed[Symbol.asyncDispose]();
        await survivor[Symbol.asyncDispose]();
      },
    };
  };

  it("leaks no slot and no reservation beyond its lease: both are charged and freed", async () => {
    await using pair = await deadNodePair(1);
    const { hold, survivor, doomed, token, grantId } = pair;
    const open = await pair.call(chat({ stream: true }));
    expect(open.status).toBe(200);
    const reserved = (await spendOf(survivor, grantId)).usd.reserved;
    doomed.process.kill("SIGKILL");
    await open.text().catch(() => "");
    // Its slot is still held by the dead node's lease…
    expect((await post(survivor, token, chat())).status).toBe(429);
    // …until the lease (2 s) runs out: then it is charged in full and the slot is free.
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    expect((await post(survivor, token, chat())).status).toBe(200);
    hold.release();
    await until(async () => (await spendOf(survivor, grantId)).inFlight === 0);
    expect((await spendOf(survivor, grantId)).usd.spent).toBeCloseTo(reserved + 21e-6, 12);
  });

  it("charges a dead node's slice of spend in full and frees its slots once its lease ends", async () => {
    // Room for many requests: the doomed node serves them from slices it leased.
    await using pair = await deadNodePair(32);
    const { hold, survivor, doomed, token, grantId, call } = pair;
    hold.release();
    await (await call(chat())).text(); // the script, which brings the chain's facts
    // Streams held open at once: the node serves them from slices of slots and money it leased,
    // and keeps those while the streams stay open (no idle give-back can race what is read next).
    hold.arm();
    const opened = await Promise.all(Array.from({ length: 6 }, () => call(chat({ stream: true }))));
    const redis = new Redis(inject("redisUrl"));
    let held: Awaited<ReturnType<typeof spendOf>>;
    try {
      for (const open of opened) expect(open.status).toBe(200);
      held = await spendOf(survivor, grantId);
      expect(held.inFlight).toBeGreaterThanOrEqual(opened.length);
      expect(held.usd.reserved).toBeGreaterThan(0);
      // Held as slices (id|usd|tokens|levels|slots), not as one reservation per request.
      const { prefix } = survivor.configDocument.store as { prefix: string };
      const members = await redis.zrange(`${prefix}:{${grantTree(grantId)}}:fl`, 0, -1);
      expect(members.filter((m) => m.split("|").length === 5).length).toBeGreaterThan(0);
    } catch (error) {
      hold.release();
      throw error;
    } finally {
      redis.disconnect();
    }
    doomed.process.kill("SIGKILL");
    await Promise.all(opened.map((open) => open.text().catch(() => "")));
    hold.release();
    // The lease (2 s) runs out; the next request on the tree charges the slice in full and frees its slots.
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    expect((await post(survivor, token, chat())).status).toBe(200);
    await until(async () => {
      const s = await spendOf(survivor, grantId);
      return s.inFlight === 0 && s.usd.reserved === 0;
    }, 8_000);
    const spent = await spendOf(survivor, grantId);
    // Never less than what it held: the slice is charged as if all of it was spent.
    expect(spent.usd.spent).toBeGreaterThanOrEqual(held.usd.reserved + held.usd.spent);
  });
});

describe("budgets and maxConcurrent from slices leased by three nodes", () => {
  const hold = new HoldAll();
  let nodes: TestBroker[];
  beforeAll(async () => {
    const a = await startTestBroker({
      redisUrl: inject("redisUrl"),
      mock: { streamGate: hold.wait },
      configure: budgeted,
    });
    nodes = [a, await startTestBroker({ peerOf: a }), await startTestBroker({ peerOf: a })];
  });
  afterAll(async () => {
    hold.release();
    for (const node of [...(nodes ?? [])].reverse()) await node[Symbol.asyncDispose]();
  });

  /** A first wave on every node (each learns the token and leases), then `size` streams at once, all held open. */
  const waves = async (token: string, size: number, warm = 3) => {
    hold.release();
    for (const node of nodes) for (let i = 0; i < warm; i++) await (await post(node, token, chat())).text();
    hold.arm();
    const before = nodes[0]!.mock.requests.length;
    const responses = await Promise.all(
      Array.from({ length: size }, (_, i) => post(nodes[i % 3]!, token, chat({ stream: true }))),
    );
    return { responses, sent: nodes[0]!.mock.requests.length - before };
  };

  it("never lets 200 concurrent requests reserve past a budget, and settles what they cost", async () => {
    // A stream's worst case here is 2,157 input + 100 output tokens: $0.002357; the warm-up's nine
    // JSON answers cost 9 + 6 tokens ($0.000021) each: room for 152 streams.
    const budget = 0.36;
    const room = Math.floor((budget - 9 * 0.000021) / 0.002357);
    const { token, grantId } = await nodes[0]!.issue({ scopes: ["llm:complete"], budget: { usd: budget } });
    const { responses, sent } = await waves(token, 200);
    const allowed = responses.filter((r) => r.status === 200).length;
    expect(allowed).toBe(sent);
    expect(responses.filter((r) => r.status !== 200 && r.status !== 402)).toEqual([]);
    // Held open: every allowed stream still holds its worst case somewhere (in Redis or a slice).
    expect(allowed).toBeLessThanOrEqual(room);
    expect(allowed).toBeGreaterThan(room * 0.8); // undershoot: what other nodes' slices held unspent
    const held = await spendOf(nodes[0]!, grantId);
    expect(held.usd.spent + held.usd.reserved).toBeLessThanOrEqual(budget + 1e-12);
    hold.release();
    for (const r of responses) await r.text();
    // Every slice settles once idle: nothing stays reserved, and each request is charged its usage.
    await until(async () => {
      const s = await spendOf(nodes[1]!, grantId);
      return s.inFlight === 0 && s.usd.reserved === 0;
    }, 8_000);
    const spent = await spendOf(nodes[2]!, grantId);
    expect(spent.tokens.spent).toBe(9 * 15 + allowed * 14);
    expect(spent.usd.spent).toBeCloseTo(9 * 0.000021 + allowed * 0.000019, 12);
  });

  it("never has more than maxConcurrent in flight across three nodes", async () => {
    const { token, grantId } = await nodes[0]!.issue({ scopes: ["llm:complete"], maxConcurrent: 48 });
    // A long warm-up: each node would ask for slices of many slots; Redis gives at most a sixteenth of the room.
    const { responses, sent } = await waves(token, 150, 12);
    const allowed = responses.filter((r) => r.status === 200).length;
    expect(allowed).toBe(sent);
    expect(allowed).toBeLessThanOrEqual(48);
    expect(allowed).toBeGreaterThan(30);
    expect(responses.filter((r) => r.status !== 200 && r.status !== 429)).toEqual([]);
    expect((await spendOf(nodes[0]!, grantId)).inFlight).toBeLessThanOrEqual(48);
    hold.release();
    for (const r of responses) await r.text();
    await until(async () => (await spendOf(nodes[1]!, grantId)).inFlight === 0, 8_000);
  });
});
