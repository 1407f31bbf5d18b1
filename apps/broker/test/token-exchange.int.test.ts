import { type AuditPage, eventsOf, type GrantDetail } from "@perishable/protocol";
import { type OidcProvider, startOidcProvider } from "@perishable/test-support";
import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startTestBroker, type TestBroker } from "./support/broker.js";

/**
 * RFC 8693 token exchange at POST /v1/oauth/token, called by a plain OAuth client library
 * (oauth4webapi) as any OAuth-speaking agent framework would.
 */
let t: TestBroker;
let idp: OidcProvider;
let strictIdp: OidcProvider;
let as: oauth.AuthorizationServer;
const client: oauth.Client = { client_id: "agent-framework" };
const insecure = { [oauth.allowInsecureRequests]: true } as const;
const ACCESS = "urn:ietf:params:oauth:token-type:access_token";
const JWT = "urn:ietf:params:oauth:token-type:jwt";

beforeAll(async () => {
  idp = await startOidcProvider({ alg: "ES256" });
  strictIdp = await startOidcProvider({ alg: "ES256" });
  t = await startTestBroker({
    redisUrl: inject("redisUrl"),
    configure: (doc) => {
      doc.issuers!.push({
        name: "workloads",
        oidc: { issuer: idp.issuer, audience: "perishable", jwks_uri: idp.jwksUri },
        agent_claim: "sub",
        scopes: ["llm:complete", "llm:embed"],
        max_ttl: 300,
      });
      // Grants only by exchange, with the sub-agent that asks known by its own identity.
      doc.issuers!.push({
        name: "strict",
        oidc: { issuer: strictIdp.issuer, audience: "perishable", jwks_uri: strictIdp.jwksUri },
        agent_claim: "sub",
        scopes: ["llm:complete"],
        max_ttl: 300,
        require_actor: true,
      });
    },
  });
  as = { issuer: t.url, token_endpoint: `${t.url}/v1/oauth/token` };
});
afterAll(async () => {
  await t?.[Symbol.asyncDispose]();
  await idp?.close();
  await strictIdp?.close();
});

const exchange = (parameters: Record<string, string>, options: Record<PropertyKey, unknown> = {}) =>
  oauth.genericTokenEndpointRequest(
    as,
    client,
    oauth.None(),
    "urn:ietf:params:oauth:grant-type:token-exchange",
    parameters,
    { ...insecure, ...options },
  );

const chat = (token: string) =>
  t.call("/proxy/openai/v1/chat/completions", token, {
    method: "POST",
    body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }),
  });

describe("token exchange (RFC 8693)", () => {
  it("exchanges a prs_ token for an attenuated child, in the RFC's answer shape", async () => {
    const root = await t.issue({ scopes: ["llm:complete", "llm:embed"] });
    const response = await exchange({
      subject_token: root.token,
      subject_token_type: ACCESS,
      scope: "llm:complete",
    });
    expect(response.headers.get("cache-control")).toBe("no-store");
    const answer = await oauth.processGenericTokenEndpointResponse(as, client, response);
    expect(answer).toMatchObject({ token_type: "bearer", issued_token_type: ACCESS, scope: "llm:complete" });
    expect(answer.expires_in).toBeGreaterThan(0);
    expect((await chat(answer.access_token)).status).toBe(200);
    const self = (await (await t.call("/v1/tokens/self", answer.access_token)).json()) as {
      grant: { parentGrantId: string; scopes: string[] };
    };
    expect(self.grant).toMatchObject({ parentGrantId: root.grantId, scopes: ["llm:complete"] });
    // Without scope: the parent's.
    const all = await oauth.processGenericTokenEndpointResponse(
      as,
      client,
      await exchange({ subject_token: root.token, subject_token_type: ACCESS }),
    );
    expect(all.scope).toBe("llm:complete llm:embed");
  });

  it("exchanges a workload's identity token for a root grant and records the actor that asked", async () => {
    const subject = await idp.sign({ sub: "svc:orchestrator" });
    const actor = await idp.sign({ sub: "svc:sub-agent-7" });
    const answer = await oauth.processGenericTokenEndpointResponse(
      as,
      client,
      await exchange({
        subject_token: subject,
        subject_token_type: JWT,
        actor_token: actor,
        actor_token_type: JWT,
        scope: "llm:complete",
        resource: `${t.url}/proxy/openai`,
      }),
    );
    const self = (await (await t.call("/v1/tokens/self", answer.access_token)).json()) as {
      grant: { grantId: string; agent: string; actor?: { subject: string }; identity: { subject: string } };
    };
    expect(self.grant).toMatchObject({
      agent: "svc:orchestrator",
      identity: { subject: "svc:orchestrator" },
      actor: { subject: "svc:sub-agent-7" },
    });
    const detail = (await (await t.admin(`/v1/grants/${self.grant.grantId}`)).json()) as GrantDetail;
    expect(detail.grant.actor?.subject).toBe("svc:sub-agent-7");
    const audit = (await (
      await t.admin(`/v1/audit?grantId=${self.grant.grantId}&type=issued`)
    ).json()) as AuditPage;
    expect(eventsOf(audit.events, "issued")[0]?.actor?.subject).toBe("svc:sub-agent-7");
  });

  it("binds the new grant with a DPoP proof made by the client library", async () => {
    const root = await t.issue({ scopes: ["llm:complete"] });
    const key = await oauth.generateKeyPair("ES256");
    const answer = await oauth.processGenericTokenEndpointResponse(
      as,
      client,
      await exchange(
        { subject_token: root.token, subject_token_type: ACCESS },
        { DPoP: oauth.DPoP(client, key) },
      ),
    );
    expect(answer.token_type).toBe("dpop");
    expect((await chat(answer.access_token)).status).toBe(401);
    // The bound token is exchanged again only with its key's proof.
    const bare = await exchange({ subject_token: answer.access_token, subject_token_type: ACCESS });
    expect(await bare.json()).toMatchObject({ error: "invalid_grant" });
    const proven = await exchange(
      { subject_token: answer.access_token, subject_token_type: ACCESS },
      { DPoP: oauth.DPoP(client, key) },
    );
    expect(proven.status).toBe(200);
  });

  it("answers every refusal in OAuth's error shape, never the envelope", async () => {
    const root = await t.issue({ scopes: ["llm:embed"] });
    const cases: [string, Record<string, string>, string][] = [
      ["no subject token", { subject_token_type: ACCESS }, "invalid_request"],
      [
        "a made-up token",
        { subject_token: `prs_${"a".repeat(40)}`, subject_token_type: ACCESS },
        "invalid_grant",
      ],
      [
        "a scope the parent lacks",
        { subject_token: root.token, subject_token_type: ACCESS, scope: "llm:complete" },
        "invalid_scope",
      ],
      [
        "an unknown scope",
        { subject_token: root.token, subject_token_type: ACCESS, scope: "nope" },
        "invalid_request",
      ],
      [
        "a resource on another upstream",
        { subject_token: root.token, subject_token_type: ACCESS, resource: "anthropic" },
        "invalid_target",
      ],
      [
        "a token type it does not take",
        { subject_token: root.token, subject_token_type: "urn:x" },
        "invalid_request",
      ],
      [
        "a bad identity token",
        { subject_token: "e30.e30.sig", subject_token_type: JWT, scope: "llm:complete" },
        "invalid_grant",
      ],
    ];
    for (const [name, parameters, error] of cases) {
      const response = await exchange(parameters);
      expect(response.status, name).toBe(400);
      expect(response.headers.get("cache-control"), name).toBe("no-store");
      const refused = await oauth
        .processGenericTokenEndpointResponse(as, client, response)
        .catch((e: unknown) => e);
      expect(refused, name).toBeInstanceOf(oauth.ResponseBodyError);
      expect((refused as oauth.ResponseBodyError).error, name).toBe(error);
      expect(JSON.stringify((refused as oauth.ResponseBodyError).cause), name).not.toContain("prs_");
    }
    const wrongGrant = await fetch(as.token_endpoint!, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "grant_type=client_credentials",
    });
    expect(wrongGrant.status).toBe(400);
    expect(await wrongGrant.json()).toMatchObject({ error: "unsupported_grant_type" });
    const json = await t.call("/v1/oauth/token", undefined, { method: "POST", body: "{}" });
    expect(await json.json()).toMatchObject({ error: "invalid_request" });
  });

  it("lets an issuer grant only through an exchange that names its actor (require_actor)", async () => {
    const subject = await strictIdp.sign({ sub: "svc:orchestrator" });
    const direct = await t.call("/v1/tokens", subject, {
      method: "POST",
      body: JSON.stringify({ scopes: ["llm:complete"] }),
    });
    expect(direct.status).toBe(403);
    const bare = await exchange({ subject_token: subject, subject_token_type: JWT, scope: "llm:complete" });
    expect(await bare.json()).toMatchObject({ error: "invalid_request" });
    const actor = await idp.sign({ sub: "svc:sub-agent-9" });
    const withActor = await oauth.processGenericTokenEndpointResponse(
      as,
      client,
      await exchange({
        subject_token: subject,
        subject_token_type: JWT,
        scope: "llm:complete",
        actor_token: actor,
        actor_token_type: JWT,
      }),
    );
    // Its children too: a delegation by POST /v1/tokens names no actor.
    const child = await t.call("/v1/tokens", withActor.access_token, {
      method: "POST",
      body: JSON.stringify({ scopes: ["llm:complete"] }),
    });
    expect(child.status).toBe(403);
    const exchanged = await exchange({
      subject_token: withActor.access_token,
      subject_token_type: ACCESS,
      actor_token: actor,
      actor_token_type: JWT,
    });
    expect(exchanged.status).toBe(200);
  });
});
