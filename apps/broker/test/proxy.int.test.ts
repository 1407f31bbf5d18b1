import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { SECRETS, startTestBroker, type TestBroker } from "./support/broker.js";
import { Gate } from "./support/gate.js";
import { rawRequest } from "./support/raw-http.js";

const gate = new Gate();
let t: TestBroker;

beforeAll(async () => {
  t = await startTestBroker({ redisUrl: inject("redisUrl"), mock: { chunks: 6, streamGate: gate.wait } });
});
afterAll(async () => {
  await t?.[Symbol.asyncDispose]();
});

const openai = (token: string) =>
  new OpenAI({ baseURL: `${t.url}/proxy/openai/v1`, apiKey: token, maxRetries: 0 });
const anthropic = (token: string) =>
  new Anthropic({ baseURL: `${t.url}/proxy/anthropic`, apiKey: token, maxRetries: 0 });
const seenSince = (n: number) => t.mock.requests.slice(n);

describe("the official OpenAI client through the broker", () => {
  it("completes a chat: the real key reaches the upstream, the token does not", async () => {
    const { token } = await t.issue({ scopes: ["llm:complete"], ttl: 60, agent: "planner" });
    const before = t.mock.requests.length;
    const { data, response } = await openai(token)
      .chat.completions.create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] })
      .withResponse();
    expect(data.choices[0]?.message.content).toBe("Hello from the mock upstream.");
    expect(response.headers.get("x-perishable-request-id")).toMatch(/^req_/);
    const [seen] = seenSince(before);
    expect(seen?.url).toBe("/v1/chat/completions");
    expect(seen?.headers.authorization).toBe(`Bearer ${SECRETS.openai}`);
    expect(JSON.stringify(seen)).not.toContain("prs_");
    expect(JSON.parse(seen!.body)).toMatchObject({ model: "gpt-4o-mini" });
  });

  it("streams: the first chunk reaches the client before the upstream sends the rest", async () => {
    const { token } = await t.issue({ scopes: ["llm:complete"] });
    gate.arm();
    const stream = await openai(token).chat.completions.create({
      model: "gpt-4.1-mini",
      messages: [{ role: "user", content: "stream please" }],
      stream: true,
    });
    const contents: string[] = [];
    for await (const chunk of stream) {
      // The mock holds every chunk after the first until this release: a broker that buffered
      // the response would never deliver the first one, and the test would time out.
      if (contents.length === 0) gate.release();
      contents.push(chunk.choices[0]?.delta.content ?? "");
    }
    expect(contents.join("")).toBe("chunk 0 chunk 1 chunk 2 chunk 3 chunk 4 chunk 5 ");
  });

  it("surfaces a denial as an APIError carrying the broker's code", async () => {
    const { token } = await t.issue({ scopes: ["llm:complete"] });
    const before = t.mock.requests.length;
    const error = await openai(token)
      .chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(error).toMatchObject({ status: 403, code: "constraint_denied" });
    expect((error as Error).message).toContain('model "gpt-4o" is not allowed');
    expect(seenSince(before)).toHaveLength(0);
  });

  it("refuses a scope the token does not hold", async () => {
    const { token } = await t.issue({ scopes: ["llm:embed"] });
    const error = await openai(token)
      .chat.completions.create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ status: 403, code: "scope_denied" });
  });

  it("rate-limits per grant with 429 and Retry-After", async () => {
    const { token } = await t.issue({ scopes: ["llm:embed"] });
    const client = openai(token);
    for (let i = 0; i < 3; i++)
      await client.embeddings.create({ model: "text-embedding-3-small", input: "x" });
    const error = await client.embeddings
      .create({ model: "text-embedding-3-small", input: "x" })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ status: 429, code: "rate_limited" });
    expect(
      Number((error as InstanceType<typeof OpenAI.APIError>).headers?.get("retry-after")),
    ).toBeGreaterThan(0);
    // Another grant has its own budget.
    const other = await t.issue({ scopes: ["llm:embed"] });
    await expect(openai(other.token).embeddings.create({ model: "m", input: "x" })).resolves.toBeDefined();
  });
});

describe("the official Anthropic client through the broker", () => {
  it("creates a message with the upstream's key and version header", async () => {
    const { token } = await t.issue({ scopes: ["claude:messages"] });
    const before = t.mock.requests.length;
    const message = await anthropic(token).messages.create({
      model: "claude-sonnet-4-5",
      max_tokens: 100,
      messages: [{ role: "user", content: "hi" }],
    });
    expect(message.content[0]).toMatchObject({ type: "text", text: "Hello from the mock upstream." });
    const [seen] = seenSince(before);
    expect(seen?.headers["x-api-key"]).toBe(SECRETS.anthropic);
    expect(seen?.headers["anthropic-version"]).toBe("2023-06-01");
    expect(seen?.headers.authorization).toBeUndefined();
    expect(JSON.stringify(seen)).not.toContain("prs_");
  });

  it("streams message events as they are sent", async () => {
    const { token } = await t.issue({ scopes: ["claude:messages"] });
    gate.arm();
    const stream = anthropic(token).messages.stream({
      model: "claude-sonnet-4-5",
      max_tokens: 100,
      messages: [{ role: "user", content: "hi" }],
    });
    let text = "";
    stream.on("text", (delta) => {
      if (text === "") gate.release();
      text += delta;
    });
    const final = await stream.finalMessage();
    expect(text).toBe("chunk 0 chunk 1 chunk 2 chunk 3 chunk 4 chunk 5 ");
    expect(final.stop_reason).toBe("end_turn");
  });

  it("surfaces a revoked token as an authentication error with the broker's code", async () => {
    const issued = await t.issue({ scopes: ["claude:messages"] });
    await t.call("/v1/tokens/self", issued.token, { method: "DELETE" });
    const error = await anthropic(issued.token)
      .messages.create({
        model: "claude-sonnet-4-5",
        max_tokens: 10,
        messages: [{ role: "user", content: "hi" }],
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.AuthenticationError);
    expect((error as { error: unknown }).error).toMatchObject({ error: { code: "token_revoked" } });
  });
});

describe("what is forwarded", () => {
  it("drops hop-by-hop, credential, forwarding and override headers; keeps the rest; the config wins", async () => {
    const { token } = await t.issue({ scopes: ["claude:messages"] });
    const before = t.mock.requests.length;
    const body = JSON.stringify({ model: "m", max_tokens: 1, messages: [] });
    const response = await rawRequest(`${t.url}/proxy/anthropic/v1/messages`, {
      method: "POST",
      body,
      headers: {
        "content-type": "application/json",
        "content-length": String(Buffer.byteLength(body)),
        "x-api-key": token,
        "anthropic-version": "1999-01-01",
        "anthropic-beta": "tools-2024",
        "x-forwarded-for": "10.0.0.1",
        forwarded: "for=10.0.0.1",
        cookie: "session=abc",
        "x-http-method-override": "DELETE",
        "keep-alive": "timeout=5",
        connection: "keep-alive, x-drop-me",
        "x-drop-me": "1",
      },
    });
    expect(response.status).toBe(200);
    expect(response.headers["x-perishable-request-id"]).toMatch(/^req_/);
    const seen = seenSince(before)[0]!.headers;
    expect(seen["anthropic-version"]).toBe("2023-06-01");
    expect(seen["anthropic-beta"]).toBe("tools-2024");
    expect(seen["x-api-key"]).toBe(SECRETS.anthropic);
    for (const dropped of [
      "x-forwarded-for",
      "forwarded",
      "cookie",
      "x-http-method-override",
      "keep-alive",
      "x-drop-me",
      "authorization",
    ]) {
      expect(seen[dropped], dropped).toBeUndefined();
    }
  });

  it("forwards under the upstream's base path, query string included, and streams a large body", async () => {
    const { token } = await t.issue({ scopes: ["files:rw"] });
    const before = t.mock.requests.length;
    const big = "x".repeat(3 * 1024 * 1024);
    const response = await t.call("/proxy/files/v1/files?purpose=batch&x=%2F", token, {
      method: "POST",
      body: big,
      headers: { "content-type": "application/octet-stream" },
    });
    expect(response.status).toBe(200);
    const seen = seenSince(before)[0]!;
    expect(seen.url).toBe("/base/v1/files?purpose=batch&x=%2F");
    expect(seen.headers["x-files-key"]).toBe(SECRETS.files);
    expect(seen.body.length).toBe(big.length);
    const get = await t.call("/proxy/files/v1/files/file-1/content", token);
    expect(await get.json()).toMatchObject({ path: "/base/v1/files/file-1/content" });
  });

  it("checks max_tokens on the buffered body and forwards that body unchanged", async () => {
    const { token } = await t.issue({ scopes: ["llm:bounded"] });
    const body = JSON.stringify({ model: "gpt-3.5-turbo-instruct", prompt: "é ✓", max_tokens: 256 });
    const before = t.mock.requests.length;
    expect((await t.call("/proxy/openai/v1/completions", token, { method: "POST", body })).status).toBe(200);
    expect(seenSince(before)[0]?.body).toBe(body);
    const over = await t.call("/proxy/openai/v1/completions", token, {
      method: "POST",
      body: JSON.stringify({ model: "m", prompt: "p", max_tokens: 257 }),
    });
    expect(over.status).toBe(403);
    expect(await over.json()).toMatchObject({ error: { code: "constraint_denied" } });
    const notJson = await t.call("/proxy/openai/v1/completions", token, {
      method: "POST",
      body: "max_tokens=1",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(await notJson.json()).toMatchObject({
      error: { code: "constraint_denied", message: expect.stringContaining("JSON") },
    });
    expect(seenSince(before)).toHaveLength(1);
  });

  it("fills the ceiling into a body that states no limit, with its length recomputed, and audits it", async () => {
    const { token, grantId } = await t.issue({ scopes: ["llm:bounded"] });
    const before = t.mock.requests.length;
    for (const extra of [{}, { stream: true }]) {
      const body = JSON.stringify({ model: "gpt-3.5-turbo-instruct", prompt: "é ✓", ...extra });
      const response = await t.call("/proxy/openai/v1/completions", token, { method: "POST", body });
      expect(response.status).toBe(200);
    }
    const seen = seenSince(before);
    expect(seen).toHaveLength(2);
    for (const [i, request] of seen.entries()) {
      expect(JSON.parse(request.body)).toEqual({
        model: "gpt-3.5-turbo-instruct",
        prompt: "é ✓",
        ...(i === 1 ? { stream: true } : {}),
        max_tokens: 256,
      });
      expect(request.headers["content-length"]).toBe(String(Buffer.byteLength(request.body)));
    }
    await t.broker.server.audit.flush();
    const audit = await t.admin(`/v1/audit?type=used&grantId=${grantId}`);
    const { events } = (await audit.json()) as { events: Array<{ ceiling?: unknown }> };
    expect(events.map((e) => e.ceiling)).toEqual([
      { field: "max_tokens", value: 256 },
      { field: "max_tokens", value: 256 },
    ]);
  });
});

describe("upstream failures", () => {
  it("answers upstream_timeout when the upstream sends no headers in time", async () => {
    const { token } = await t.issue({ scopes: ["slow:call"] });
    const response = await t.call("/proxy/slow/v1/hang", token, { method: "POST", body: "{}" });
    expect(response.status).toBe(504);
    expect(await response.json()).toMatchObject({ error: { code: "upstream_timeout" } });
  });

  it("answers upstream_error when the upstream drops the connection or cannot be reached", async () => {
    const { token } = await t.issue({ scopes: ["slow:call", "closed:call"] });
    const reset = await t.call("/proxy/slow/v1/reset", token);
    expect(reset.status).toBe(502);
    expect(await reset.json()).toMatchObject({ error: { code: "upstream_error" } });
    const closed = await t.call("/proxy/closed/anything", token);
    expect(closed.status).toBe(502);
    const body = (await closed.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("upstream_error");
    expect(body.error.message).not.toContain("127.0.0.1");
  });

  it("aborts the upstream request when the client goes away mid-stream", async () => {
    const { token } = await t.issue({ scopes: ["llm:complete"] });
    const abortedBefore = t.mock.aborted();
    gate.arm();
    const controller = new AbortController();
    const response = await t.call("/proxy/openai/v1/chat/completions", token, {
      method: "POST",
      body: JSON.stringify({ model: "gpt-4o-mini", stream: true, messages: [] }),
      signal: controller.signal,
    });
    const reader = response.body!.getReader();
    await reader.read();
    controller.abort();
    await expect.poll(() => t.mock.aborted(), { timeout: 5_000 }).toBe(abortedBefore + 1);
    gate.release();
  });
});

describe("maxUses", () => {
  it("allows exactly maxUses proxied calls", async () => {
    const { token } = await t.issue({ scopes: ["models:read"], maxUses: 2 });
    expect((await t.call("/proxy/openai/v1/models", token)).status).toBe(200);
    expect((await t.call("/proxy/openai/v1/models", token)).status).toBe(200);
    const third = await t.call("/proxy/openai/v1/models", token);
    expect(third.status).toBe(403);
    expect(await third.json()).toMatchObject({ error: { code: "forbidden" } });
    const self = await (await t.call("/v1/tokens/self", token)).json();
    expect(self).toMatchObject({ usesLeft: 0, grant: { maxUses: 2 } });
  });
});

describe("the used event", () => {
  it("records the model and token usage of JSON and streamed answers", async () => {
    const { token, grantId } = await t.issue({ scopes: ["llm:complete", "claude:messages"] });
    await openai(token).chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "hi" }],
    });
    const stream = await openai(token).chat.completions.create({
      model: "gpt-4.1-mini",
      messages: [],
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const _ of stream) {
      // drain
    }
    await anthropic(token)
      .messages.stream({
        model: "claude-sonnet-4-5",
        max_tokens: 10,
        messages: [{ role: "user", content: "hi" }],
      })
      .finalMessage();
    const page = (await (await t.admin(`/v1/audit?grantId=${grantId}&type=used`)).json()) as {
      events: { model?: string; usage?: Record<string, number> }[];
    };
    expect(page.events.map((e) => [e.model, e.usage])).toEqual([
      ["gpt-4o-mini", { prompt_tokens: 9, completion_tokens: 6, total_tokens: 15 }],
      ["gpt-4.1-mini", { prompt_tokens: 9, completion_tokens: 6, total_tokens: 15 }],
      ["claude-sonnet-4-5", { input_tokens: 9, output_tokens: 6 }],
    ]);
  });
});
