import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestBroker, type TestBroker } from "./support/broker.js";

let t: TestBroker;
let token: string;
beforeAll(async () => {
  t = await startTestBroker({
    configure: (doc) => {
      doc.scopes["llm:agent"] = {
        upstream: "openai",
        endpoints: ["/v1/chat/completions", "/v1/responses"],
        methods: ["POST"],
        tools: ["get_weather", "web_search*"],
      };
      doc.scopes["claude:agent"] = {
        upstream: "anthropic",
        endpoints: ["/v1/messages"],
        methods: ["POST"],
        tools: ["get_weather", "web_search_*"],
      };
      const orchestrator = doc.issuers![0] as { scopes: string[] };
      orchestrator.scopes.push("llm:agent", "claude:agent");
    },
  });
  token = (await t.issue({ scopes: ["llm:agent", "claude:agent"] })).token;
});
afterAll(async () => t?.[Symbol.asyncDispose]());

const weather = {
  type: "function" as const,
  function: { name: "get_weather", parameters: { type: "object", properties: {} } },
};
const deleteRepo = {
  type: "function" as const,
  function: { name: "delete_repo", parameters: { type: "object", properties: {} } },
};

describe("tool scopes, with the real clients", () => {
  it("lets the openai client declare an allowed function tool, and refuses any other before OpenAI sees it", async () => {
    const openai = new OpenAI({ baseURL: `${t.url}/proxy/openai/v1`, apiKey: token, maxRetries: 0 });
    const messages = [{ role: "user" as const, content: "weather?" }];
    const ok = await openai.chat.completions.create({ model: "gpt-4o-mini", messages, tools: [weather] });
    expect(ok.choices[0]).toBeDefined();
    const before = t.mock.requests.length;
    const refused = await openai.chat.completions
      .create({ model: "gpt-4o-mini", messages, tools: [weather, deleteRepo] })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((refused as Error).message).toContain('tool "delete_repo" is not allowed');
    const forced = await openai.chat.completions
      .create({
        model: "gpt-4o-mini",
        messages,
        tools: [weather],
        tool_choice: { type: "function", function: { name: "delete_repo" } },
      })
      .catch((e: unknown) => e);
    expect((forced as Error).message).toContain('tool_choice forces "delete_repo"');
    expect(t.mock.requests.length).toBe(before);
  });

  it("matches Responses built-in tools by their type", async () => {
    const openai = new OpenAI({ baseURL: `${t.url}/proxy/openai/v1`, apiKey: token, maxRetries: 0 });
    const ok = await openai.responses.create({
      model: "gpt-4o-mini",
      input: "news?",
      tools: [{ type: "web_search_preview" }],
    });
    expect(ok.output_text).toContain("Hello");
    const refused = await openai.responses
      .create({
        model: "gpt-4o-mini",
        input: "run it",
        tools: [{ type: "code_interpreter", container: { type: "auto" } }],
      })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((refused as Error).message).toContain('tool "code_interpreter" is not allowed');
  });

  it("holds the Anthropic client to the same list: named tools by name, server tools by dated type", async () => {
    const anthropic = new Anthropic({ baseURL: `${t.url}/proxy/anthropic`, apiKey: token, maxRetries: 0 });
    const messages = [{ role: "user" as const, content: "hi" }];
    const ok = await anthropic.messages.create({
      model: "claude-sonnet-4-5",
      max_tokens: 100,
      messages,
      tools: [
        { name: "get_weather", input_schema: { type: "object", properties: {} } },
        { type: "web_search_20250305", name: "web_search" },
      ],
    });
    expect(ok.content).toBeDefined();
    const refused = await anthropic.messages
      .create({
        model: "claude-sonnet-4-5",
        max_tokens: 100,
        messages,
        tools: [{ type: "bash_20250124", name: "bash" }],
      })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(Anthropic.PermissionDeniedError);
    // The Anthropic client puts the broker's envelope in its message as JSON.
    expect((refused as Error).message).toMatch(/tool \\?"bash_20250124\\?" is not allowed/);
    const forced = await anthropic.messages
      .create({
        model: "claude-sonnet-4-5",
        max_tokens: 100,
        messages,
        tool_choice: { type: "tool", name: "transfer_funds" },
      })
      .catch((e: unknown) => e);
    expect((forced as Error).message).toMatch(/tool_choice forces \\?"transfer_funds\\?"/);
  });

  it("refuses a body whose tools cannot be read one way only with 400, and audits it", async () => {
    const call = (body: unknown, headers: Record<string, string> = {}) =>
      t.call("/proxy/openai/v1/chat/completions", token, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify(body),
      });
    const base = { model: "gpt-4o-mini", messages: [] };
    const variant = await call({
      ...base,
      tools: [{ type: "function", function: { name: "get_weather", NAME: "delete_repo" } }],
    });
    expect(variant.status).toBe(400);
    expect(await variant.json()).toMatchObject({
      error: { code: "bad_request", message: expect.stringContaining("differ only in case") },
    });
    expect((await call({ ...base, tools: { name: "get_weather" } })).status).toBe(400);
    // A top-level key a case-folding reader would take for `tools` is refused too.
    const shadow = await call({ ...base, tools: [weather], Tools: [deleteRepo] });
    expect(shadow.status).toBe(403);
    expect(await shadow.json()).toMatchObject({ error: { code: "constraint_denied" } });
    await t.broker.server.audit.flush();
    const denied = (await (await t.admin("/v1/audit?type=denied&limit=100")).json()) as {
      events: { rule?: string }[];
    };
    expect(denied.events.some((e) => e.rule?.includes('tool "delete_repo" is not allowed'))).toBe(true);
  });
});
