import { once } from "node:events";
import { request } from "node:http";
import { AuditEvent, type TokenResponse } from "@perishable/protocol";
import { describe, expect, it } from "vitest";
import type { MemoryStore } from "../src/store/memory/memory-store.js";
import { SECRETS, startTestBroker } from "./support/broker.js";
import { Gate } from "./support/gate.js";

describe("the broker on the in-memory store", () => {
  it("issues, proxies, refreshes, delegates, revokes and audits like the Redis one", async () => {
    await using t = await startTestBroker();
    const root = await t.issue({ scopes: ["models:read"], agent: "planner" });
    expect((await t.call("/proxy/openai/v1/models", root.token)).status).toBe(200);
    const refreshed = (await (
      await t.call("/v1/tokens/refresh", root.token, { method: "POST", body: "{}" })
    ).json()) as TokenResponse;
    const child = (await (
      await t.call("/v1/tokens", refreshed.token, {
        method: "POST",
        body: JSON.stringify({ scopes: ["models:read"] }),
      })
    ).json()) as TokenResponse;
    expect(child.parentGrantId).toBe(root.grantId);
    expect(await (await t.call("/v1/tokens/self", root.token, { method: "DELETE" })).json()).toEqual({
      revoked: 2,
      connections: 0,
    });
    const denied = await t.call("/proxy/openai/v1/models", child.token);
    expect(await denied.json()).toMatchObject({ error: { code: "token_revoked" } });
    await t.broker.server.audit.flush();
    const trail = (t.broker.store as MemoryStore).auditEvents();
    expect(trail.map((e) => e.type)).toEqual([
      "issued",
      "used",
      "refreshed",
      "delegated",
      "revoked",
      "denied",
    ]);
    // Each event is exactly its type's shape on the wire: nothing missing, nothing extra.
    for (const event of trail) expect(AuditEvent.parse(event)).toEqual(event);
    expect(t.mock.requests.every((r) => r.headers.authorization === `Bearer ${SECRETS.openai}`)).toBe(true);
  });
});

describe("graceful shutdown", () => {
  it("lets an in-flight stream finish, refuses new connections, and closes", async () => {
    const gate = new Gate();
    await using t = await startTestBroker({ mock: { chunks: 5, chunkDelayMs: 20, streamGate: gate.wait } });
    const { token } = await t.issue({ scopes: ["llm:complete"] });
    gate.arm();
    const response = await t.call("/proxy/openai/v1/chat/completions", token, {
      method: "POST",
      body: JSON.stringify({ model: "gpt-4o-mini", stream: true, messages: [] }),
    });
    const reader = response.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain("chunk 0");

    const closed = t.broker.close(10_000);
    // The listening socket is closed at once: a new connection is refused.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const port = new URL(t.url).port;
    const refused = request({ host: "127.0.0.1", port, path: "/healthz", agent: false }).end();
    const [error] = (await once(refused, "error")) as [NodeJS.ErrnoException];
    expect(error.code).toBe("ECONNREFUSED");

    gate.release();
    let rest = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(rest).toContain("chunk 4");
    expect(rest).toContain("[DONE]");
    await closed;
  });
});
