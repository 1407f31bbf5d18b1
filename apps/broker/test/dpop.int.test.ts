import { createHash, randomUUID } from "node:crypto";
import { generateKeyPair, generateProof, type KeyPair } from "dpop";
import { exportJWK, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { SECRETS, startTestBroker, type TestBroker } from "./support/broker.js";

/**
 * DPoP (RFC 9449) with proofs made by an independent implementation (panva's `dpop`), on two
 * broker nodes sharing Redis: a bound token needs a fresh proof by its key for every use, and
 * every way a proof can be wrong is refused before anything reaches the upstream.
 */
let a: TestBroker;
let b: TestBroker;
let key: KeyPair;
let other: KeyPair;
const CHAT = "/proxy/openai/v1/chat/completions";
/** Both nodes are one service to their clients: proofs name its public URL. */
const PUBLIC = "http://perishable.test";
const BODY = JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] });

beforeAll(async () => {
  a = await startTestBroker({
    redisUrl: inject("redisUrl"),
    configure: (doc) => {
      doc.public_url = PUBLIC;
      doc.scopes["llm:bound"] = { ...doc.scopes["llm:complete"]!, require_dpop: true };
      (doc.issuers![0] as { scopes: string[] }).scopes.push("llm:bound");
    },
  });
  b = await startTestBroker({ peerOf: a });
  key = await generateKeyPair("ES256");
  other = await generateKeyPair("ES256");
});
afterAll(async () => {
  await b?.[Symbol.asyncDispose]();
  await a?.[Symbol.asyncDispose]();
});

/** `POST /v1/tokens` with the issuer key and a proof by `pair`. */
const issueBound = async (pair: KeyPair, body: Record<string, unknown> = { scopes: ["llm:complete"] }) => {
  const proof = await generateProof(pair, `${PUBLIC}/v1/tokens`, "POST");
  const response = await a.call("/v1/tokens", SECRETS.issuer, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { dpop: proof },
  });
  expect(response.status).toBe(201);
  return (await response.json()) as { token: string; grantId: string; cnf?: { jkt: string } };
};

const chat = (node: TestBroker, token: string, headers: Record<string, string>, scheme = "DPoP") =>
  fetch(`${node.url}${CHAT}`, {
    method: "POST",
    headers: { authorization: `${scheme} ${token}`, "content-type": "application/json", ...headers },
    body: BODY,
  });

const upstreamCalls = () => a.mock.requests.length;

/** A proof made ten minutes ago (the `dpop` package always stamps now). */
const staleProof = async (pair: KeyPair, htu: string, token: string) =>
  new SignJWT({
    jti: randomUUID(),
    htm: "POST",
    htu,
    ath: createHash("sha256").update(token).digest("base64url"),
  })
    .setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk: await exportJWK(pair.publicKey) })
    .setIssuedAt(Math.floor(Date.now() / 1000) - 600)
    .sign(pair.privateKey);

describe("DPoP-bound tokens", () => {
  it("binds a grant to the proof's key and serves its token only with fresh proofs by that key, on every node", async () => {
    const issued = await issueBound(key);
    expect(issued.cnf?.jkt).toMatch(/^[A-Za-z0-9_-]{43}$/);
    for (const node of [a, b]) {
      const proof = await generateProof(key, `${PUBLIC}${CHAT}`, "POST", undefined, issued.token);
      const ok = await chat(node, issued.token, { dpop: proof });
      expect(ok.status).toBe(200);
      const seen = a.mock.requests.at(-1)!;
      expect(seen.headers.dpop).toBeUndefined();
      expect(JSON.stringify(seen.headers)).not.toContain("prs_");
    }
    // Agents' client libraries send Bearer: the proof is what counts.
    const proof = await generateProof(key, `${PUBLIC}${CHAT}`, "POST", undefined, issued.token);
    expect((await chat(a, issued.token, { dpop: proof }, "Bearer")).status).toBe(200);
    const self = await a.call("/v1/tokens/self", undefined, {
      headers: {
        authorization: `DPoP ${issued.token}`,
        dpop: await generateProof(key, `${PUBLIC}/v1/tokens/self`, "GET", undefined, issued.token),
      },
    });
    expect(self.status).toBe(200);
    expect(((await self.json()) as { grant: { cnf?: { jkt: string } } }).grant.cnf?.jkt).toBe(
      issued.cnf!.jkt,
    );
    const view = (await (await a.admin(`/v1/grants/${issued.grantId}`)).json()) as {
      grant: { cnf?: unknown };
    };
    expect(view.grant.cnf).toEqual(issued.cnf);
  });

  it("refuses every wrong proof with 401 and a DPoP challenge, and nothing reaches the upstream", async () => {
    const issued = await issueBound(key);
    const url = `${PUBLIC}${CHAT}`;
    const t = issued.token;
    const replayed = await generateProof(key, url, "POST", undefined, t);
    expect((await chat(a, t, { dpop: replayed })).status).toBe(200);
    const before = upstreamCalls();
    const wrong: Record<string, () => Promise<Record<string, string>>> = {
      "no proof": async () => ({}),
      "another key": async () => ({ dpop: await generateProof(other, url, "POST", undefined, t) }),
      "a replay on the same node": async () => ({ dpop: replayed }),
      "wrong htm": async () => ({ dpop: await generateProof(key, url, "GET", undefined, t) }),
      "wrong htu": async () => ({
        dpop: await generateProof(key, `${PUBLIC}/proxy/openai/v1/embeddings`, "POST", undefined, t),
      }),
      "stale iat": async () => ({ dpop: await staleProof(key, url, t) }),
      "missing ath": async () => ({ dpop: await generateProof(key, url, "POST") }),
      "ath of another token": async () => ({
        dpop: await generateProof(key, url, "POST", undefined, `${t}x`),
      }),
      "a proof that is not a JWT": async () => ({ dpop: "not.a.jwt" }),
    };
    for (const [name, headers] of Object.entries(wrong)) {
      const response = await chat(a, t, await headers());
      expect(response.status, name).toBe(401);
      expect(((await response.json()) as { error: { code: string } }).error.code, name).toBe("token_invalid");
      if (name !== "no proof" && name !== "another key")
        expect(response.headers.get("www-authenticate"), name).toContain('error="invalid_dpop_proof"');
    }
    // A proof used on one node is refused on the other (jti kept in Redis, cluster-wide).
    const once = await generateProof(key, `${PUBLIC}${CHAT}`, "POST", undefined, t);
    expect((await chat(a, t, { dpop: once })).status).toBe(200);
    expect((await chat(b, t, { dpop: once })).status).toBe(401);
    expect(upstreamCalls()).toBe(before + 1);
  });

  it("refreshes and delegates only with a proof; a child is bound to its own key", async () => {
    const parent = await issueBound(key, { scopes: ["llm:complete", "llm:embed"] });
    const post = async (path: string, token: string, pair: KeyPair | undefined, body: unknown) =>
      a.call(path, undefined, {
        method: "POST",
        body: JSON.stringify(body),
        headers: {
          authorization: `DPoP ${token}`,
          ...(pair ? { dpop: await generateProof(pair, `${PUBLIC}${path}`, "POST", undefined, token) } : {}),
        },
      });
    expect((await post("/v1/tokens/refresh", parent.token, undefined, {})).status).toBe(401);
    expect((await post("/v1/tokens/refresh", parent.token, other, {})).status).toBe(401);
    const refreshed = await post("/v1/tokens/refresh", parent.token, key, {});
    expect(refreshed.status).toBe(201);
    const fresh = (await refreshed.json()) as { token: string; cnf?: { jkt: string } };
    expect(fresh.cnf).toEqual(parent.cnf);
    // The refreshed token is bound too.
    expect((await chat(a, fresh.token, {}, "Bearer")).status).toBe(401);

    const sub = await generateKeyPair("ES256");
    const subJkt = (await issueBound(sub)).cnf!.jkt;
    expect(
      (await post("/v1/tokens", parent.token, undefined, { scopes: ["llm:embed"], dpopJkt: subJkt })).status,
    ).toBe(401);
    const delegated = await post("/v1/tokens", parent.token, key, { scopes: ["llm:embed"], dpopJkt: subJkt });
    expect(delegated.status).toBe(201);
    const child = (await delegated.json()) as { token: string; cnf?: { jkt: string } };
    expect(child.cnf?.jkt).toBe(subJkt);
    const embed = async (pair: KeyPair) =>
      fetch(`${a.url}/proxy/openai/v1/embeddings`, {
        method: "POST",
        headers: {
          authorization: `DPoP ${child.token}`,
          "content-type": "application/json",
          dpop: await generateProof(
            pair,
            `${PUBLIC}/proxy/openai/v1/embeddings`,
            "POST",
            undefined,
            child.token,
          ),
        },
        body: JSON.stringify({ model: "text-embedding-3-small", input: "x" }),
      });
    expect((await embed(key)).status).toBe(401); // the parent's key does not open the child
    expect((await embed(sub)).status).toBe(200);
  });

  it("binds the child of a bearer parent with the proof on its request, and requires binding where configured", async () => {
    const bearer = await a.issue({ scopes: ["llm:complete"] });
    const proof = await generateProof(key, `${PUBLIC}/v1/tokens`, "POST", undefined, bearer.token);
    const response = await a.call("/v1/tokens", bearer.token, {
      method: "POST",
      body: JSON.stringify({ scopes: ["llm:complete"] }),
      headers: { dpop: proof },
    });
    expect(response.status).toBe(201);
    expect(((await response.json()) as { cnf?: { jkt: string } }).cnf).toBeDefined();
    // A bearer token with a proof is still served (the proof proves nothing it needs).
    const again = await generateProof(key, `${PUBLIC}${CHAT}`, "POST", undefined, bearer.token);
    expect((await chat(a, bearer.token, { dpop: again }, "Bearer")).status).toBe(200);

    const refused = await a.call("/v1/tokens", SECRETS.issuer, {
      method: "POST",
      body: JSON.stringify({ scopes: ["llm:bound"] }),
    });
    expect(refused.status).toBe(403);
    expect(refused.headers.get("www-authenticate")).toContain("DPoP");
    expect((await issueBound(key, { scopes: ["llm:bound"] })).cnf).toBeDefined();
  });

  it("takes RS256, PS256 and Ed25519 keys too, and refuses a symmetric alg or a key of another kind", async () => {
    for (const alg of ["RS256", "PS256", "Ed25519"] as const) {
      const pair = await generateKeyPair(alg);
      const issued = await issueBound(pair);
      const proof = await generateProof(pair, `${PUBLIC}${CHAT}`, "POST", undefined, issued.token);
      expect((await chat(a, issued.token, { dpop: proof })).status, alg).toBe(200);
    }
    const issued = await issueBound(key);
    const genuine = await generateProof(key, `${PUBLIC}${CHAT}`, "POST", undefined, issued.token);
    const [head, body, signature] = genuine.split(".") as [string, string, string];
    const reheaded = (change: Record<string, unknown>) => {
      const header = { ...JSON.parse(Buffer.from(head, "base64url").toString()), ...change };
      return `${Buffer.from(JSON.stringify(header)).toString("base64url")}.${body}.${signature}`;
    };
    const rsa = await generateKeyPair("RS256");
    for (const [name, proof] of [
      ["HS256", reheaded({ alg: "HS256" })],
      ["none", reheaded({ alg: "none" })],
      ["an RSA key under ES256", reheaded({ jwk: await exportJWK(rsa.publicKey) })],
      [
        "a private key in the header",
        reheaded({ jwk: { ...JSON.parse(Buffer.from(head, "base64url").toString()).jwk, d: "x" } }),
      ],
      ["a crit header", reheaded({ crit: ["exp"] })],
    ] as const) {
      const response = await chat(a, issued.token, { dpop: proof });
      expect(response.status, name).toBe(401);
      expect(response.headers.get("www-authenticate"), name).toContain("invalid_dpop_proof");
    }
  });
});
