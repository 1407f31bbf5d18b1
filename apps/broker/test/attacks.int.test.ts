import { readFileSync } from "node:fs";
import { connect } from "node:net";
import type { TokenResponse } from "@perishable/protocol";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { SECRETS, startTestBroker, type TestBroker } from "./support/broker.js";

interface AttackCase {
  readonly name: string;
  readonly raw: string;
  readonly why?: string;
  readonly expect: {
    readonly status: readonly number[];
    readonly code?: readonly string[];
    /** How many requests reach the upstream: exactly this many. */
    readonly upstream: number;
    readonly upstreamHost?: "mock";
    readonly upstreamPath?: string;
    readonly upstreamMethod?: string;
    readonly upstreamLacks?: readonly string[];
    readonly upstreamAuthIsConfigured?: boolean;
    readonly bodyLacks?: readonly string[];
    readonly bodyHas?: readonly string[];
  };
}

/** The attack corpus: data, kept beside the code that must reject it. */
const corpus = JSON.parse(readFileSync(new URL("./attacks/corpus.json", import.meta.url), "utf8")) as {
  cases: AttackCase[];
};

let t: TestBroker;
let token: TokenResponse;
let other: TokenResponse;
beforeAll(async () => {
  t = await startTestBroker({
    redisUrl: inject("redisUrl"),
    configure: (doc) => {
      doc.proxy = { max_body_bytes: 1024 * 1024 };
      doc.listen = { ...doc.listen, headers_timeout: 1, request_timeout: 2 };
      doc.scopes!["leak:read"] = { upstream: "openai", endpoints: ["/v1/leak-key"], methods: ["GET"] };
      (doc.issuers![0]!.scopes as string[]).push("leak:read");
    },
  });
  token = await t.issue({ scopes: ["llm:complete", "models:read", "leak:read"] });
  other = await t.issue({ scopes: ["models:read"] });
});
afterAll(async () => {
  await t?.[Symbol.asyncDispose]();
});

const fill = (raw: string): string =>
  raw
    .replaceAll("{{token}}", token.token)
    .replaceAll("{{other}}", other.token)
    .replaceAll("{{issuer}}", SECRETS.issuer)
    .replaceAll("{{admin}}", SECRETS.admin)
    .replaceAll("{{upstreamSecret}}", SECRETS.openai)
    .replaceAll("{{retreed}}", `prs_0000000000${token.token.slice(14)}`)
    .replaceAll("{{mutated}}", `${token.token.slice(0, -1)}${token.token.endsWith("A") ? "B" : "A"}`)
    .replace(/\{\{junk:(\d+)\}\}/g, (_, n: string) => "x".repeat(Number(n)));

/** Sends raw bytes; resolves with what came back by the time the server closed, or after a pause. */
const exchange = (raw: string, port: number): Promise<string> =>
  new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let data = "";
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(data);
    };
    const settle = () => {
      clearTimeout(timer);
      timer = setTimeout(done, 300);
    };
    socket.on("data", (chunk) => {
      data += chunk.toString("latin1");
      settle();
    });
    socket.on("error", done);
    socket.on("close", done);
    socket.on("connect", () => {
      // The writes may fail once the server has answered and closed: that is an answer too.
      socket.write(Buffer.from(raw, "utf8"), () => settle());
    });
    setTimeout(done, 5_000);
  });

describe("attack corpus", () => {
  it.each(corpus.cases.map((c) => [c.name, c] as const))("%s", async (_name, attack) => {
    const before = t.mock.requests.length;
    const raw = fill(attack.raw);
    const answer = await exchange(raw, Number(new URL(t.url).port));
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1] ?? 0);
    expect(attack.expect.status, `answer: ${answer.slice(0, 300)}`).toContain(status);
    const body = answer.slice(answer.indexOf("\r\n\r\n") + 4);
    if (attack.expect.code) {
      const code = /"code":"([a-z_]+)"/.exec(body)?.[1];
      expect(attack.expect.code).toContain(code);
    }
    const reached = t.mock.requests.slice(before);
    expect(reached.length, "requests that reached the upstream").toBe(attack.expect.upstream);
    const seen = reached.at(-1);
    if (seen) {
      if (attack.expect.upstreamHost === "mock") expect(seen.headers.host).toBe(new URL(t.mock.url).host);
      if (attack.expect.upstreamPath) expect(seen.url.split("?")[0]).toBe(attack.expect.upstreamPath);
      if (attack.expect.upstreamMethod) expect(seen.method).toBe(attack.expect.upstreamMethod);
      for (const header of attack.expect.upstreamLacks ?? [])
        expect(seen.headers[header], header).toBeUndefined();
      if (attack.expect.upstreamAuthIsConfigured)
        expect(seen.headers.authorization).toBe(`Bearer ${SECRETS.openai}`);
      expect(JSON.stringify(seen)).not.toContain("prs_");
    }
    for (const absent of attack.expect.bodyLacks ?? []) expect(answer).not.toContain(fill(absent));
    for (const present of attack.expect.bodyHas ?? []) expect(answer).toContain(present);
    // Nothing secret comes back, whatever was sent.
    for (const secret of [SECRETS.openai, SECRETS.issuer, SECRETS.admin, SECRETS.broker])
      expect(answer).not.toContain(secret);
  });

  it("still serves ordinary requests after the whole corpus", async () => {
    expect((await t.call("/proxy/openai/v1/models", token.token)).status).toBe(200);
    expect((await t.call("/healthz", undefined)).status).toBe(200);
  });
});

describe("slow clients", () => {
  it("drops a client that sends its headers too slowly, and keeps serving others", async () => {
    const { port } = new URL(t.url);
    const started = Date.now();
    const closed = new Promise<number>((resolve) => {
      const socket = connect(Number(port), "127.0.0.1", () => {
        socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n");
        const drip = setInterval(() => socket.writable && socket.write("X-Slow: 1\r\n"), 200);
        socket.on("close", () => {
          clearInterval(drip);
          resolve(Date.now() - started);
        });
      });
      socket.on("error", () => {});
    });
    expect((await t.call("/healthz", undefined)).status).toBe(200);
    expect(await closed).toBeLessThan(4_000);
  });

  it("drops a client that trickles its body past the request timeout", async () => {
    const { port } = new URL(t.url);
    const started = Date.now();
    const result = await new Promise<{ ms: number; answer: string }>((resolve) => {
      let answer = "";
      const socket = connect(Number(port), "127.0.0.1", () => {
        socket.write(
          `POST /proxy/openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token.token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{`,
        );
        const drip = setInterval(() => socket.writable && socket.write(" "), 200);
        socket.on("data", (d) => (answer += d));
        socket.on("close", () => {
          clearInterval(drip);
          resolve({ ms: Date.now() - started, answer });
        });
      });
      socket.on("error", () => {});
    });
    expect(result.ms).toBeLessThan(6_000);
    expect(result.answer).not.toMatch(/^HTTP\/1\.1 200/);
  });
});
