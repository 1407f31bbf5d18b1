import { ADMIN_ROUTES } from "@perishable/protocol";
import { describe, expect, it } from "vitest";
import { startTestBroker } from "./support/broker.js";

const concrete = (path: string) =>
  path.replace(":grantId", "gr_AAAAAAAAAAAAAAAAAAAAAA").replace(":tokenId", "tk_AAAAAAAAAAAAAAAAAAAAAAAA");

describe("the admin API is the route table in @perishable/protocol", () => {
  it("serves every route of ADMIN_ROUTES, behind the admin key", async () => {
    await using t = await startTestBroker();
    for (const route of Object.values(ADMIN_ROUTES)) {
      const response = await fetch(`${t.url}${concrete(route.path)}`, { method: route.method });
      expect(`${route.method} ${route.path} ${response.status}`).toBe(`${route.method} ${route.path} 401`);
      expect(await response.json()).toMatchObject({ error: { code: "unauthenticated" } });
    }
  });

  it("validates a route's query with the table's schema", async () => {
    await using t = await startTestBroker();
    const unknown = await t.admin("/v1/audit?colour=red");
    expect(unknown.status).toBe(400);
    expect(await unknown.json()).toMatchObject({
      error: { code: "bad_request", message: "unknown field colour" },
    });
    const tooMany = await t.admin("/v1/grants?limit=100000");
    expect(tooMany.status).toBe(400);
    expect((await t.admin("/v1/grants?limit=2")).status).toBe(200);
  });
});
