import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import Anthropic from "@anthropic-ai/sdk";
import type { DevBroker } from "@perishable/broker";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { connect, fromToken, PerishableError, type RefreshedEvent, type Session } from "../src/index.js";
import { devBrokerOnRedis } from "./support/dev.js";

let dev: DevBroker;
const sessions: Session[] = [];
beforeAll(async () => {
  dev = await devBrokerOnRedis(inject("redisUrl"));
});
afterAll(async () => {
  for (const s of sessions) s.close();
  await dev?.close();
});

const open = async (options: Partial<Parameters<typeof connect>[0]> = {}) => {
  const session = await connect({
    broker: dev.url,
    credential: dev.issuerKey,
    scopes: ["llm:complete", "models:read"],
    ...options,
  });
  sessions.push(session);
  return session;
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

describe("connect", () => {
  it("issues a grant and exposes its token and grant", async () => {
    const session = await open({ ttl: 60, agent: "planner", task: "t-1" });
    expect(session.token).toMatch(/^prs_/);
    expect(session.state).toBe("live");
    expect(session.grant).toMatchObject({
      agent: "planner",
      task: "t-1",
      scopes: ["llm:complete", "models:read"],
      depth: 0,
      parentGrantId: null,
    });
    expect(session.grant.rootGrantId).toBe(session.grant.grantId);
  });

  it("takes the credential from an async function (a rotating identity file, re-read on use)", async () => {
    let reads = 0;
    const session = await open({
      credential: async () => {
        reads += 1;
        return dev.issuerKey;
      },
    });
    expect(reads).toBe(1);
    expect(session.grant.agent).toBe("orchestrator");
  });

  it("refuses misuse with a TypeError before any call", async () => {
    const base = { broker: dev.url, credential: dev.issuerKey, scopes: ["models:read"] };
    await expect(connect({ ...base, ttl: 1.5 })).rejects.toThrow(TypeError);
    await expect(connect({ ...base, scopes: [] })).rejects.toThrow(TypeError);
    await expect(connect({ ...base, broker: "ftp://x" })).rejects.toThrow(TypeError);
    await expect(connect({ ...base, credential: "" })).rejects.toThrow(TypeError);
    await expect(connect({ ...base, jitter: 0.6 })).rejects.toThrow(TypeError);
    await expect(fromToken("sk-not-a-token", { broker: dev.url })).rejects.toThrow(TypeError);
  });

  it("fails with a PerishableError carrying the broker's code", async () => {
    const error = await connect({
      broker: dev.url,
      credential: "pik_wrong-key-0123456789abcdef",
      scopes: ["models:read"],
    }).catch((e) => e);
    expect(error).toBeInstanceOf(PerishableError);
    expect(error).toMatchObject({
      code: "unauthenticated",
      status: 401,
      requestId: expect.stringMatching(/^req_/),
    });
    const ttl = await open({ ttl: 100_000 }).catch((e) => e);
    expect(ttl).toMatchObject({ code: "ttl_exceeded", status: 400 });
  });

  it("says broker_unreachable when nothing answers, within its timeout", async () => {
    const error = await connect({
      broker: "http://127.0.0.1:1",
      credential: "k",
      scopes: ["models:read"],
      timeoutMs: 2000,
    }).catch((e) => e);
    expect(error).toMatchObject({ code: "broker_unreachable", retryable: true });
  });
});

describe("refresh through a long-lived OpenAI client", () => {
  it("keeps calling across several TTLs with zero failures and at least two refreshes", async () => {
    const session = await open({ ttl: 2 });
    const refreshes: RefreshedEvent[] = [];
    session.on("refreshed", (event) => refreshes.push(event));
    const client = new OpenAI({ ...session.openai(), maxRetries: 0 });
    const deadline = Date.now() + 5_500;
    let calls = 0;
    while (Date.now() < deadline) {
      const reply = await client.chat.completions.create({
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: "hi" }],
      });
      expect(reply.choices[0]?.message.content).toBe("Hello from the mock upstream.");
      calls += 1;
      await sleep(50);
    }
    expect(calls).toBeGreaterThan(30);
    expect(refreshes.length).toBeGreaterThanOrEqual(2);
    expect(new Set(refreshes.map((r) => r.tokenId)).size).toBe(refreshes.length);
    expect(refreshes[0]!.previous.tokenId).not.toBe(refreshes[0]!.tokenId);
    expect(session.state).toBe("live");
  });

  it("leaves the previous token working right after a refresh, and dead after its own expiry", async () => {
    const session = await open({ ttl: 2, scopes: ["models:read"] });
    const refreshed = await new Promise<RefreshedEvent>((resolve) => session.once("refreshed", resolve));
    const previous = refreshed.previous.token;
    const call = (token: string) =>
      fetch(`${dev.url}/proxy/openai/v1/models`, { headers: { authorization: `Bearer ${token}` } });
    expect((await call(previous)).status).toBe(200);
    await sleep(Math.max(0, Date.parse(refreshed.previous.expiresAt) - Date.now()) + 100);
    const dead = await call(previous);
    expect(dead.status).toBe(401);
    expect(await dead.json()).toMatchObject({ error: { code: "token_expired" } });
    expect((await session.fetch("/proxy/openai/v1/models")).status).toBe(200);
  });
});

describe("session.fetch", () => {
  it("resolves broker paths, and refuses to send the token anywhere else", async () => {
    const session = await open({ scopes: ["models:read"] });
    expect((await session.fetch("/proxy/openai/v1/models")).status).toBe(200);
    expect((await session.fetch(`${dev.url}/proxy/openai/v1/models`)).status).toBe(200);
    expect((await session.fetch(new Request(`${dev.url}/proxy/openai/v1/models`))).status).toBe(200);
    await expect(session.fetch("https://evil.example/steal")).rejects.toThrow(TypeError);
  });

  it("refreshes once and retries when the broker says token_expired and the body can be replayed", async () => {
    let forced = 1;
    const bodies: string[] = [];
    const flaky: typeof fetch = async (input, init) => {
      if (String(input).includes("/proxy/") && forced-- > 0) {
        bodies.push(String(init?.body));
        return Response.json(
          { error: { code: "token_expired", message: "expired", requestId: "req_x" } },
          { status: 401 },
        );
      }
      if (String(input).includes("/proxy/")) bodies.push(String(init?.body));
      return fetch(input, init);
    };
    const session = await connect({
      broker: dev.url,
      credential: dev.issuerKey,
      scopes: ["llm:complete"],
      fetch: flaky,
    });
    sessions.push(session);
    const before = session.tokenId;
    const body = JSON.stringify({ model: "gpt-4o-mini", messages: [] });
    const response = await session.fetch("/proxy/openai/v1/chat/completions", {
      method: "POST",
      body,
      headers: { "content-type": "application/json" },
    });
    expect(response.status).toBe(200);
    expect(session.tokenId).not.toBe(before);
    expect(bodies).toEqual([body, body]);

    forced = 1;
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(body));
        controller.close();
      },
    });
    const once = await session.fetch("/proxy/openai/v1/chat/completions", {
      method: "POST",
      body: stream,
      duplex: "half",
    } as RequestInit);
    expect(once.status).toBe(401);
  });

  it("answers locally with the broker's envelope once the session is revoked", async () => {
    const session = await open({ scopes: ["models:read"] });
    const revokedEvents: string[] = [];
    session.on("revoked", ({ by }) => revokedEvents.push(by));
    expect(await session.revoke()).toEqual({ revoked: 1, connections: 0 });
    expect(session.state).toBe("revoked");
    expect(revokedEvents).toEqual(["self"]);
    const response = await session.fetch("/proxy/openai/v1/models");
    expect(response.status).toBe(401);
    expect(response.headers.get("x-perishable-request-id")).toBe("local");
    expect(await response.json()).toMatchObject({ error: { code: "token_revoked" } });
    await expect(session.refresh()).rejects.toMatchObject({ code: "token_revoked" });
  });

  it("notices a revocation made elsewhere on its next call and stops", async () => {
    const session = await open({ scopes: ["models:read"] });
    const events: string[] = [];
    session.on("revoked", ({ by }) => events.push(by));
    await fetch(`${dev.url}/v1/tokens/self`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${session.token}` },
    });
    const response = await session.fetch("/proxy/openai/v1/models");
    expect(await response.json()).toMatchObject({ error: { code: "token_revoked" } });
    expect(events).toEqual(["broker"]);
    expect(session.state).toBe("revoked");
  });
});

describe("delegation", () => {
  it("gives a sub-agent a child session with less, and lineage", async () => {
    const parent = await open({ ttl: 60, lifetime: 600, agent: "planner" });
    const child = await parent.delegate({ scopes: ["models:read"], ttl: 30, agent: "researcher" });
    expect(child.grant).toMatchObject({
      parentGrantId: parent.grant.grantId,
      rootGrantId: parent.grant.grantId,
      depth: 1,
      agent: "researcher",
      scopes: ["models:read"],
      notAfter: parent.grant.notAfter,
    });
    expect((await child.fetch("/proxy/openai/v1/models")).status).toBe(200);
    const self = (await (await child.fetch("/v1/tokens/self")).json()) as { lineage: string[] };
    expect(self.lineage).toEqual([parent.grant.grantId]);
    const denied = await child.fetch("/proxy/openai/v1/chat/completions", { method: "POST", body: "{}" });
    expect(denied.status).toBe(403);
  });

  it("refuses a superset delegation with delegation_denied", async () => {
    const parent = await open({ scopes: ["models:read"] });
    await expect(parent.delegate({ scopes: ["models:read", "llm:complete"] })).rejects.toMatchObject({
      code: "delegation_denied",
      status: 403,
    });
  });

  it("revoking the parent cuts the child in another process on its next call", async () => {
    const parent = await open({ scopes: ["models:read"] });
    const child = await parent.delegate({ scopes: ["models:read"], agent: "remote" });
    const handed = child.token;
    child.close();
    const proc = spawn(process.execPath, [fixture("sub-agent.mjs")], {
      env: { PATH: process.env.PATH ?? "", PRS_TOKEN: handed, PERISHABLE_URL: dev.url },
    });
    let out = "";
    let err = "";
    proc.stderr.on("data", (d: Buffer) => (err += d));
    const exited = new Promise<number | null>((resolve) => proc.on("exit", resolve));
    await new Promise<void>((resolve, reject) => {
      proc.stdout.on("data", (d: Buffer) => {
        out += d;
        if (out.split("\n").filter((l) => l === "ok").length >= 3) resolve();
      });
      proc.once("exit", () => reject(new Error(`sub-agent exited early: ${out} ${err}`)));
    });
    expect(out).toContain("depth=1");
    expect(await parent.revoke()).toEqual({ revoked: 2, connections: 0 });
    expect(await exited).toBe(0);
    expect(out).toContain("denied token_revoked");
    expect(out).toContain("revoked-event broker");
  });

  it("closing a session closes the sessions delegated from it", async () => {
    const parent = await open({ scopes: ["models:read"] });
    const child = await parent.delegate({ scopes: ["models:read"] });
    parent.close();
    expect(child.state).toBe("closed");
    await expect(child.fetch("/proxy/openai/v1/models")).rejects.toThrow(TypeError);
    // The same failure from every method of a closed session.
    await expect(child.delegate({ scopes: ["models:read"] })).rejects.toThrow(TypeError);
    await expect(child.revoke()).rejects.toThrow(TypeError);
    await expect(parent.fetch("/proxy/openai/v1/models")).rejects.toThrow("this session is closed");
  });
});

describe("fromToken", () => {
  it("rebuilds a session from a handed-over token, and keeps it fresh", async () => {
    const parent = await open({ scopes: ["models:read"] });
    const child = await parent.delegate({ scopes: ["models:read"], ttl: 2, agent: "worker" });
    const again = await fromToken(child.token, { broker: dev.url });
    sessions.push(again);
    expect(again.grant).toMatchObject({
      grantId: child.grant.grantId,
      depth: 1,
      agent: "worker",
      notAfter: child.grant.notAfter,
    });
    const refreshed = await new Promise<RefreshedEvent>((resolve) => again.once("refreshed", resolve));
    expect(refreshed.grant.grantId).toBe(child.grant.grantId);
    expect((await again.fetch("/proxy/openai/v1/models")).status).toBe(200);
  });
});

describe("process lifetime", () => {
  it.each([
    ["closes", {}],
    ["never closes (timers are unref'd)", { NO_CLOSE: "1" }],
  ])("a script that connects, calls and %s exits on its own", async (_label, extra) => {
    const started = Date.now();
    const proc = spawn(process.execPath, [fixture("connect-and-exit.mjs")], {
      env: {
        PATH: process.env.PATH ?? "",
        PERISHABLE_URL: dev.url,
        PERISHABLE_ISSUER_KEY: dev.issuerKey,
        ...extra,
      },
    });
    let out = "";
    proc.stdout.on("data", (d: Buffer) => (out += d));
    const code = await new Promise<number | null>((resolve) => proc.on("exit", resolve));
    expect(code).toBe(0);
    expect(out).toBe("status 200\n");
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe("the Anthropic client", () => {
  it("works with session.anthropic()", async () => {
    const session = await open({ scopes: ["claude:messages"] });
    const client = new Anthropic({ ...session.anthropic(), maxRetries: 0 });
    const message = await client.messages.create({
      model: "claude-sonnet-4-5",
      max_tokens: 10,
      messages: [{ role: "user", content: "hi" }],
    });
    expect(message.content[0]).toMatchObject({ type: "text" });
  });
});
