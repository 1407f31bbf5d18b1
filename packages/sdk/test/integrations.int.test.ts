import { createAnthropic } from "@ai-sdk/anthropic";
import { createOpenAI } from "@ai-sdk/openai";
import { ChatOpenAI } from "@langchain/openai";
import type { DevBroker } from "@perishable/broker";
import { generateText, streamText } from "ai";
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

describe("what the upstream saw", () => {
  it("only ever the upstream's own key, never a prs_ token", () => {
    const seen = upstreamKeysSeen();
    expect(seen.length).toBeGreaterThanOrEqual(4);
    for (const key of seen)
      expect(String(key)).toMatch(/^(Bearer sk-mock-upstream-key|sk-ant-mock-upstream-key)$/);
    expect(JSON.stringify(dev.mock!.requests)).not.toContain("prs_");
  });
});
