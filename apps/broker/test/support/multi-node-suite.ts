import {
  type AuditPage,
  eventsOf,
  type GrantDetail,
  type GrantList,
  type TokenResponse,
} from "@perishable/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SECRETS, type TestBroker } from "./broker.js";
import { type ProcessBroker, startProcessBroker } from "./process-broker.js";

/**
 * Two broker nodes on one store: node A in this process, node B the built `perishable start` in its
 * own process. Run on a single Redis (revocation.int.test.ts) and on a Redis Cluster (cluster.int.test.ts).
 */
export const describeMultiNode = (label: string, startA: () => Promise<TestBroker>): void => {
  describe(`multi-node: ${label}`, () => {
    let a: TestBroker;
    let b: ProcessBroker;
    beforeAll(async () => {
      a = await startA();
      b = await startProcessBroker(a.configDocument);
    });
    afterAll(async () => {
      await b?.[Symbol.asyncDispose]();
      await a?.[Symbol.asyncDispose]();
    });

    const models = (url: string, token: string) =>
      fetch(`${url}/proxy/openai/v1/models`, { headers: { authorization: `Bearer ${token}` } });
    const codeOf = async (response: Response) =>
      response.status === 200 ? "ok" : ((await response.json()) as { error: { code: string } }).error.code;
    const issueMany = async (n: number, body: Record<string, unknown>): Promise<TokenResponse[]> => {
      const out: TokenResponse[] = [];
      for (let i = 0; i < n; i += 50) {
        out.push(...(await Promise.all(Array.from({ length: Math.min(50, n - i) }, () => a.issue(body)))));
      }
      return out;
    };
    /** Polls until `check` holds, or fails after `ms`; resolves to how long it took. */
    const within = async (ms: number, check: () => Promise<boolean>): Promise<number> => {
      const start = Date.now();
      while (!(await check())) {
        if (Date.now() - start > ms) throw new Error(`not within ${ms} ms`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      return Date.now() - start;
    };
    const admin = (url: string, path: string, init: RequestInit = {}) =>
      fetch(`${url}${path}`, {
        ...init,
        headers: {
          authorization: `Bearer ${SECRETS.admin}`,
          ...(init.body ? { "content-type": "application/json" } : {}),
        },
      });

    describe("two broker nodes on one Redis", () => {
      it("accept a token issued by either", async () => {
        const fromA = await a.issue({ scopes: ["models:read"] });
        expect(await codeOf(await models(a.url, fromA.token))).toBe("ok");
        expect(await codeOf(await models(b.url, fromA.token))).toBe("ok");
      });

      it("deny on one a grant revoked on the other, within one second", async () => {
        const { token, grantId } = await a.issue({ scopes: ["models:read"] });
        expect(await codeOf(await models(b.url, token))).toBe("ok");
        expect(await (await admin(a.url, `/v1/grants/${grantId}`, { method: "DELETE" })).json()).toEqual({
          revoked: 1,
          connections: 0,
        });
        await within(1000, async () => (await codeOf(await models(b.url, token))) === "token_revoked");
      });

      it("cut off hundreds of one agent's tokens by selector, everywhere, and leave others working", async () => {
        const rogue = await issueMany(300, { scopes: ["models:read"], agent: "rogue" });
        const honest = await issueMany(20, { scopes: ["models:read"], agent: "honest" });
        const response = await admin(b.url, "/v1/revocations", {
          method: "POST",
          body: JSON.stringify({ agent: "rogue" }),
        });
        const result = (await response.json()) as { revoked: number; tokens: number; ruleId: string };
        expect(response.status).toBe(200);
        expect(result).toMatchObject({ revoked: 300, tokens: 300, ruleId: expect.stringMatching(/^rv_/) });
        // Node A never ran the revocation: the rule reached it over pub/sub.
        await within(
          1000,
          async () => (await codeOf(await models(a.url, rogue[0]!.token))) === "token_revoked",
        );
        const codes = await Promise.all(rogue.map(async (t) => codeOf(await models(a.url, t.token))));
        expect(new Set(codes)).toEqual(new Set(["token_revoked"]));
        for (const t of honest.slice(0, 5)) {
          expect(await codeOf(await models(a.url, t.token))).toBe("ok");
          expect(await codeOf(await models(b.url, t.token))).toBe("ok");
        }
        // The keys are really gone.
        const left = (await a.redis!.keys()).filter((k) => rogue.some((t) => k.endsWith(t.grantId)));
        expect(left).toEqual([]);
      });

      it("deny a token issued while a matching bulk revocation runs", async () => {
        await issueMany(1500, { scopes: ["models:read"], agent: "filler" });
        const during: TokenResponse[] = [];
        let done = false;
        const revocation = admin(a.url, "/v1/revocations", {
          method: "POST",
          body: JSON.stringify({ agent: "surge" }),
        }).then((r) => {
          done = true;
          return r.json();
        });
        while (!done) during.push(await a.issue({ scopes: ["models:read"], agent: "surge" }));
        await revocation;
        expect(during.length).toBeGreaterThan(0);
        for (const t of during) {
          expect(await codeOf(await models(a.url, t.token))).toBe("token_revoked");
          expect(await codeOf(await models(b.url, t.token))).toBe("token_revoked");
        }
        // Authority granted after the revocation (past its cut-off margin: 50 ms here) is not affected.
        await new Promise((resolve) => setTimeout(resolve, 100));
        const after = await a.issue({ scopes: ["models:read"], agent: "surge" });
        expect(await codeOf(await models(b.url, after.token))).toBe("ok");
      });
    });

    describe("revocation is terminal and cascades", () => {
      it("denies the whole subtree on the next request, and nothing can undo it", async () => {
        const root = await a.issue({ scopes: ["models:read"], agent: "planner" });
        const child = (await (
          await a.call("/v1/tokens", root.token, {
            method: "POST",
            body: '{"scopes":["models:read"],"agent":"sub"}',
          })
        ).json()) as TokenResponse;
        const grandchild = (await (
          await a.call("/v1/tokens", child.token, { method: "POST", body: '{"scopes":["models:read"]}' })
        ).json()) as TokenResponse;
        expect(
          await (await admin(b.url, `/v1/grants/${child.grantId}`, { method: "DELETE" })).json(),
        ).toEqual({
          revoked: 2,
          connections: 0,
        });
        expect(await codeOf(await models(a.url, child.token))).toBe("token_revoked");
        expect(await codeOf(await models(a.url, grandchild.token))).toBe("token_revoked");
        expect(await codeOf(await models(a.url, root.token))).toBe("ok");
        // No route brings it back, refresh and delegation included.
        for (const method of ["PUT", "PATCH", "POST"]) {
          expect((await admin(a.url, `/v1/grants/${child.grantId}`, { method, body: "{}" })).status).toBe(
            404,
          );
        }
        expect(
          await codeOf(await a.call("/v1/tokens/refresh", child.token, { method: "POST", body: "{}" })),
        ).toBe("token_revoked");
        expect(
          await codeOf(
            await a.call("/v1/tokens", grandchild.token, {
              method: "POST",
              body: '{"scopes":["models:read"]}',
            }),
          ),
        ).toBe("token_revoked");
        expect(
          await (await admin(a.url, `/v1/grants/${child.grantId}`, { method: "DELETE" })).json(),
        ).toEqual({
          revoked: 0,
          connections: 0,
        });
        const detail = (await (await admin(a.url, `/v1/grants/${root.grantId}`)).json()) as GrantDetail;
        expect(detail.subtree.map((g) => [g.grantId, g.status])).toEqual([
          [child.grantId, "revoked"],
          [grandchild.grantId, "revoked"],
        ]);
      });

      it("revokes one token by id and leaves its grant's other tokens working", async () => {
        const first = await a.issue({ scopes: ["models:read"] });
        const second = (await (
          await a.call("/v1/tokens/refresh", first.token, { method: "POST", body: "{}" })
        ).json()) as TokenResponse;
        expect(
          await (await admin(a.url, `/v1/tokens/${first.tokenId}`, { method: "DELETE" })).json(),
        ).toEqual({
          revoked: 0,
          tokens: 1,
          connections: 0,
        });
        expect(await codeOf(await models(b.url, first.token))).toBe("token_revoked");
        expect(await codeOf(await models(b.url, second.token))).toBe("ok");
        expect(
          (await admin(a.url, "/v1/tokens/tk_0123456789abcdefghjkmnpqrs", { method: "DELETE" })).status,
        ).toBe(404);
      });
    });

    describe("the admin API", () => {
      it("refuses anything but an admin key", async () => {
        for (const credential of [undefined, SECRETS.issuer, "pak_wrong-admin-key-0123456789abc"]) {
          const response = await fetch(`${a.url}/v1/grants`, {
            headers: credential ? { authorization: `Bearer ${credential}` } : {},
          });
          expect(response.status).toBe(401);
        }
        const { token } = await a.issue({ scopes: ["models:read"] });
        expect(
          (await fetch(`${a.url}/v1/audit`, { headers: { authorization: `Bearer ${token}` } })).status,
        ).toBe(401);
      });

      it("validates ids and queries", async () => {
        expect(await codeOf(await admin(a.url, "/v1/grants/not-a-grant"))).toBe("bad_request");
        expect(await codeOf(await admin(a.url, "/v1/grants/gr_0123456789abcdefghjkmnpqrs"))).toBe(
          "not_found",
        );
        expect(await codeOf(await admin(a.url, "/v1/grants?limit=0"))).toBe("bad_request");
        expect(await codeOf(await admin(a.url, "/v1/grants?colour=blue"))).toBe("bad_request");
        expect(await codeOf(await admin(a.url, "/v1/audit?type=nonsense"))).toBe("bad_request");
        expect(await codeOf(await admin(a.url, "/v1/revocations", { method: "POST", body: "{}" }))).toBe(
          "bad_request",
        );
        expect(
          await codeOf(
            await admin(a.url, "/v1/revocations", {
              method: "POST",
              body: JSON.stringify({
                issuedAfter: "2026-01-02T00:00:00Z",
                issuedBefore: "2026-01-01T00:00:00Z",
              }),
            }),
          ),
        ).toBe("bad_request");
      });

      it("previews a bulk revocation without revoking, and looks a token up by its id", async () => {
        const tokens = await issueMany(5, { scopes: ["models:read"], agent: "previewed" });
        const preview = await admin(b.url, "/v1/revocations?dryRun=true", {
          method: "POST",
          body: JSON.stringify({ agent: "previewed" }),
        });
        expect(await preview.json()).toEqual({ revoked: 5, connections: 0, dryRun: true });
        expect(await codeOf(await models(a.url, tokens[0]!.token))).toBe("ok");
        const lookup = await (await admin(a.url, `/v1/tokens/${tokens[0]!.tokenId}`)).json();
        expect(lookup).toMatchObject({
          tokenId: tokens[0]!.tokenId,
          grantId: tokens[0]!.grantId,
          status: "live",
        });
        expect(JSON.stringify(lookup)).not.toContain("prs_");
        expect((await admin(a.url, "/v1/tokens/tk_0123456789abcdefghjkmnpqrs")).status).toBe(404);
      });

      it("lists live grants by agent and scope, and shows a lineage", async () => {
        const root = await a.issue({ scopes: ["models:read", "llm:embed"], agent: "lister" });
        const child = (await (
          await a.call("/v1/tokens", root.token, {
            method: "POST",
            body: '{"scopes":["llm:embed"],"agent":"lister-sub"}',
          })
        ).json()) as TokenResponse;
        const byAgent = (await (await admin(b.url, "/v1/grants?agent=lister")).json()) as GrantList;
        expect(byAgent.grants.map((g) => g.grantId)).toEqual([root.grantId]);
        expect(byAgent.grants[0]).toMatchObject({
          status: "live",
          depth: 0,
          scopes: ["models:read", "llm:embed"],
          tokenExpiresAt: root.expiresAt,
        });
        const byRoot = (await (await admin(b.url, `/v1/grants?root=${root.grantId}`)).json()) as GrantList;
        expect(byRoot.grants.map((g) => g.grantId).sort()).toEqual([root.grantId, child.grantId].sort());
        const detail = (await (await admin(b.url, `/v1/grants/${child.grantId}`)).json()) as GrantDetail;
        expect(detail.grant).toMatchObject({
          grantId: child.grantId,
          parentGrantId: root.grantId,
          agent: "lister-sub",
        });
        expect(detail.ancestors.map((g) => g.grantId)).toEqual([root.grantId]);
      });

      it("reads the audit trail with filters and a cursor", async () => {
        const { token, grantId } = await a.issue({ scopes: ["models:read"], agent: "audited" });
        await models(a.url, token);
        await models(b.url, token);
        // Node B writes its events on its own short timer.
        let page: AuditPage = { events: [], next: null };
        await within(2000, async () => {
          page = (await (await admin(a.url, `/v1/audit?grantId=${grantId}`)).json()) as AuditPage;
          return page.events.length === 3;
        });
        expect(page.events.map((e) => e.type)).toEqual(["issued", "used", "used"]);
        const later = await a.call("/v1/tokens/self", token, { method: "DELETE" });
        expect(later.status).toBe(200);
        await new Promise((resolve) => setTimeout(resolve, 200));
        const next = (await (
          await admin(b.url, `/v1/audit?after=${page.next}&agent=audited`)
        ).json()) as AuditPage;
        expect(next.events.map((e) => [e.type, e.grantId, e.type === "revoked" ? e.by : null])).toEqual([
          ["revoked", grantId, "self (audited)"],
        ]);
        const revocations = (await (
          await admin(a.url, "/v1/audit?type=revoked&limit=1000")
        ).json()) as AuditPage;
        const bulk = eventsOf(revocations.events, "revoked").find((e) => e.selector?.agent === "rogue");
        expect(bulk).toMatchObject({ by: "admin secops", count: 300, rule: expect.stringMatching(/^rv_/) });
      });
    });

    describe("expiry and metrics", () => {
      it("writes an expired event within a few seconds of a grant's end", async () => {
        const { grantId } = await a.issue({ scopes: ["models:read"], ttl: 1, lifetime: 1, agent: "brief" });
        const took = await within(5000, async () => {
          const page = (await (
            await admin(a.url, `/v1/audit?grantId=${grantId}&type=expired`)
          ).json()) as AuditPage;
          return page.events.length === 1 && eventsOf(page.events, "expired")[0]?.reason === "grant";
        });
        expect(took).toBeLessThan(5000);
      });

      it("exposes Prometheus metrics without ids or secrets", async () => {
        const text = await (await fetch(`${a.url}/metrics`)).text();
        for (const name of [
          "perishable_proxy_requests_total",
          "perishable_denials_total",
          "perishable_tokens_total",
          "perishable_credential_age_seconds_bucket",
          "perishable_broker_overhead_seconds_bucket",
          "perishable_upstream_latency_seconds_bucket",
          "perishable_live_grants",
          "perishable_audit_backlog",
          "perishable_revocations_total",
          "perishable_process_cpu_seconds_total",
        ]) {
          expect(text).toContain(name);
        }
        expect(text).toMatch(/perishable_denials_total\{code="token_revoked"\} \d+/);
        expect(text).not.toMatch(/prs_|gr_|tk_|pik_|pak_|sk-/);
      });
    });
  });
};
