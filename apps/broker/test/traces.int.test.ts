import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SECRETS, startTestBroker, type TestBroker } from "./support/broker.js";

/**
 * OpenTelemetry traces to an in-process OTLP/HTTP receiver: a proxied call's span carries the
 * GenAI attributes, the grant and agent, and continues the caller's traceparent; a refusal and
 * the token API have spans too; no token and no key is anywhere in what is exported.
 */
interface OtlpSpan {
  name: string;
  traceId: string;
  parentSpanId?: string;
  attributes: { key: string; value: Record<string, unknown> }[];
}
let receiver: Server;
const bodies: string[] = [];
let t: TestBroker;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d));
    req.on("end", () => {
      if (req.url === "/v1/traces") bodies.push(body);
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const { port } = receiver.address() as AddressInfo;
  t = await startTestBroker({
    configure: (doc) => {
      doc.telemetry = { traces: { endpoint: `http://127.0.0.1:${port}/v1/traces` } };
    },
  });
});
afterAll(async () => {
  await t?.[Symbol.asyncDispose]();
  await new Promise((resolve) => receiver?.close(resolve));
});

const spans = (): OtlpSpan[] =>
  bodies.flatMap((b) =>
    (JSON.parse(b) as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] }).resourceSpans.flatMap(
      (r) => r.scopeSpans.flatMap((s) => s.spans),
    ),
  );
const attr = (span: OtlpSpan, key: string) => {
  const value = span.attributes.find((a) => a.key === key)?.value;
  return value ? (value.stringValue ?? Number(value.intValue ?? value.doubleValue)) : undefined;
};

describe("traces", () => {
  it("exports GenAI spans for proxied calls, refusals and the token API, continuing the caller's trace", async () => {
    const issued = await t.issue({ scopes: ["llm:complete"], agent: "planner", onBehalfOf: "user:alice" });
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const parent = "00f067aa0ba902b7";
    const ok = await t.call("/proxy/openai/v1/chat/completions", issued.token, {
      method: "POST",
      headers: { traceparent: `00-${traceId}-${parent}-01` },
      body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }),
    });
    expect(ok.status).toBe(200);
    const refused = await t.call("/proxy/openai/v1/embeddings", issued.token, {
      method: "POST",
      body: JSON.stringify({ model: "text-embedding-3-small", input: "x" }),
    });
    expect(refused.status).toBe(403);

    const deadline = Date.now() + 8_000;
    while (Date.now() < deadline && !spans().some((s) => attr(s, "perishable.denial") !== undefined))
      await new Promise((resolve) => setTimeout(resolve, 100));
    const chat = spans().find((s) => attr(s, "gen_ai.operation.name") === "chat");
    expect(chat).toBeDefined();
    expect(chat!.traceId).toBe(traceId);
    expect(chat!.parentSpanId).toBe(parent);
    expect(chat!.name).toBe("chat gpt-4o-mini");
    expect(attr(chat!, "gen_ai.request.model")).toBe("gpt-4o-mini");
    expect(attr(chat!, "gen_ai.usage.input_tokens")).toBeGreaterThan(0);
    expect(attr(chat!, "gen_ai.usage.output_tokens")).toBeGreaterThan(0);
    expect(attr(chat!, "http.response.status_code")).toBe(200);
    expect(attr(chat!, "perishable.grant_id")).toBe(issued.grantId);
    expect(attr(chat!, "perishable.agent")).toBe("planner");
    expect(attr(chat!, "perishable.on_behalf_of")).toBe("user:alice");
    const denial = spans().find((s) => attr(s, "perishable.denial") === "scope_denied");
    expect(denial).toBeDefined();
    expect(spans().some((s) => s.name === "POST /v1/tokens")).toBe(true);
    const everything = bodies.join("\n");
    expect(everything).not.toContain("prs_");
    expect(everything).not.toContain(SECRETS.openai);
    expect(everything).not.toContain(SECRETS.issuer);
  });
});
