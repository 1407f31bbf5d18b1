import { createOpenAI } from "@ai-sdk/openai";
import { HumanMessage } from "@langchain/core/messages";
import { Annotation, END, START, StateGraph } from "@langchain/langgraph";
import { ChatOpenAI } from "@langchain/openai";
import { Agent as MastraAgent } from "@mastra/core/agent";
import * as agents from "@openai/agents";
import type { DevBroker } from "@perishable/broker";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { connect, type Session, useOpenAIAgents } from "../src/index.js";
import { devBrokerOnRedis } from "./support/dev.js";

/**
 * Agent frameworks with their real packages, through a real broker. The OpenAI Agents SDK's
 * trace exporter would send the configured key — a prs_ token here — to OpenAI's tracing
 * endpoint: every request any part of the process makes is watched, and none but the broker's
 * ever carries the token.
 */
let dev: DevBroker;
const sessions: Session[] = [];
const seen: { url: string; auth: string }[] = [];
const realFetch = globalThis.fetch;

beforeAll(async () => {
  globalThis.fetch = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = input instanceof Request ? input.url : String(input);
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    seen.push({ url, auth: `${headers.get("authorization") ?? ""} ${headers.get("x-api-key") ?? ""}` });
    return realFetch(input, init);
  }) as typeof fetch;
  dev = await devBrokerOnRedis(inject("redisUrl"));
});
afterAll(async () => {
  globalThis.fetch = realFetch;
  delete process.env.OPENAI_API_KEY;
  for (const s of sessions) s.close();
  await dev?.close();
});

describe("OpenAI Agents SDK (@openai/agents)", () => {
  it("runs an agent through the broker, and no prs_ token leaves for any other host", async () => {
    const session = await connect({
      broker: dev.url,
      credential: dev.issuerKey,
      scopes: ["llm:complete"],
      agent: "agents-sdk",
    });
    sessions.push(session);
    // As a user might, the token is also the process's OpenAI key: what the exporter would send.
    process.env.OPENAI_API_KEY = session.token;
    // Tracing on, as in production (the Agents SDK turns it off by itself under NODE_ENV=test).
    agents.setTracingDisabled(false);
    useOpenAIAgents(session, agents, OpenAI, { api: "chat_completions" });
    const agent = new agents.Agent({ name: "helper", instructions: "Answer briefly.", model: "gpt-4o-mini" });
    const result = await agents.run(agent, "Say hello.");
    expect(result.finalOutput).toBeTruthy();
    await agents.getGlobalTraceProvider().forceFlush();
    const broker = new URL(dev.url).origin;
    expect(seen.some((r) => r.url.startsWith(`${broker}/proxy/openai/`))).toBe(true);
    for (const r of seen) if (r.auth.includes("prs_")) expect(new URL(r.url).origin, r.url).toBe(broker);
    expect(seen.filter((r) => new URL(r.url).hostname.endsWith("openai.com"))).toEqual([]);
  });
});

describe("LangGraph JS (@langchain/langgraph)", () => {
  it("keeps a long graph run going across token refreshes, every model call through the broker", async () => {
    const session = await connect({
      broker: dev.url,
      credential: dev.issuerKey,
      scopes: ["llm:complete"],
      ttl: 2,
    });
    sessions.push(session);
    const first = session.tokenId;
    let refreshed = 0;
    session.on("refreshed", () => {
      refreshed += 1;
    });
    const model = new ChatOpenAI({ model: "gpt-4o-mini", configuration: session.openai(), maxRetries: 0 });
    const State = Annotation.Root({
      answers: Annotation<string[]>({ reducer: (a, b) => [...a, ...b], default: () => [] }),
    });
    const ask = async () => ({ answers: [String((await model.invoke([new HumanMessage("hi")])).content)] });
    // A slow tool between the two model calls: longer than the first token lives.
    const slow = async () => {
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      return { answers: [] };
    };
    const graph = new StateGraph(State)
      .addNode("plan", ask)
      .addNode("tool", slow)
      .addNode("answer", ask)
      .addEdge(START, "plan")
      .addEdge("plan", "tool")
      .addEdge("tool", "answer")
      .addEdge("answer", END)
      .compile();
    const out = await graph.invoke({ answers: [] });
    expect(out.answers).toHaveLength(2);
    expect(refreshed).toBeGreaterThan(0);
    expect(session.tokenId).not.toBe(first);
  });
});

describe("Mastra (@mastra/core)", () => {
  it("runs a Mastra agent on a model through the broker", async () => {
    const session = await connect({
      broker: dev.url,
      credential: dev.issuerKey,
      scopes: ["llm:complete"],
      agent: "mastra",
    });
    sessions.push(session);
    const before = seen.length;
    const agent = new MastraAgent({
      id: "helper",
      name: "helper",
      instructions: "Answer briefly.",
      model: createOpenAI(session.openai()).chat("gpt-4o-mini"),
    });
    const answer = await agent.generate("Say hello.");
    expect(answer.text).toBe("Hello from the mock upstream.");
    const calls = seen.slice(before);
    expect(calls.some((r) => r.url.includes("/proxy/openai/v1/chat/completions"))).toBe(true);
    for (const r of calls)
      if (r.auth.includes("prs_")) expect(new URL(r.url).origin).toBe(new URL(dev.url).origin);
  });
});
