import { type AuditPage, eventsOf } from "@perishable/protocol";
import { describe, expect, inject, it } from "vitest";
import { SECRETS, startTestBroker } from "./support/broker.js";

describe("what one agent or an unknown caller can make the broker keep", () => {
  it("caps the child grants one grant may create (limits.max_children), revoked ones included", async () => {
    await using t = await startTestBroker({
      redisUrl: inject("redisUrl"),
      configure: (doc) => {
        doc.limits = { ...doc.limits, max_children: 3 };
      },
    });
    const parent = await t.issue({ scopes: ["models:read"], agent: "spawner" });
    const children: string[] = [];
    for (let i = 0; i < 3; i++)
      children.push((await t.issue({ scopes: ["models:read"] }, parent.token)).token);
    await t.call("/v1/tokens/self", children[0], { method: "DELETE" });
    const refused = await t.call("/v1/tokens", parent.token, {
      method: "POST",
      body: JSON.stringify({ scopes: ["models:read"] }),
    });
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({
      error: { code: "delegation_denied", message: expect.stringContaining("max_children") },
    });
    // A child has its own allowance, within the lineage's depth.
    expect((await t.issue({ scopes: ["models:read"] }, children[1]!)).depth).toBe(2);
  });

  it("writes refusals of unknown callers at a bounded rate, counts the rest, and keeps real events", async () => {
    await using t = await startTestBroker({
      redisUrl: inject("redisUrl"),
      configure: (doc) => {
        doc.audit = { ...doc.audit, anonymous_per_second: 5 };
      },
    });
    const { token, grantId } = await t.issue({ scopes: ["models:read"] });
    await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        t.call("/proxy/openai/v1/models", `prs_0000000000_${String(i).padStart(43, "x")}`),
      ),
    );
    expect((await t.call("/proxy/openai/v1/files", token)).status).toBe(403); // a real denial
    await t.broker.server.audit.flush();
    const page = (await (await t.admin("/v1/audit?type=denied&limit=1000")).json()) as AuditPage;
    const anonymous = page.events.filter((e) => e.grantId === null);
    expect(anonymous.length).toBeGreaterThan(0);
    expect(anonymous.length).toBeLessThanOrEqual(15); // 5 a second, and the burst spans at most 3 seconds
    expect(
      eventsOf(page.events, "denied").some((e) => e.grantId === grantId && e.code === "scope_denied"),
    ).toBe(true);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    const suppressed = Number(/^perishable_audit_suppressed (\d+)/m.exec(metrics)?.[1]);
    expect(suppressed + anonymous.length).toBe(200);
    expect(
      (await t.call("/v1/tokens", SECRETS.issuer, { method: "POST", body: '{"scopes":["models:read"]}' }))
        .status,
    ).toBe(201);
  });
});
