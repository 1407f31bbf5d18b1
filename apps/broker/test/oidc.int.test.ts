import { randomBytes } from "node:crypto";
import {
  type AuditPage,
  eventsOf,
  type GrantDetail,
  type SelfResponse,
  type TokenResponse,
} from "@perishable/protocol";
import { type OidcProvider, startOidcProvider } from "@perishable/test-support";
import { exportSPKI, importJWK, type CryptoKey as JoseKey, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { SECRETS, startTestBroker, type TestBroker } from "./support/broker.js";

let github: OidcProvider;
let cluster: OidcProvider;
let t: TestBroker;
const presented: string[] = [];

beforeAll(async () => {
  github = await startOidcProvider();
  cluster = await startOidcProvider({ alg: "ES256" });
  t = await startTestBroker({
    redisUrl: inject("redisUrl"),
    configure: (doc) => {
      // Every hostile token's refusal is asserted in the trail: no sampling of anonymous refusals here.
      doc.audit = { ...doc.audit, anonymous_per_second: 10_000 };
      doc.issuers!.push(
        {
          name: "ci",
          oidc: { issuer: github.issuer, audience: "perishable", jwks_uri: github.jwksUri },
          agent_claim: "sub",
          scopes: ["models:read", "llm:complete", "llm:embed"],
          max_ttl: 300,
          rules: [
            {
              claims: { repository: "acme/*", ref: "refs/heads/main" },
              scopes: ["models:read", "llm:complete"],
              max_ttl: 120,
            },
            { claims: { repository: ["acme/*", "partner/tools"] }, scopes: ["models:read"], max_ttl: 60 },
          ],
        },
        {
          name: "k8s",
          oidc: { issuer: cluster.issuer, audience: ["perishable", "other"] },
          agent_claim: "sa",
          scopes: ["models:read"],
        },
      );
    },
  });
});
afterAll(async () => {
  await t?.[Symbol.asyncDispose]();
  await github?.close();
  await cluster?.close();
});

const MAIN = { sub: "repo:acme/api:ref:refs/heads/main", repository: "acme/api", ref: "refs/heads/main" };
const issueWith = async (jwt: string, body: Record<string, unknown>) => {
  presented.push(jwt);
  const response = await t.call("/v1/tokens", jwt, { method: "POST", body: JSON.stringify(body) });
  return {
    status: response.status,
    body: (await response.json()) as TokenResponse & { error: { code: string; message: string } },
  };
};
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const now = () => Math.floor(Date.now() / 1000);

describe("root grants for workload identities", () => {
  it("issues to a valid GitHub-style token: the agent is its subject, the grant records the identity", async () => {
    const { status, body } = await issueWith(await github.sign(MAIN), { scopes: ["llm:complete"], ttl: 60 });
    expect(status).toBe(201);
    expect(body).toMatchObject({ agent: MAIN.sub, scopes: ["llm:complete"] });
    const self = (await (await t.call("/v1/tokens/self", body.token)).json()) as SelfResponse;
    expect(self.grant).toMatchObject({
      issuer: "ci",
      identity: { issuer: github.issuer, subject: MAIN.sub },
    });
    const child = (await (
      await t.call("/v1/tokens", body.token, {
        method: "POST",
        body: '{"scopes":["llm:complete"],"agent":"helper"}',
      })
    ).json()) as TokenResponse;
    const detail = (await (await t.admin(`/v1/grants/${child.grantId}`)).json()) as GrantDetail;
    expect(detail.grant.identity).toEqual({ issuer: github.issuer, subject: MAIN.sub });
    const audit = (await (
      await t.admin(`/v1/audit?grantId=${body.grantId}&type=issued`)
    ).json()) as AuditPage;
    expect(audit.events[0]).toMatchObject({
      issuer: "ci",
      identity: { issuer: github.issuer, subject: MAIN.sub },
    });
  });

  it("applies the first claims rule that covers the request, with its own limits", async () => {
    const main = await github.sign(MAIN);
    expect((await issueWith(main, { scopes: ["llm:complete"], ttl: 121 })).body.error.code).toBe(
      "ttl_exceeded",
    );
    const branch = await github.sign({
      sub: "repo:acme/api:ref:refs/heads/feature",
      repository: "acme/api",
      ref: "refs/heads/feature",
    });
    expect((await issueWith(branch, { scopes: ["llm:complete"] })).body.error).toMatchObject({
      code: "scope_denied",
    });
    expect((await issueWith(branch, { scopes: ["models:read"], ttl: 60 })).status).toBe(201);
    expect((await issueWith(branch, { scopes: ["models:read"], ttl: 61 })).body.error.code).toBe(
      "ttl_exceeded",
    );
    const partner = await github.sign({
      sub: "repo:partner/tools:ref:refs/heads/main",
      repository: "partner/tools",
      ref: "refs/heads/main",
    });
    expect((await issueWith(partner, { scopes: ["models:read"] })).status).toBe(201);
    const stranger = await github.sign({
      sub: "repo:evil/x:ref:refs/heads/main",
      repository: "evil/x",
      ref: "refs/heads/main",
    });
    expect((await issueWith(stranger, { scopes: ["models:read"] })).body.error.code).toBe("scope_denied");
    expect((await issueWith(main, { scopes: ["llm:embed"] })).body.error.code).toBe("scope_denied");
  });

  it("refuses a body agent that differs from the identity", async () => {
    const jwt = await github.sign(MAIN);
    expect((await issueWith(jwt, { scopes: ["models:read"], agent: "someone-else" })).body.error.code).toBe(
      "forbidden",
    );
    expect((await issueWith(jwt, { scopes: ["models:read"], agent: MAIN.sub })).status).toBe(201);
  });

  it("serves a second issuer found by discovery (ES256, a custom agent claim, an audience list) beside key issuers", async () => {
    const jwt = await cluster.sign({
      sub: "system:serviceaccount:agents:planner",
      sa: "planner",
      aud: "other",
    });
    const { status, body } = await issueWith(jwt, { scopes: ["models:read"] });
    expect(status).toBe(201);
    expect(body.agent).toBe("planner");
    expect(cluster.discoveryFetches()).toBe(1);
    expect((await t.call("/proxy/openai/v1/models", body.token)).status).toBe(200);
    expect((await t.issue({ scopes: ["models:read"] }, SECRETS.issuer)).agent).toBe("orchestrator");
  });

  it("refuses a subject claim that is not printable text, like an agent claim", async () => {
    for (const sub of ["\u001b[2J\u001b[31mroot", "ok\r\nforged line", "x".repeat(300), "\u202eevil"]) {
      const { status, body } = await issueWith(await cluster.sign({ sub, sa: "planner" }), {
        scopes: ["models:read"],
      });
      expect(status).toBe(401);
      expect(body.error.message).toContain("sub claim");
    }
  });

  it("follows key rotation at the provider while running", async () => {
    const before = await github.sign(MAIN);
    expect((await issueWith(before, { scopes: ["models:read"] })).status).toBe(201);
    const fetches = github.jwksFetches();
    await github.rotate();
    await new Promise((resolve) => setTimeout(resolve, 1100)); // the JWKS cooldown
    const after = await github.sign(MAIN);
    expect((await issueWith(after, { scopes: ["models:read"] })).status).toBe(201);
    expect(github.jwksFetches()).toBe(fetches + 1);
    // The old key is gone from the provider's JWKS, so tokens it signed are refused now.
    const oldKid = (await issueWith(before, { scopes: ["models:read"] })).body.error;
    expect(oldKid.code).toBe("unauthenticated");
  });

  it("takes a rotation within 2 s of a quiet provider, while 200 made-up key ids cost at most 10 fetches", async () => {
    // The defaults, as an operator gets them: no jwks_cooldown or cap in this issuer's config.
    expect((await issueWith(await github.sign(MAIN), { scopes: ["models:read"] })).status).toBe(201);
    const fetches = github.jwksFetches();
    const flood = await Promise.all(
      Array.from({ length: 200 }, async () => {
        const jwt = await github.sign(MAIN, { kid: randomBytes(8).toString("hex") });
        return (await issueWith(jwt, { scopes: ["models:read"] })).body.error.code;
      }),
    );
    expect(new Set(flood)).toEqual(new Set(["unauthenticated"]));
    expect(github.jwksFetches() - fetches).toBeLessThanOrEqual(10);
    // A rotation the provider did not pre-publish: the first token with the new kid works.
    await github.rotate();
    await new Promise((resolve) => setTimeout(resolve, 2_000)); // the provider has been quiet for 2 s
    const rotated = await issueWith(await github.sign(MAIN), { scopes: ["models:read"] });
    expect(rotated.status).toBe(201);
  });

  it("does not let a flood of unknown key ids hammer the provider", async () => {
    const fetches = github.jwksFetches();
    const started = Date.now();
    for (let i = 0; i < 40; i++) {
      const jwt = await github.sign(MAIN, { kid: `bogus-${i}` });
      expect((await issueWith(jwt, { scopes: ["models:read"] })).body.error.code).toBe("unauthenticated");
    }
    const seconds = (Date.now() - started) / 1000;
    expect(github.jwksFetches() - fetches).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
  });
});

describe("hostile identity tokens", () => {
  const hostile: Array<[string, () => Promise<string>, number, string]> = [
    [
      "alg none",
      async () =>
        `${b64({ alg: "none", typ: "JWT" })}.${b64({ iss: github.issuer, aud: "perishable", exp: now() + 300, ...MAIN })}.`,
      401,
      "unauthenticated",
    ],
    [
      "HS256 signed with the provider's public JWK as the secret",
      async () =>
        new SignJWT({ ...MAIN, iss: github.issuer, aud: "perishable", exp: now() + 300 })
          .setProtectedHeader({ alg: "HS256", kid: github.currentKid() })
          .sign(new TextEncoder().encode(JSON.stringify(github.publicJwk()))),
      401,
      "unauthenticated",
    ],
    [
      "HS256 signed with the provider's public key PEM as the secret",
      async () => {
        const pem = await exportSPKI(
          (await importJWK(github.publicJwk(), "RS256", { extractable: true })) as JoseKey,
        );
        return new SignJWT({ ...MAIN, iss: github.issuer, aud: "perishable", exp: now() + 300 })
          .setProtectedHeader({ alg: "HS256", kid: github.currentKid() })
          .sign(new TextEncoder().encode(pem));
      },
      401,
      "unauthenticated",
    ],
    [
      "expired (beyond the clock skew)",
      () => github.sign({ ...MAIN, exp: now() - 31, iat: now() - 400 }),
      401,
      "unauthenticated",
    ],
    ["not yet valid (nbf)", () => github.sign({ ...MAIN, nbf: now() + 120 }), 401, "unauthenticated"],
    [
      "issued in the future (iat)",
      () => github.sign({ ...MAIN, iat: now() + 120, exp: now() + 600 }),
      401,
      "unauthenticated",
    ],
    ["wrong audience", () => github.sign({ ...MAIN, aud: "someone-else" }), 401, "unauthenticated"],
    ["no audience", () => github.sign({ ...MAIN, aud: undefined }), 401, "unauthenticated"],
    ["unknown issuer", () => github.sign({ ...MAIN, iss: "https://evil.example" }), 401, "unauthenticated"],
    [
      "the right kid, signed by another key",
      () => github.sign(MAIN, { foreignKey: true, kid: github.currentKid() }),
      401,
      "unauthenticated",
    ],
    [
      "an attacker's key embedded in the header",
      async () =>
        github.sign(MAIN, { foreignKey: true, header: { jwk: github.publicJwk(), kid: "attacker" } }),
      401,
      "unauthenticated",
    ],
    [
      "a jku pointing elsewhere",
      () => github.sign(MAIN, { foreignKey: true, header: { jku: "https://evil.example/jwks" } }),
      401,
      "unauthenticated",
    ],
    [
      "tampered payload",
      async () => {
        const [h, , s] = (await github.sign(MAIN)).split(".");
        return `${h}.${b64({ ...MAIN, iss: github.issuer, aud: "perishable", exp: now() + 300, sub: "repo:acme/admin:ref:refs/heads/main" })}.${s}`;
      },
      401,
      "unauthenticated",
    ],
    [
      "tampered header (alg switched)",
      async () => {
        const [, p, s] = (await github.sign(MAIN)).split(".");
        return `${b64({ alg: "RS512", kid: github.currentKid() })}.${p}.${s}`;
      },
      401,
      "unauthenticated",
    ],
    ["no exp", () => github.sign({ ...MAIN, exp: undefined }), 401, "unauthenticated"],
    [
      "no sub (the agent claim)",
      () => github.sign({ repository: "acme/api", ref: "refs/heads/main" }),
      401,
      "unauthenticated",
    ],
    [
      "an agent claim that is not a name",
      () => github.sign({ ...MAIN, sub: "repo:acme/api\nadmin: true" }),
      401,
      "unauthenticated",
    ],
    [
      "unknown critical header",
      () => github.sign(MAIN, { header: { crit: ["x-must-understand"], "x-must-understand": 1 } }),
      401,
      "unauthenticated",
    ],
    ["truncated signature", async () => (await github.sign(MAIN)).slice(0, -20), 401, "unauthenticated"],
    [
      "JWT-looking garbage",
      async () =>
        `eyJhbGciOiJSUzI1NiJ9.${randomBytes(60).toString("base64url")}.${randomBytes(60).toString("base64url")}`,
      401,
      "unauthenticated",
    ],
    [
      "a JWT too large to be a header",
      () => github.sign({ ...MAIN, pad: "x".repeat(20_000) }),
      431,
      "headers_too_large",
    ],
  ];

  it.each(hostile)("refuses %s", async (_label, make, status, code) => {
    const jwt = await make();
    const before = t.mock.requests.length;
    const result = await issueWith(jwt, { scopes: ["models:read"] });
    expect(result.status).toBe(status);
    expect(result.body.error.code).toBe(code);
    expect(JSON.stringify(result.body)).not.toContain(jwt.split(".")[1]!.slice(0, 40));
    expect(t.mock.requests.length).toBe(before);
  });

  it("accepts an expiry within the clock skew (the table above is not refused for some other reason)", async () => {
    const jwt = await github.sign({ ...MAIN, exp: now() - 10, iat: now() - 300 });
    expect((await issueWith(jwt, { scopes: ["models:read"] })).status).toBe(201);
  });

  it("refuses an identity token at the proxy: it takes prs_ tokens only", async () => {
    const jwt = await github.sign(MAIN);
    presented.push(jwt);
    const response = await t.call("/proxy/openai/v1/models", jwt);
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ error: { code: "token_invalid" } });
  });

  it("audits each refusal with its reason, and never echoes a token anywhere", async () => {
    await t.broker.server.audit.flush();
    const denied = (await (await t.admin("/v1/audit?type=denied&limit=1000")).json()) as AuditPage;
    const rules = eventsOf(denied.events, "denied").map((e) => e.rule);
    for (const reason of [
      "ERR_JWT_EXPIRED",
      "ERR_JOSE_ALG_NOT_ALLOWED",
      "ERR_JWT_CLAIM_VALIDATION_FAILED",
      "ERR_JWS_SIGNATURE_VERIFICATION_FAILED",
      "ERR_JWKS_NO_MATCHING_KEY",
      "no OIDC issuer is configured",
    ]) {
      expect(
        rules.some((r) => r.includes(reason)),
        reason,
      ).toBe(true);
    }
    const everything = [
      t.logs(),
      JSON.stringify(denied),
      JSON.stringify(await t.redis!.client.xrange(`${t.redis!.prefix}:audit`, "-", "+")),
    ].join("\n");
    for (const jwt of presented) {
      for (const part of jwt.split(".").filter((p) => p.length > 20))
        expect(everything).not.toContain(part.slice(0, 40));
    }
  });
});
