import type { SelfResponse, TokenResponse } from "@perishable/protocol";
import { SelfResponse as SelfSchema, TokenResponse as TokenSchema } from "@perishable/protocol";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { SECRETS, startTestBroker, type TestBroker } from "./support/broker.js";

let t: TestBroker;
beforeAll(async () => {
  t = await startTestBroker({ redisUrl: inject("redisUrl") });
});
afterAll(async () => {
  await t?.[Symbol.asyncDispose]();
});

const post = (path: string, credential: string | undefined, body: unknown) =>
  t.call(path, credential, { method: "POST", body: typeof body === "string" ? body : JSON.stringify(body) });
const errorOf = async (response: Response) => ({
  status: response.status,
  ...((await response.json()) as { error: { code: string } }).error,
});
const models = (token: string) => t.call("/proxy/openai/v1/models", token);

describe("POST /v1/tokens with an issuer key", () => {
  it("issues a root grant with the wire shape of the contract", async () => {
    const before = Date.now();
    const response = await post("/v1/tokens", SECRETS.issuer, {
      scopes: ["models:read", "llm:complete", "models:read"],
      ttl: 60,
      agent: "planner",
      task: "t-42",
      lifetime: 600,
      metadata: { ticket: "SEC-1" },
    });
    expect(response.status).toBe(201);
    expect(response.headers.get("x-perishable-request-id")).toMatch(/^req_/);
    const body = TokenSchema.parse(await response.json());
    expect(body).toMatchObject({
      parentGrantId: null,
      rootGrantId: body.grantId,
      agent: "planner",
      task: "t-42",
      scopes: ["models:read", "llm:complete"],
      depth: 0,
    });
    const expiresAt = Date.parse(body.expiresAt);
    expect(expiresAt - Date.parse(body.issuedAt)).toBe(60_000);
    expect(Date.parse(body.notAfter) - Date.parse(body.issuedAt)).toBe(600_000);
    expect(Date.parse(body.issuedAt)).toBeGreaterThanOrEqual(before - 5);
  });

  it("defaults ttl to the issuer's and lifetime to max_lifetime, and the agent to the issuer's name", async () => {
    const body = await t.issue({ scopes: ["models:read"] });
    expect(Date.parse(body.expiresAt) - Date.parse(body.issuedAt)).toBe(120_000);
    expect(Date.parse(body.notAfter) - Date.parse(body.issuedAt)).toBe(86_400_000);
    expect(body.agent).toBe("orchestrator");
  });

  it.each([
    [{ scopes: ["models:read"], ttl: 601 }, 400, "ttl_exceeded"],
    [{ scopes: ["models:read"], lifetime: 86_401 }, 400, "ttl_exceeded"],
    [{ scopes: [] }, 400, "bad_request"],
    [{ scopes: ["nope:nope"] }, 400, "bad_request"],
    [{ scopes: ["models:read"], ttl: 1.5 }, 400, "bad_request"],
    [{ scopes: ["models:read"], ttl: "60" }, 400, "bad_request"],
    [{ scopes: ["models:read"], ttl: 0 }, 400, "bad_request"],
    [{ scopes: ["models:read"], tll: 60 }, 400, "bad_request"],
    [{ scopes: ["models:read"], agent: "bad agent name" }, 400, "bad_request"],
    [{ scopes: ["models:read"], metadata: { k: 1 } }, 400, "bad_request"],
    [{ scopes: "models:read" }, 400, "bad_request"],
    [{}, 400, "bad_request"],
    [[], 400, "bad_request"],
    ["null", 400, "bad_request"],
    ['{"scopes": ["models:read"]', 400, "bad_request"],
    ['{"__proto__": {"admin": true}, "scopes": ["models:read"]}', 400, "bad_request"],
  ])("refuses %j with %i %s", async (body, status, code) => {
    expect(await errorOf(await post("/v1/tokens", SECRETS.issuer, body))).toMatchObject({ status, code });
  });

  it("holds an issuer to its scope ceiling and its own max_ttl", async () => {
    expect(
      await errorOf(await post("/v1/tokens", SECRETS.limitedIssuer, { scopes: ["llm:complete"] })),
    ).toMatchObject({
      status: 403,
      code: "scope_denied",
    });
    expect(
      await errorOf(await post("/v1/tokens", SECRETS.limitedIssuer, { scopes: ["llm:embed"], ttl: 61 })),
    ).toMatchObject({
      code: "ttl_exceeded",
    });
    expect(
      await errorOf(
        await post("/v1/tokens", SECRETS.limitedIssuer, { scopes: ["llm:embed"], lifetime: 601 }),
      ),
    ).toMatchObject({
      code: "ttl_exceeded",
    });
    expect((await post("/v1/tokens", SECRETS.limitedIssuer, { scopes: ["llm:embed"], ttl: 60 })).status).toBe(
      201,
    );
  });

  it.each([
    ["no credential", undefined, 401, "unauthenticated"],
    ["an unknown key", "pik_not-a-configured-key-0123456789", 401, "unauthenticated"],
    ["the admin key", SECRETS.admin, 401, "unauthenticated"],
    ["an issuer key one character short", SECRETS.issuer.slice(0, -1), 401, "unauthenticated"],
    ["a malformed token", "prs_nonsense", 401, "token_invalid"],
    ["an unknown token", `prs_0123456789_${"A".repeat(43)}`, 401, "token_invalid"],
  ])("refuses %s", async (_label, credential, status, code) => {
    expect(await errorOf(await post("/v1/tokens", credential, { scopes: ["models:read"] }))).toMatchObject({
      status,
      code,
    });
  });

  it("refuses a non-Bearer Authorization header and conflicting credentials", async () => {
    const basic = await t.call("/v1/tokens", undefined, {
      method: "POST",
      body: "{}",
      headers: { authorization: `Basic ${SECRETS.issuer}`, "content-type": "application/json" },
    });
    expect(await errorOf(basic)).toMatchObject({ status: 401, code: "unauthenticated" });
    const both = await t.call("/v1/tokens", SECRETS.issuer, {
      method: "POST",
      body: JSON.stringify({ scopes: ["models:read"] }),
      headers: { "x-api-key": SECRETS.limitedIssuer },
    });
    expect(await errorOf(both)).toMatchObject({ status: 400, code: "bad_request" });
  });

  it("refuses a body larger than the API accepts, and a body that is not JSON", async () => {
    const huge = await post("/v1/tokens", SECRETS.issuer, {
      scopes: ["models:read"],
      task: "x".repeat(70_000),
    });
    expect(await errorOf(huge)).toMatchObject({ status: 413, code: "payload_too_large" });
    const text = await t.call("/v1/tokens", SECRETS.issuer, {
      method: "POST",
      body: "scopes=x",
      headers: { "content-type": "text/plain" },
    });
    expect(await errorOf(text)).toMatchObject({ status: 400, code: "bad_request" });
  });
});

describe("refresh, self and revoke", () => {
  it("refreshes into a new token; the old one keeps working to its own expiry", async () => {
    const first = await t.issue({ scopes: ["models:read"], ttl: 30, agent: "worker" });
    const response = await post("/v1/tokens/refresh", first.token, {});
    expect(response.status).toBe(201);
    const second = TokenSchema.parse(await response.json());
    expect(second).toMatchObject({
      grantId: first.grantId,
      rootGrantId: first.rootGrantId,
      agent: "worker",
      notAfter: first.notAfter,
    });
    expect(second.token).not.toBe(first.token);
    expect(second.tokenId).not.toBe(first.tokenId);
    expect(Date.parse(second.expiresAt) - Date.parse(second.issuedAt)).toBe(30_000);
    expect((await models(first.token)).status).toBe(200);
    expect((await models(second.token)).status).toBe(200);
  });

  it("refreshes with no body at all, and with a ttl within the grant's max_ttl only", async () => {
    const first = await t.issue({ scopes: ["models:read"] });
    const bare = await t.call("/v1/tokens/refresh", first.token, { method: "POST" });
    expect(bare.status).toBe(201);
    const longer = await post("/v1/tokens/refresh", first.token, { ttl: 600 });
    expect(longer.status).toBe(201);
    expect(await errorOf(await post("/v1/tokens/refresh", first.token, { ttl: 601 }))).toMatchObject({
      status: 400,
      code: "ttl_exceeded",
    });
    expect(await errorOf(await post("/v1/tokens/refresh", SECRETS.issuer, {}))).toMatchObject({
      status: 401,
      code: "unauthenticated",
    });
  });

  it("never refreshes past the grant's notAfter", async () => {
    const first = await t.issue({ scopes: ["models:read"], ttl: 60, lifetime: 20 });
    expect(Date.parse(first.expiresAt)).toBe(Date.parse(first.notAfter));
    const second = (await (
      await post("/v1/tokens/refresh", first.token, { ttl: 600 })
    ).json()) as TokenResponse;
    expect(Date.parse(second.expiresAt)).toBe(Date.parse(first.notAfter));
  });

  it("describes itself: grant, empty lineage for a root, time left", async () => {
    const issued = await t.issue({
      scopes: ["models:read"],
      ttl: 90,
      agent: "reader",
      metadata: { run: "7" },
    });
    const self: SelfResponse = SelfSchema.parse(await (await t.call("/v1/tokens/self", issued.token)).json());
    expect(self).toMatchObject({
      tokenId: issued.tokenId,
      expiresAt: issued.expiresAt,
      lineage: [],
      usesLeft: null,
      grant: {
        grantId: issued.grantId,
        agent: "reader",
        issuer: "orchestrator",
        metadata: { run: "7" },
        depth: 0,
      },
    });
    expect(self.expiresIn).toBeGreaterThan(85);
    expect(self.expiresIn).toBeLessThanOrEqual(90);
  });

  it("revokes itself: every token of the grant is refused with token_revoked, refresh included", async () => {
    const first = await t.issue({ scopes: ["models:read"] });
    const second = (await (await post("/v1/tokens/refresh", first.token, {})).json()) as TokenResponse;
    const revoked = await t.call("/v1/tokens/self", second.token, { method: "DELETE" });
    expect(await revoked.json()).toEqual({ revoked: 1, connections: 0 });
    for (const token of [first.token, second.token]) {
      expect(await errorOf(await models(token))).toMatchObject({ status: 401, code: "token_revoked" });
      expect(await errorOf(await post("/v1/tokens/refresh", token, {}))).toMatchObject({
        code: "token_revoked",
      });
      expect(await errorOf(await t.call("/v1/tokens/self", token))).toMatchObject({ code: "token_revoked" });
    }
  });

  it("answers a revocation asked again as the first, and a token revoked alone cannot end its grant", async () => {
    const self = (token: string) => t.call("/v1/tokens/self", token, { method: "DELETE" });
    // Asked again, by the same token or another of the grant or of a grant below: answered, nothing more revoked.
    const first = await t.issue({ scopes: ["models:read"] });
    const second = (await (await post("/v1/tokens/refresh", first.token, {})).json()) as TokenResponse;
    const child = (await (
      await post("/v1/tokens", first.token, { scopes: ["models:read"] })
    ).json()) as TokenResponse;
    expect(await (await self(first.token)).json()).toEqual({ revoked: 2, connections: 0 });
    for (const token of [first.token, second.token, child.token]) {
      const again = await self(token);
      expect(again.status).toBe(200);
      expect(await again.json()).toEqual({ revoked: 0, connections: 0 });
    }
    // A grant a selector purged: nothing of it is left to revoke or confirm, and its token hears that it was revoked.
    const selected = await t.issue({ scopes: ["models:read"], agent: "selected-then-self" });
    const bulk = await t.admin("/v1/revocations", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ agent: "selected-then-self" }),
    });
    expect(bulk.status).toBe(200);
    expect(await errorOf(await self(selected.token))).toMatchObject({ status: 401, code: "token_revoked" });
    // One token revoked by its id: its grant lives on, and that token has no say over it any more.
    const kept = await t.issue({ scopes: ["models:read"] });
    const other = (await (await post("/v1/tokens/refresh", kept.token, {})).json()) as TokenResponse;
    expect((await t.admin(`/v1/tokens/${kept.tokenId}`, { method: "DELETE" })).status).toBe(200);
    expect(await errorOf(await self(kept.token))).toMatchObject({ status: 401, code: "token_revoked" });
    expect((await models(other.token)).status).toBe(200);
    // Nor does a token that was never issued.
    expect(await errorOf(await self(`${kept.token.slice(0, -4)}AAAA`))).toMatchObject({
      status: 401,
      code: "token_invalid",
    });
  });
});

describe("delegation", () => {
  it("mints a child with a subset of scopes and a lineage, and revoking the parent cuts the child", async () => {
    const parent = await t.issue({
      scopes: ["models:read", "llm:complete"],
      ttl: 120,
      lifetime: 3600,
      agent: "planner",
    });
    const response = await post("/v1/tokens", parent.token, {
      scopes: ["models:read"],
      ttl: 30,
      agent: "researcher",
    });
    expect(response.status).toBe(201);
    const child = TokenSchema.parse(await response.json());
    expect(child).toMatchObject({
      parentGrantId: parent.grantId,
      rootGrantId: parent.grantId,
      depth: 1,
      agent: "researcher",
      notAfter: parent.notAfter,
    });
    const self = SelfSchema.parse(await (await t.call("/v1/tokens/self", child.token)).json());
    expect(self.lineage).toEqual([parent.grantId]);
    expect((await models(child.token)).status).toBe(200);
    const grandchild = TokenSchema.parse(
      await (await post("/v1/tokens", child.token, { scopes: ["models:read"] })).json(),
    );
    expect(
      SelfSchema.parse(await (await t.call("/v1/tokens/self", grandchild.token)).json()).lineage,
    ).toEqual([parent.grantId, child.grantId]);

    expect(await (await t.call("/v1/tokens/self", parent.token, { method: "DELETE" })).json()).toEqual({
      revoked: 3,
      connections: 0,
    });
    expect(await errorOf(await models(child.token))).toMatchObject({ code: "token_revoked" });
    expect(await errorOf(await models(grandchild.token))).toMatchObject({ code: "token_revoked" });
    expect(await errorOf(await post("/v1/tokens", child.token, { scopes: ["models:read"] }))).toMatchObject({
      code: "token_revoked",
    });
  });

  it("never lets a child hold more than its parent", async () => {
    const parent = await t.issue({ scopes: ["models:read"], ttl: 60, lifetime: 300 });
    expect(await errorOf(await post("/v1/tokens", parent.token, { scopes: ["llm:complete"] }))).toMatchObject(
      {
        status: 403,
        code: "delegation_denied",
      },
    );
    expect(
      await errorOf(await post("/v1/tokens", parent.token, { scopes: ["models:read", "llm:complete"] })),
    ).toMatchObject({
      code: "delegation_denied",
    });
    expect(
      await errorOf(await post("/v1/tokens", parent.token, { scopes: ["models:read"], ttl: 601 })),
    ).toMatchObject({
      status: 400,
      code: "ttl_exceeded",
    });
    expect(
      await errorOf(await post("/v1/tokens", parent.token, { scopes: ["models:read"], lifetime: 301 })),
    ).toMatchObject({
      code: "ttl_exceeded",
    });
    const child = TokenSchema.parse(
      await (await post("/v1/tokens", parent.token, { scopes: ["models:read"], lifetime: 100 })).json(),
    );
    expect(Date.parse(child.notAfter)).toBeLessThan(Date.parse(parent.notAfter));
  });

  it("stops at max_depth", async () => {
    let token = (await t.issue({ scopes: ["models:read"] })).token;
    for (let depth = 1; depth <= 3; depth++) {
      const child = TokenSchema.parse(
        await (await post("/v1/tokens", token, { scopes: ["models:read"] })).json(),
      );
      expect(child.depth).toBe(depth);
      token = child.token;
    }
    expect(await errorOf(await post("/v1/tokens", token, { scopes: ["models:read"] }))).toMatchObject({
      status: 403,
      code: "delegation_denied",
    });
  });

  it("counts a child's calls against the parent's maxUses", async () => {
    const parent = await t.issue({ scopes: ["models:read"], maxUses: 2 });
    const child = TokenSchema.parse(
      await (await post("/v1/tokens", parent.token, { scopes: ["models:read"] })).json(),
    );
    expect((await models(child.token)).status).toBe(200);
    expect((await models(parent.token)).status).toBe(200);
    expect(await errorOf(await models(child.token))).toMatchObject({ code: "forbidden" });
  });
});

describe("operations", () => {
  it("answers /healthz and /readyz", async () => {
    expect(await (await t.call("/healthz", undefined)).json()).toEqual({ status: "ok" });
    expect(await (await t.call("/readyz", undefined)).json()).toEqual({ status: "ready" });
  });

  it("answers unknown routes with the envelope", async () => {
    const response = await t.call("/v2/anything?key=secret", undefined);
    const body = await errorOf(response);
    expect(body).toMatchObject({ status: 404, code: "not_found" });
    expect(JSON.stringify(body)).not.toContain("secret");
  });
});
