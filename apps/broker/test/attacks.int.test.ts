import { readFileSync } from "node:fs";
import { connect } from "node:net";
import type { TokenResponse } from "@perishable/protocol";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { SECRETS, startTestBroker, type TestBroker } from "./support/broker.js";
import { type ProcessBroker, startProcessBroker } from "./support/process-broker.js";

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
    /** The exact body the upstream receives. */
    readonly upstreamBody?: string;
    readonly upstreamHeaders?: Readonly<Record<string, string>>;
    /** What no audit event may contain (checked once the whole corpus has run). */
    readonly auditLacks?: readonly string[];
  };
}

/** The attack corpus: data, kept beside the code that must reject it. */
const corpus = JSON.parse(readFileSync(new URL("./attacks/corpus.json", import.meta.url), "utf8")) as {
  cases: AttackCase[];
};

let t: TestBroker;
/** The broker under attack: a real process, on the same Redis and mock upstream as `t`. */
let p: ProcessBroker;
let token: TokenResponse;
let other: TokenResponse;
beforeAll(async () => {
  t = await startTestBroker({
    redisUrl: inject("redisUrl"),
    configure: (doc) => {
      doc.proxy = { max_body_bytes: 1024 * 1024 };
      doc.listen = { ...doc.listen, headers_timeout: 1, request_timeout: 2 };
      doc.scopes!["leak:read"] = {
        upstream: "openai",
        endpoints: ["/v1/leak-key", "/v1/leak-key/*"],
        methods: ["GET"],
      };
      (doc.issuers![0]!.scopes as string[]).push("leak:read");
    },
  });
  p = await startProcessBroker(t.configDocument);
  token = await t.issue({ scopes: ["llm:complete", "llm:bounded", "models:read", "leak:read"] });
  other = await t.issue({ scopes: ["models:read"] });
});
afterAll(async () => {
  await p?.[Symbol.asyncDispose]();
  await t?.[Symbol.asyncDispose]();
});

const fill = (raw: string): string => {
  const filled = fillValues(raw);
  const split = filled.indexOf("\r\n\r\n");
  if (split === -1 || !filled.includes("{{length}}")) return filled;
  return filled.replace("{{length}}", String(Buffer.byteLength(filled.slice(split + 4))));
};

const fillValues = (raw: string): string =>
  raw
    .replaceAll("{{tokenSecret}}", token.token.slice(15))
    .replaceAll("{{otherSecret}}", other.token.slice(15))
    .replaceAll("{{token}}", token.token)
    .replaceAll("{{other}}", other.token)
    .replaceAll("{{issuer}}", SECRETS.issuer)
    .replaceAll("{{admin}}", SECRETS.admin)
    .replaceAll("{{upstreamSecretHalf}}", SECRETS.openai.slice(SECRETS.openai.length / 2))
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

/** The body of a chunked answer, its chunks joined (what a client reads). */
const dechunk = (raw: string): string => {
  let out = "";
  let at = 0;
  for (;;) {
    const eol = raw.indexOf("\r\n", at);
    if (eol === -1) return out;
    const size = Number.parseInt(raw.slice(at, eol), 16);
    if (!(size > 0)) return out;
    out += raw.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
};

describe("attack corpus", () => {
  it.each(corpus.cases.map((c) => [c.name, c] as const))("%s", async (_name, attack) => {
    const before = t.mock.requests.length;
    const raw = fill(attack.raw);
    const answer = await exchange(raw, Number(new URL(p.url).port));
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
      if (attack.expect.upstreamBody !== undefined) expect(seen.body).toBe(attack.expect.upstreamBody);
      for (const [name, value] of Object.entries(attack.expect.upstreamHeaders ?? {}))
        expect(seen.headers[name], name).toBe(value);
    }
    const plain = /\r\ntransfer-encoding: chunked\r\n/i.test(answer.slice(0, answer.indexOf("\r\n\r\n") + 2))
      ? dechunk(body)
      : body;
    for (const absent of attack.expect.bodyLacks ?? []) {
      expect(answer).not.toContain(fill(absent));
      expect(plain).not.toContain(fill(absent));
    }
    for (const present of attack.expect.bodyHas ?? []) expect(`${answer}\n${plain}`).toContain(present);
    // Nothing secret comes back, whatever was sent.
    for (const secret of [SECRETS.openai, SECRETS.issuer, SECRETS.admin, SECRETS.broker])
      expect(answer).not.toContain(secret);
  });

  it("still serves ordinary requests after the whole corpus", async () => {
    expect(
      (
        await fetch(`${p.url}/proxy/openai/v1/models`, {
          headers: { authorization: `Bearer ${token.token}` },
        })
      ).status,
    ).toBe(200);
    expect((await fetch(`${p.url}/healthz`)).status).toBe(200);
    expect(p.process.exitCode).toBeNull();
  });

  it("stored nothing in the audit trail that a case says it must not", async () => {
    const lacks = corpus.cases.flatMap((c) => (c.expect.auditLacks ?? []).map(fill));
    expect(lacks.length).toBeGreaterThan(5);
    await new Promise((resolve) => setTimeout(resolve, 300)); // the process's audit batch
    const events: unknown[] = [];
    let after: string | null = null;
    for (;;) {
      const page = (await (
        await t.admin(`/v1/audit?limit=1000&since=1970-01-01T00:00:00Z${after ? `&after=${after}` : ""}`)
      ).json()) as { events: unknown[]; next: string | null };
      events.push(...page.events);
      if (page.events.length < 1000 || !page.next) break;
      after = page.next;
    }
    expect(events.length).toBeGreaterThan(corpus.cases.length / 2);
    const trail = events.map((e) => JSON.stringify(e)).join("\n");
    const decoded = events.map((e) => Object.values(e as object).join(" ")).join("\n");
    for (const text of lacks) {
      expect(trail, text.slice(0, 20)).not.toContain(text);
      expect(decoded, text.slice(0, 20)).not.toContain(text);
    }
  });
});

describe("slow clients", () => {
  it("drops a client that sends its headers too slowly, and keeps serving others", async () => {
    const { port } = new URL(p.url);
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
    expect((await fetch(`${p.url}/healthz`)).status).toBe(200);
    expect(await closed).toBeLessThan(4_000);
  });

  it("drops a client that trickles its body past the request timeout", async () => {
    const { port } = new URL(p.url);
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
