import { isErrorCode } from "@perishable/protocol";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { SECRETS, startTestBroker, type TestBroker } from "./support/broker.js";
import { rawRequest } from "./support/raw-http.js";

let t: TestBroker;
let token: string;
beforeAll(async () => {
  t = await startTestBroker({ redisUrl: inject("redisUrl") });
  token = (await t.issue({ scopes: ["llm:complete", "llm:bounded", "models:read", "files:rw"] })).token;
});
afterAll(async () => {
  await t?.[Symbol.asyncDispose]();
});

const segment = fc.oneof(
  fc.constantFrom(
    "v1",
    "proxy",
    "openai",
    "files",
    "tokens",
    "self",
    "refresh",
    "chat",
    "completions",
    "models",
    "..",
    ".",
    "",
    "%2e",
    "%2F",
    "%",
    "%zz",
    "%00",
    ";",
    "~",
    "*",
  ),
  fc.stringMatching(/^[A-Za-z0-9._~%-]{0,12}$/),
);
const path = fc
  .tuple(
    fc.constantFrom("/proxy/openai", "/proxy/files", "/v1/tokens", "/v1", "", "/proxy"),
    fc.array(segment, { maxLength: 5 }),
    fc.constantFrom("", "?a=b", "?x=%zz", "?"),
  )
  .map(([prefix, segments, query]) => `${prefix}/${segments.join("/")}${query}`);
const credential = fc.oneof(
  fc.constant(undefined),
  fc.constant("TOKEN"),
  fc.constant(SECRETS.issuer),
  fc.stringMatching(/^prs_[A-Za-z0-9_-]{0,60}$/),
  fc.string({ maxLength: 40 }).filter((s) => /^[\x21-\x7e]*$/.test(s)),
);
const body = fc.oneof(
  fc.constant(undefined),
  fc.constant('{"scopes":["models:read"]}'),
  fc.constant('{"model":"gpt-4o-mini","messages":[],"max_tokens":10}'),
  fc.json({ maxDepth: 3 }),
  fc.string({ maxLength: 200 }),
);

describe("hostile and random input", () => {
  it("never gets a 500 or a crash, and every error is the envelope with a known code", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"),
        path,
        credential,
        fc.constantFrom("authorization", "x-api-key", "api-key"),
        body,
        fc.constantFrom(
          "application/json",
          "text/plain",
          "application/x-www-form-urlencoded",
          "application/json; charset=utf-8",
        ),
        async (method, target, cred, header, payload, type) => {
          const value = cred === "TOKEN" ? token : cred;
          const headers: Record<string, string> = { "content-type": type };
          if (value !== undefined) headers[header] = header === "authorization" ? `Bearer ${value}` : value;
          const response = await rawRequest(t.url, {
            method,
            path: target,
            headers,
            body: method === "GET" ? undefined : payload,
          });
          expect(response.status, `${method} ${target}`).toBeLessThan(500);
          if (response.status >= 400) {
            const parsed = JSON.parse(response.body) as { error?: { code?: unknown; message?: unknown } };
            expect(isErrorCode(parsed.error?.code), response.body).toBe(true);
            expect(response.body).not.toContain(SECRETS.issuer);
            if (value && value.length >= 12) expect(response.body).not.toContain(value);
          }
        },
      ),
      { numRuns: 300 },
    );
    // And the broker is still serving.
    expect((await t.call("/healthz", undefined)).status).toBe(200);
  });

  it("answers a request the HTTP parser rejects with the envelope and closes", async () => {
    const { connect } = await import("node:net");
    const { port } = new URL(t.url);
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(Number(port), "127.0.0.1", () =>
        socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"),
      );
      let data = "";
      socket.on("data", (d) => (data += d));
      socket.on("close", () => resolve(data));
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400/);
    expect(answer).toContain('"code":"bad_request"');
  });
});
