import { describe, expect, it } from "vitest";
import { ADMIN_ROUTES, adminClient, adminRequest } from "./admin-api.js";

describe("the admin route table", () => {
  it("fills params in encoded, and carries only the query values given", () => {
    expect(adminRequest("grant", { params: { grantId: "gr_a/b" } })).toEqual({
      method: "GET",
      path: "/v1/grants/gr_a%2Fb",
      body: undefined,
    });
    expect(
      adminRequest("audit", { query: { agent: "planner", type: undefined, root: "", limit: 5 } }).path,
    ).toBe("/v1/audit?agent=planner&limit=5");
    expect(adminRequest("revoke", { query: { dryRun: "true" }, body: { agent: "rogue" } })).toEqual({
      method: "POST",
      path: "/v1/revocations?dryRun=true",
      body: { agent: "rogue" },
    });
  });

  it("parses every answer with its route's schema and refuses one that does not fit", async () => {
    const answers: Record<string, unknown> = {
      "/v1/tokens/tk_1": { tokenId: "tk_1", grantId: "gr_1", issuedAt: "x", expiresAt: "y", status: "live" },
    };
    const client = adminClient(
      async ({ path }) => answers[path],
      ({ method, path }) => new Error(`bad answer to ${method} ${path}`),
    );
    await expect(client("token", { params: { tokenId: "tk_1" } })).rejects.toThrow(
      "bad answer to GET /v1/tokens/tk_1",
    );
    answers["/v1/tokens/tk_1"] = {
      tokenId: "tk_1",
      grantId: "gr_1",
      issuedAt: "2026-12-01T10:00:00Z",
      expiresAt: "2026-12-01T10:05:00Z",
      status: "live",
    };
    await expect(client("token", { params: { tokenId: "tk_1" } })).resolves.toMatchObject({ status: "live" });
  });

  it("names each method and path once", () => {
    const keys = Object.values(ADMIN_ROUTES).map((r) => `${r.method} ${r.path}`);
    expect(new Set(keys).size).toBe(keys.length);
  });
});
