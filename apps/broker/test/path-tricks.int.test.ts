import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startTestBroker, type TestBroker } from "./support/broker.js";
import { rawRequest } from "./support/raw-http.js";

/**
 * Requests that a token holding `llm:complete` (POST /v1/chat/completions on openai) and
 * `models:read` (GET /v1/models, /v1/models/*) must not get through, whatever the spelling.
 * Kept as data beside the code that must reject them.
 */
interface Trick {
  readonly method: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
}

const TRICKS: readonly Trick[] = [
  { method: "POST", path: "/proxy/openai/v1/chat/completions/../../files" },
  { method: "POST", path: "/proxy/openai/v1/chat/completions/.." },
  { method: "POST", path: "/proxy/openai/v1/%2e%2e/v1/chat/completions" },
  { method: "POST", path: "/proxy/openai/v1/chat/%2E%2E/chat/completions" },
  { method: "POST", path: "/proxy/openai/v1/chat/completions%2f..%2f..%2ffiles" },
  { method: "POST", path: "/proxy/openai/v1/chat/completions%2F" },
  { method: "POST", path: "/proxy/openai/v1/chat%5ccompletions" },
  { method: "POST", path: "/proxy/openai/v1\\chat\\completions" },
  { method: "POST", path: "/proxy/openai//v1/chat/completions" },
  { method: "POST", path: "/proxy/openai/v1//chat/completions" },
  { method: "POST", path: "/proxy/openai/./v1/chat/completions" },
  { method: "POST", path: "/proxy/openai/v1/chat/completions/" },
  { method: "POST", path: "/proxy/openai/v1/chat/completions;jsessionid=1" },
  { method: "POST", path: "/proxy/openai/v1/chat/completions/..;/..;/files" },
  { method: "POST", path: "/proxy/openai/v1/chat/completions%00" },
  { method: "POST", path: "/proxy/openai/v1/chat/completions%252e%252e" },
  { method: "POST", path: "/proxy/openai/v1/chat/completions%" },
  { method: "POST", path: "/proxy/openai/V1/chat/completions" },
  { method: "POST", path: "/proxy/openai/%76%31/chat/completions" },
  { method: "POST", path: "/proxy/openai/v1/chat/completionsX" },
  { method: "POST", path: "/proxy/openai/v1/chat/completions#fragment" },
  { method: "POST", path: "/proxy/open%61i/v1/chat/completions" },
  { method: "POST", path: "/proxy/OPENAI/v1/chat/completions" },
  { method: "POST", path: "/proxy/../proxy/openai/v1/chat/completions" },
  { method: "POST", path: "/proxy/anthropic/v1/chat/completions" },
  { method: "POST", path: "/proxy/openai" },
  { method: "POST", path: "/proxy/openai/" },
  { method: "POST", path: "/proxy" },
  { method: "POST", path: "/PROXY/openai/v1/chat/completions" },
  { method: "POST", path: "http://evil.example/proxy/openai/v1/chat/completions" },
  { method: "GET", path: "/proxy/openai/v1/chat/completions" },
  { method: "PUT", path: "/proxy/openai/v1/chat/completions" },
  { method: "DELETE", path: "/proxy/openai/v1/chat/completions" },
  { method: "PATCH", path: "/proxy/openai/v1/chat/completions" },
  { method: "OPTIONS", path: "/proxy/openai/v1/chat/completions" },
  { method: "HEAD", path: "/proxy/openai/v1/models" },
  { method: "GET", path: "/proxy/openai/v1/chat/completions", headers: { "x-http-method-override": "POST" } },
  { method: "GET", path: "/proxy/openai/v1/chat/completions", headers: { "x-method-override": "POST" } },
  { method: "POST", path: "/proxy/openai/v1/models" },
  { method: "GET", path: "/proxy/openai/v1/models/gpt-4o/../../files" },
  { method: "GET", path: "/proxy/openai/v1/models/a/b" },
  { method: "GET", path: "/proxy/openai/v1/models/%2e%2e" },
  { method: "GET", path: "/proxy/openai/v1/models/.." },
  { method: "GET", path: "/proxy/openai/v1/models/%2Fv1%2Ffiles" },
];

let t: TestBroker;
let token: string;
beforeAll(async () => {
  t = await startTestBroker({ redisUrl: inject("redisUrl") });
  token = (await t.issue({ scopes: ["llm:complete", "models:read"] })).token;
});
afterAll(async () => {
  await t?.[Symbol.asyncDispose]();
});

describe("path and method tricks", () => {
  it.each(TRICKS)(
    "$method $path is denied and never reaches the upstream",
    async ({ method, path, headers = {} }) => {
      const before = t.mock.requests.length;
      const response = await rawRequest(t.url, {
        method,
        path,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...headers },
        body: method === "GET" || method === "HEAD" ? undefined : '{"model":"gpt-4o-mini","messages":[]}',
      });
      expect([400, 403, 404]).toContain(response.status);
      if (method !== "HEAD") {
        const body = JSON.parse(response.body) as { error: { code: string; requestId: string } };
        expect(["bad_request", "scope_denied", "upstream_unknown", "not_found"]).toContain(body.error.code);
      }
      expect(t.mock.requests.length).toBe(before);
    },
  );

  it("lets the plain forms through (the table above is not denied for some other reason)", async () => {
    const post = await rawRequest(t.url, {
      method: "POST",
      path: "/proxy/openai/v1/chat/completions?trace=1",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: '{"model":"gpt-4o-mini","messages":[]}',
    });
    expect(post.status).toBe(200);
    const get = await rawRequest(t.url, {
      path: "/proxy/openai/v1/models/gpt-4o",
      headers: { authorization: `Bearer ${token}` },
    });
    expect(get.status).toBe(200);
  });
});
