import { createAnthropic } from "@ai-sdk/anthropic";
import { createOpenAI } from "@ai-sdk/openai";
import { ChatOpenAI } from "@langchain/openai";
import type { DevBroker } from "@perishable/broker";
import { generateText, streamText } from "ai";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { connect, type Session } from "../src/index.js";
import { devBrokerOnRedis } from "./support/dev.js";

let dev: DevBroker;
let session: Session;
beforeAll(async () => {
  dev = await devBrokerOnRedis(inject("redisUrl"));
  session = await connect({
    broker: dev.url,
    credential: dev.issuerKey,
    scopes: ["llm:complete", "claude:messages"],
    ttl: 60,
  });
});
afterAll(async () => {
  session?.close();
  await dev?.close();
});

const upstreamKeysSeen = () =>
  dev.mock!.requests.map((r) => r.headers.authorization ?? r.headers["x-api-key"]);

describe("the Vercel AI SDK", () => {
  it("generates text with createOpenAI(session.openai())", async () => {
    const openai = createOpenAI(session.openai());
    const { text } = await generateText({ model: openai.chat("gpt-4o-mini"), prompt: "hi", maxRetries: 0 });
    expect(text).toBe("Hello from the mock upstream.");
  });

  it("streams text with createOpenAI(session.openai())", async () => {
    const openai = createOpenAI(session.openai());
    const result = streamText({ model: openai.chat("gpt-4o-mini"), prompt: "hi", maxRetries: 0 });
    let text = "";
    for await (const delta of result.textStream) text += delta;
    expect(text).toBe("chunk 0 chunk 1 chunk 2 chunk 3 chunk 4 ");
  });

  it("generates text with createAnthropic(session.anthropic({ for: 'ai-sdk' }))", async () => {
    const anthropic = createAnthropic(session.anthropic({ for: "ai-sdk" }));
    const { text } = await generateText({
      model: anthropic("claude-sonnet-4-5"),
      prompt: "hi",
      maxRetries: 0,
    });
    expect(text).toBe("Hello from the mock upstream.");
  });
});

describe("LangChain", () => {
  it("invokes ChatOpenAI with session.openai() as its configuration", async () => {
    const model = new ChatOpenAI({ model: "gpt-4o-mini", configuration: session.openai(), maxRetries: 0 });
    const reply = await model.invoke("hi");
    expect(reply.content).toBe("Hello from the mock upstream.");
  });
});

describe("a scope's output ceiling (llm:complete: max_tokens 4096) with each client's defaults", () => {
  /** The body of the last request the mock saw, for this path. */
  const lastBody = (path: string) => {
    const seen = dev.mock!.requests.filter((r) => r.url === path).at(-1);
    return JSON.parse(seen?.body ?? "{}") as Record<string, unknown>;
  };

  it("fills max_completion_tokens into the AI SDK's chat request and max_output_tokens into its responses request", async () => {
    const openai = createOpenAI(session.openai());
    const chat = await generateText({ model: openai.chat("gpt-4o-mini"), prompt: "hi", maxRetries: 0 });
    expect(chat.text).toBe("Hello from the mock upstream.");
    expect(lastBody("/v1/chat/completions")).toMatchObject({
      model: "gpt-4o-mini",
      max_completion_tokens: 4096,
    });
    const responses = await generateText({ model: openai("gpt-4o-mini"), prompt: "hi", maxRetries: 0 });
    expect(responses.text).toBe("Hello from the mock upstream.");
    expect(lastBody("/v1/responses")).toMatchObject({ model: "gpt-4o-mini", max_output_tokens: 4096 });
  });

  it("fills the ceiling into LangChain's ChatOpenAI request, streamed or not", async () => {
    const model = new ChatOpenAI({ model: "gpt-4o-mini", configuration: session.openai(), maxRetries: 0 });
    expect((await model.invoke("hi")).content).toBe("Hello from the mock upstream.");
    const body = lastBody("/v1/chat/completions");
    expect(body.max_completion_tokens).toBe(4096);
    expect(body.max_tokens).toBeUndefined();
    let streamed = "";
    for await (const chunk of await model.stream("hi")) streamed += String(chunk.content);
    expect(streamed).toBe("chunk 0 chunk 1 chunk 2 chunk 3 chunk 4 ");
    expect(lastBody("/v1/chat/completions")).toMatchObject({ stream: true, max_completion_tokens: 4096 });
  });

  it("fills the ceiling into the official client's plain call, records it, and refuses n: 4 at the ceiling", async () => {
    const openai = new OpenAI(session.openai());
    const reply = await openai.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "hi" }],
    });
    expect(reply.choices[0]?.message.content).toBe("Hello from the mock upstream.");
    expect(lastBody("/v1/chat/completions").max_completion_tokens).toBe(4096);
    const before = dev.mock!.requests.length;
    const error = await openai.chat.completions
      .create({
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: "hi" }],
        n: 4,
        max_completion_tokens: 4096,
      })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ status: 403, code: "constraint_denied" });
    expect(dev.mock!.requests.length).toBe(before);
    const quarter = await openai.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "hi" }],
      n: 4,
    });
    expect(quarter.choices).toHaveLength(1);
    expect(lastBody("/v1/chat/completions")).toMatchObject({ n: 4, max_completion_tokens: 1024 });
    const audit = await fetch(`${dev.url}/v1/audit?type=used&grantId=${session.grant.grantId}&limit=100`, {
      headers: { authorization: `Bearer ${dev.adminKey}` },
    });
    const { events } = (await audit.json()) as { events: Array<{ ceiling?: unknown }> };
    expect(
      events.some((e) => JSON.stringify(e.ceiling) === '{"field":"max_completion_tokens","value":1024}'),
    ).toBe(true);
  });
});

describe("what the upstream saw", () => {
  it("only ever the upstream's own key, never a prs_ token", () => {
    const seen = upstreamKeysSeen();
    expect(seen.length).toBeGreaterThanOrEqual(4);
    for (const key of seen)
      expect(String(key)).toMatch(/^(Bearer sk-mock-upstream-key|sk-ant-mock-upstream-key)$/);
    expect(JSON.stringify(dev.mock!.requests)).not.toContain("prs_");
  });
});
