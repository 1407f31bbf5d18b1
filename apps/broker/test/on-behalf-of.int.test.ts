import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { type AuditPage, eventsOf, type GrantDetail } from "@perishable/protocol";
import { type OidcProvider, startOidcProvider } from "@perishable/test-support";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { SECRETS, startTestBroker, type TestBroker } from "./support/broker.js";

/**
 * `onBehalfOf`: the person an agent acts for, set on a root grant (by the issuer, or from an
 * identity token's claim), inherited by every child, shown in views and events, and a selector
 * that revokes exactly that person's lineages on every node.
 */
let a: TestBroker;
let b: TestBroker;
let idp: OidcProvider;
const bin = fileURLToPath(new URL("../dist/bin.js", import.meta.url));

beforeAll(async () => {
  idp = await startOidcProvider({ alg: "ES256" });
  a = await startTestBroker({
    redisUrl: inject("redisUrl"),
    configure: (doc) => {
      doc.issuers!.push({
        name: "portal",
        oidc: { issuer: idp.issuer, audience: "perishable", jwks_uri: idp.jwksUri },
        agent_claim: "sub",
        on_behalf_of_claim: "act_for",
        scopes: ["llm:complete"],
        max_ttl: 300,
      });
    },
  });
  b = await startTestBroker({ peerOf: a });
});
afterAll(async () => {
  await b?.[Symbol.asyncDispose]();
  await a?.[Symbol.asyncDispose]();
  await idp?.close();
});

const chat = (node: TestBroker, token: string) =>
  node.call("/proxy/openai/v1/chat/completions", token, {
    method: "POST",
    body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }),
  });

const delegate = async (parent: string, body: Record<string, unknown> = { scopes: ["llm:complete"] }) => {
  const response = await a.call("/v1/tokens", parent, { method: "POST", body: JSON.stringify(body) });
  return { status: response.status, json: (await response.json()) as { token: string; grantId: string } };
};

const cli = (args: string[]) =>
  new Promise<{ code: number | null; stdout: string }>((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { PATH: process.env.PATH ?? "", PERISHABLE_ADMIN_KEY: SECRETS.admin },
    });
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.on("close", (code) => resolve({ code, stdout }));
  });

describe("onBehalfOf", () => {
  it("is set on the root, inherited, shown in views and events, and never changed by a child", async () => {
    const root = await a.issue({ scopes: ["llm:complete"], onBehalfOf: "user:carol" });
    const child = await delegate(root.token);
    expect(child.status).toBe(201);
    const detail = (await (await a.admin(`/v1/grants/${child.json.grantId}`)).json()) as GrantDetail;
    expect(detail.grant.onBehalfOf).toBe("user:carol");
    expect((await chat(b, child.json.token)).status).toBe(200);
    const other = await delegate(root.token, { scopes: ["llm:complete"], onBehalfOf: "user:mallory" });
    expect(other.status).toBe(403);
    // The audit trail is written off the path: wait for node b's `used` event to land.
    let page: AuditPage = { events: [], next: null };
    for (let i = 0; i < 50 && eventsOf(page.events, "used").length === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      page = (await (await a.admin("/v1/audit?onBehalfOf=user:carol&limit=100")).json()) as AuditPage;
    }
    expect(eventsOf(page.events, "used")).toHaveLength(1);
    expect(page.events.map((e) => e.type)).toEqual(
      expect.arrayContaining(["issued", "delegated", "used", "denied"]),
    );
    for (const event of page.events) expect(event.onBehalfOf, event.type).toBe("user:carol");
  });

  it("takes it from an identity token's claim, which a request cannot override", async () => {
    const jwt = await idp.sign({ sub: "svc:portal-agent", act_for: "user:dave" });
    const issued = await a.issue({ scopes: ["llm:complete"] }, jwt);
    const self = (await (await a.call("/v1/tokens/self", issued.token)).json()) as {
      grant: { onBehalfOf?: string };
    };
    expect(self.grant.onBehalfOf).toBe("user:dave");
    const response = await a.call("/v1/tokens", jwt, {
      method: "POST",
      body: JSON.stringify({ scopes: ["llm:complete"], onBehalfOf: "user:erin" }),
    });
    expect(response.status).toBe(403);
  });

  it("revokes exactly one person's lineages on every node, from the CLI", async () => {
    const alice = [
      await a.issue({ scopes: ["llm:complete"], onBehalfOf: "user:alice" }),
      await a.issue({ scopes: ["llm:complete"], onBehalfOf: "user:alice", agent: "researcher" }),
    ];
    const aliceChild = (await delegate(alice[0]!.token)).json;
    const bob = await a.issue({ scopes: ["llm:complete"], onBehalfOf: "user:bob" });
    const bobChild = (await delegate(bob.token)).json;
    const nobody = await a.issue({ scopes: ["llm:complete"] });
    const theirs = [alice[0]!.token, alice[1]!.token, aliceChild.token];
    const others = [bob.token, bobChild.token, nobody.token];
    // Served by both nodes first: the node-local path holds them.
    for (const node of [a, b])
      for (const token of [...theirs, ...others]) expect((await chat(node, token)).status).toBe(200);

    const revoked = await cli(["revoke", "--on-behalf-of", "user:alice", "--url", a.url, "--json"]);
    expect(revoked.code).toBe(0);
    expect(JSON.parse(revoked.stdout)).toMatchObject({ revoked: 3 });
    for (const node of [a, b]) {
      for (const token of theirs) expect((await chat(node, token)).status).toBe(401);
      for (const token of others) expect((await chat(node, token)).status).toBe(200);
    }
    // Alice's grants issued after the rule's cut-off margin are not caught by it.
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    const fresh = await a.issue({ scopes: ["llm:complete"], onBehalfOf: "user:alice" });
    expect((await chat(b, fresh.token)).status).toBe(200);
  });
});
