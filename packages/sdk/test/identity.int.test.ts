import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DevBroker, startDevBroker } from "@perishable/broker";
import { type OidcProvider, startOidcProvider } from "@perishable/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "../src/index.js";
import { credentialFromFile, githubActionsCredential } from "../src/node.js";

let idp: OidcProvider;
let dev: DevBroker;
beforeAll(async () => {
  idp = await startOidcProvider();
  dev = await startDevBroker({
    configure: (doc) => {
      doc.issuers!.push({
        name: "workloads",
        oidc: { issuer: idp.issuer, audience: "perishable", jwks_uri: idp.jwksUri },
        scopes: ["models:read"],
      });
    },
  });
});
afterAll(async () => {
  await dev?.close();
  await idp?.close();
});

describe("workload identity credentials", () => {
  it("re-reads a rotated token file on each use", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "perishable-id-")), "token");
    writeFileSync(file, `${await idp.sign({ sub: "system:serviceaccount:agents:planner" })}\n`);
    const credential = credentialFromFile(file);
    const first = await connect({ broker: dev.url, credential, scopes: ["models:read"] });
    expect(first.grant.agent).toBe("system:serviceaccount:agents:planner");
    writeFileSync(file, await idp.sign({ sub: "system:serviceaccount:agents:writer" }));
    const second = await connect({ broker: dev.url, credential, scopes: ["models:read"] });
    expect(second.grant.agent).toBe("system:serviceaccount:agents:writer");
    expect((await second.fetch("/proxy/openai/v1/models")).status).toBe(200);
    first.close();
    second.close();
    await expect(credentialFromFile(join(file, "missing"))()).rejects.toMatchObject({
      code: "unauthenticated",
    });
  });

  it("asks GitHub Actions for a token with the broker's audience", async () => {
    const asked: string[] = [];
    const actions = createServer(async (req, res) => {
      asked.push(`${req.url} ${req.headers.authorization}`);
      const audience = new URL(req.url ?? "/", "http://x").searchParams.get("audience");
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          value: await idp.sign({ sub: "repo:acme/api:ref:refs/heads/main", aud: audience ?? undefined }),
        }),
      );
    });
    await new Promise<void>((resolve) => actions.listen(0, "127.0.0.1", resolve));
    const env = {
      ACTIONS_ID_TOKEN_REQUEST_URL: `http://127.0.0.1:${(actions.address() as AddressInfo).port}/token?api-version=2.0`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: "actions-request-token",
    };
    try {
      const session = await connect({
        broker: dev.url,
        credential: githubActionsCredential({ audience: "perishable", env }),
        scopes: ["models:read"],
      });
      expect(session.grant.agent).toBe("repo:acme/api:ref:refs/heads/main");
      expect(asked).toEqual(["/token?api-version=2.0&audience=perishable bearer actions-request-token"]);
      session.close();
      expect(() => githubActionsCredential({ audience: "perishable", env: {} })).toThrow(TypeError);
    } finally {
      actions.close();
    }
  });
});
