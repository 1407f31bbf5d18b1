import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuditEvent, type TokenResponse } from "@perishable/protocol";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { SECRETS, startTestBroker, type TestBroker } from "./support/broker.js";

const auditFile = join(mkdtempSync(join(tmpdir(), "perishable-audit-")), "audit.jsonl");
let t: TestBroker;
const tokens: string[] = [];

beforeAll(async () => {
  t = await startTestBroker({
    redisUrl: inject("redisUrl"),
    configure: (doc) => {
      doc.audit = { stream_max_len: 10_000, file: auditFile };
    },
  });
  // A run that touches every path that handles a credential.
  const root = await t.issue({ scopes: ["llm:complete", "models:read"], agent: "planner", ttl: 60 });
  const refreshed = (await (
    await t.call("/v1/tokens/refresh", root.token, { method: "POST", body: "{}" })
  ).json()) as TokenResponse;
  const child = (await (
    await t.call("/v1/tokens", refreshed.token, {
      method: "POST",
      body: JSON.stringify({ scopes: ["models:read"], agent: "sub" }),
    })
  ).json()) as TokenResponse;
  tokens.push(root.token, refreshed.token, child.token);
  const client = new OpenAI({ baseURL: `${t.url}/proxy/openai/v1`, apiKey: refreshed.token, maxRetries: 0 });
  await client.chat.completions.create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] });
  for await (const _ of await client.chat.completions.create({
    model: "gpt-4o-mini",
    messages: [],
    stream: true,
  })) {
    // drain
  }
  await client.chat.completions.create({ model: "gpt-4o", messages: [] }).catch(() => {});
  await t.call("/proxy/openai/v1/models", child.token);
  await t.call("/proxy/openai/v1/models", SECRETS.issuer);
  await t.call("/proxy/openai/v1/models", SECRETS.admin);
  await t.call("/v1/tokens", SECRETS.admin, { method: "POST", body: '{"scopes":["models:read"]}' });
  await t.call("/v1/tokens/self", child.token, { method: "DELETE" });
  await t.call("/proxy/openai/v1/models", child.token);
  await t.broker.server.audit.flush();
});
afterAll(async () => {
  await t?.[Symbol.asyncDispose]();
});

/** Every key under the broker's prefix, with its value in readable form. */
const dumpRedis = async (): Promise<{ keys: string[]; text: string }> => {
  const redis = t.redis!;
  const keys = await redis.keys();
  let text = "";
  for (const key of keys) {
    const type = await redis.client.type(key);
    const value =
      type === "hash"
        ? await redis.client.hgetall(key)
        : type === "string"
          ? await redis.client.get(key)
          : type === "stream"
            ? await redis.client.xrange(key, "-", "+")
            : `<${type}>`;
    text += `${key}\n${JSON.stringify(value)}\n`;
  }
  return { keys, text };
};

describe("no secret anywhere", () => {
  it("keeps tokens, keys and upstream secrets out of Redis, the audit file and the logs", async () => {
    const { text } = await dumpRedis();
    const places = { redis: text, auditFile: readFileSync(auditFile, "utf8"), logs: t.logs() };
    expect(places.redis.length).toBeGreaterThan(1000);
    expect(places.auditFile.length).toBeGreaterThan(500);
    expect(places.logs).toContain("perishable broker listening");
    const secrets = [...tokens, ...tokens.map((token) => token.slice(15)), ...Object.values(SECRETS)];
    for (const [place, content] of Object.entries(places)) {
      for (const secret of secrets)
        expect(content.includes(secret), `${place} contains a secret`).toBe(false);
      expect(content, place).not.toMatch(/prs_[0-9a-z]{10}_[A-Za-z0-9_-]{43}/);
    }
  });

  it("groups every key of a lineage under one hash tag, and lets none outlive its TTL", async () => {
    const { keys } = await dumpRedis();
    const prefix = t.redis!.prefix;
    const trees = new Set<string>();
    for (const key of keys) {
      // Node-wide keys, bounded otherwise: the stream by MAXLEN, rules and expiries by the sweepers,
      // the live nodes by their leases.
      if ([`${prefix}:audit`, `${prefix}:expiries`, `${prefix}:rules`, `${prefix}:nodes`].includes(key))
        continue;
      const match = new RegExp(`^${prefix}:\\{([0-9a-z]{10})\\}:(t|ti|g|gt|tree|rl|tomb):`).exec(`${key}:`);
      expect(match, key).not.toBeNull();
      trees.add(match![1]!);
      const ttl = await t.redis!.client.pttl(key);
      expect(ttl, `${key} has no TTL`).toBeGreaterThan(0);
    }
    // The root, its refresh and its child share one tree.
    expect(trees.size).toBe(1);
  });

  it("audits issued, refreshed, delegated, used, denied and revoked events with who did what", async () => {
    const entries = await t.redis!.client.xrange(`${t.redis!.prefix}:audit`, "-", "+");
    const events = entries.map(([, fields]) => AuditEvent.parse(JSON.parse(fields[1]!)));
    const types = new Set(events.map((e) => e.type));
    for (const type of ["issued", "refreshed", "delegated", "used", "denied", "revoked"])
      expect(types).toContain(type);
    const used = events.filter((e) => e.type === "used");
    expect(used).toHaveLength(3);
    for (const e of used) {
      expect(e).toMatchObject({
        upstream: "openai",
        method: expect.any(String),
        status: 200,
        agent: expect.any(String),
      });
      expect(e.grantId).toMatch(/^gr_/);
      expect(e.tokenId).toMatch(/^tk_/);
      expect(e.rootGrantId).toMatch(/^gr_/);
      expect(e.requestId).toMatch(/^req_/);
      expect(e.upstreamMs).toBeGreaterThanOrEqual(0);
      expect(e.totalMs).toBeGreaterThanOrEqual(e.upstreamMs!);
      expect(e.credentialAge).toBeGreaterThanOrEqual(0);
    }
    const delegated = events.find((e) => e.type === "delegated")!;
    expect(delegated.parentGrantId).toBe(delegated.rootGrantId);
    const denials = events.filter((e) => e.type === "denied").map((e) => [e.code, e.rule]);
    expect(denials).toEqual(
      expect.arrayContaining([
        ["constraint_denied", expect.stringMatching(/^llm:complete: model "[^"]+" is not allowed/)],
        ["token_invalid", expect.any(String)],
        ["unauthenticated", expect.any(String)],
        ["token_revoked", expect.stringMatching(/^grant gr_/)],
      ]),
    );
    const fromFile = readFileSync(auditFile, "utf8")
      .trim()
      .split("\n")
      .map((line) => AuditEvent.parse(JSON.parse(line)));
    expect(fromFile.map((e) => e.requestId)).toEqual(events.map((e) => e.requestId));
  });
});
