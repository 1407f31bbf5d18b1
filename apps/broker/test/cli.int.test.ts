import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { TokenResponse } from "@perishable/protocol";
import { freePort } from "@perishable/test-support";
import { beforeAll, describe, expect, it } from "vitest";

const bin = fileURLToPath(new URL("../dist/bin.js", import.meta.url));
const example = fileURLToPath(new URL("../perishable.example.yaml", import.meta.url));

beforeAll(() => {
  if (!existsSync(bin))
    throw new Error(
      `${bin} is missing: the CLI tests run the built binary; run \`pnpm build\` first (pnpm test does)`,
    );
});

const BASE_ENV = { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "" };

const run = (args: string[], env: Record<string, string> = {}) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { ...BASE_ENV, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });

/** Starts a long-running command and waits until its stdout contains `ready`. */
const startUntil = async (args: string[], ready: string, env: Record<string, string> = {}) => {
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, [bin, ...args], {
    env: { ...BASE_ENV, ...env },
  });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (d: Buffer) => {
      stdout += d;
      if (stdout.includes(ready)) resolve();
    });
    child.once("exit", (code) => reject(new Error(`exited with ${code} before ready: ${stderr}`)));
  });
  return { child, stdout: () => stdout, stderr: () => stderr };
};

const exitOf = (child: ChildProcessWithoutNullStreams) =>
  new Promise<number | null>((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once("exit", (code) => resolve(code));
  });

describe("perishable dev", () => {
  it("starts on the memory store with the mock upstream, prints keys once, and serves the tour", async () => {
    const port = await freePort();
    const dev = await startUntil(["dev", "--port", String(port)], "Ctrl-C stops the broker.");
    try {
      const out = dev.stdout();
      const url = /perishable dev broker on (http:\/\/\S+)/.exec(out)?.[1];
      const issuerKey = /issuer key \(orchestrator\)\s+(pik_\S+)/.exec(out)?.[1];
      expect(url).toBe(`http://127.0.0.1:${port}`);
      expect(issuerKey).toBeDefined();
      expect(out.match(new RegExp(issuerKey!, "g"))?.length).toBe(2); // the key line and the export line
      const issued = await fetch(`${url}/v1/tokens`, {
        method: "POST",
        headers: { authorization: `Bearer ${issuerKey}`, "content-type": "application/json" },
        body: JSON.stringify({ scopes: ["llm:complete"], ttl: 60, agent: "planner" }),
      });
      const { token } = (await issued.json()) as TokenResponse;
      const completion = await fetch(`${url}/proxy/openai/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }),
      });
      expect(completion.status).toBe(200);
      expect(
        await fetch(`${url}/v1/tokens/self`, {
          method: "DELETE",
          headers: { authorization: `Bearer ${token}` },
        }).then((r) => r.json()),
      ).toEqual({
        revoked: 1,
        connections: 0,
      });
      // Nothing but the banner goes to stdout, and no token shows up anywhere.
      expect(dev.stdout() + dev.stderr()).not.toContain(token);
    } finally {
      dev.child.kill("SIGTERM");
      expect(await exitOf(dev.child)).toBe(0);
    }
  });
});

describe("perishable start and config check", () => {
  const env = {
    OPENAI_API_KEY: "sk-cli-test-openai-0123456789",
    ANTHROPIC_API_KEY: "sk-ant-cli-test-0123456789",
    PERISHABLE_ISSUER_KEY: "pik_cli-test-issuer-0123456789abcdef",
    PERISHABLE_ADMIN_KEY: "pak_cli-test-admin-0123456789abcdef",
    PERISHABLE_SECRET: "sec_cli-test-secret-0123456789abcdefgh",
  };

  it("checks the example config and prints what it sets up, without a secret", async () => {
    const result = await run(["config", "check", "--config", example], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("scopes     llm:complete, llm:embed, storage:read, claude:messages");
    expect(result.stdout).toContain("redis 127.0.0.1:6379");
    for (const value of Object.values(env)) expect(result.stdout).not.toContain(value);
  });

  it("refuses a bad config with every problem and exit code 2, before opening a port", async () => {
    const dir = mkdtempSync(join(tmpdir(), "perishable-cli-"));
    const file = join(dir, "bad.yaml");
    writeFileSync(
      file,
      "listen: { port: 1 }\nupstreams: {}\nscopes:\n  x: { upstream: y, endpoints: [/a], methods: [POST] }\nextra: 1\n",
    );
    const result = await run(["start", "--config", file], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("invalid config");
    expect(result.stderr).toContain("upstreams: at least one upstream");
    expect(result.stderr).toContain("unknown key: extra");
  });

  it("names a missing environment variable, once", async () => {
    const result = await run(["config", "check", "--config", example], { ...env, OPENAI_API_KEY: "" });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      "upstreams.openai.auth.value: environment variable OPENAI_API_KEY is not set",
    );
    const bare = await run(["config", "check", "--config", example], {});
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain("secret: environment variable PERISHABLE_SECRET is not set");
    expect(bare.stderr.match(/issuers\[0\]\.key/g)).toHaveLength(1);
  });

  it("fails with exit code 1 when Redis is not there", async () => {
    const dir = mkdtempSync(join(tmpdir(), "perishable-cli-"));
    const file = join(dir, "perishable.yaml");
    const port = await freePort();
    writeFileSync(
      file,
      `secret: \${PERISHABLE_SECRET}\nstore: { redis: "redis://127.0.0.1:${port}" }\nupstreams: { o: { base_url: "http://127.0.0.1:1" } }\nscopes: { s: { upstream: o, endpoints: [/x], methods: [GET] } }\n`,
    );
    const result = await run(["start", "--config", file], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/cannot start: (Redis did not answer|cannot connect to Redis)/);
  });

  it("uses exit code 2 for usage errors and 0 for help", async () => {
    expect((await run(["frobnicate"])).code).toBe(2);
    expect((await run(["--help"])).code).toBe(0);
    const key = await run(["keygen", "--prefix", "sec"]);
    expect(key.stdout).toMatch(/^sec_[A-Za-z0-9_-]{43}\n$/);
  });
});

describe("operator commands against a running broker", () => {
  it("issue, list, draw, tail and revoke, with tables, --json and reliable exit codes", async () => {
    const { startTestBroker, SECRETS } = await import("./support/broker.js");
    await using t = await startTestBroker();
    const env = {
      PERISHABLE_URL: t.url,
      PERISHABLE_ADMIN_KEY: SECRETS.admin,
      PERISHABLE_ISSUER_KEY: SECRETS.issuer,
    };

    const issued = await run(
      [
        "token",
        "issue",
        "--scope",
        "models:read",
        "llm:embed",
        "--ttl",
        "60",
        "--agent",
        "cli-agent",
        "--budget-usd",
        "2.5",
        "--max-concurrent",
        "3",
        "--json",
      ],
      env,
    );
    expect(issued.code).toBe(0);
    const root = JSON.parse(issued.stdout) as TokenResponse;
    expect(root).toMatchObject({
      agent: "cli-agent",
      scopes: ["models:read", "llm:embed"],
      budget: { usd: 2.5 },
      maxConcurrent: 3,
    });
    expect((await run(["token", "issue", "--scope", "models:read", "--budget-usd", "-1"], env)).code).toBe(2);
    const human = await run(["token", "issue", "--scope", "models:read"], env);
    expect(human.stdout).toMatch(/^FIELD\s+VALUE\ntoken\s+prs_/);

    const child = (await (
      await t.call("/v1/tokens", root.token, {
        method: "POST",
        body: JSON.stringify({ scopes: ["models:read"], agent: "cli-child" }),
      })
    ).json()) as TokenResponse;
    await t.call("/proxy/openai/v1/models", child.token);

    const ls = await run(["grants", "ls", "--agent", "cli-agent"], env);
    expect(ls.code).toBe(0);
    expect(ls.stdout.split("\n")[0]).toMatch(
      /^GRANT\s+AGENT\s+SCOPES\s+DEPTH\s+STATUS\s+TOKEN EXPIRES\s+ENDS\s+SPEND$/,
    );
    expect(ls.stdout).toContain(`${root.grantId}  cli-agent  models:read,llm:embed  0      live`);
    // The child's call is the root's spend too: free here, one slot taken and given back.
    expect(ls.stdout).toMatch(/\$0 \/ \$2\.5 · 0 \/ 3 in flight/);
    const lsJson = JSON.parse(
      (await run(["grants", "ls", "--root", root.grantId, "--json"], env)).stdout,
    ) as { grants: unknown[] };
    expect(lsJson.grants).toHaveLength(2);

    const tree = await run(["grants", "tree", child.grantId], env);
    expect(tree.code).toBe(0);
    const lines = tree.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(new RegExp(`^${root.grantId}  cli-agent  \\[models:read, llm:embed\\]  live`));
    expect(lines[0]).toContain("spent $0 / $2.5 · 0 / 3 in flight");
    expect(lines[1]).toMatch(new RegExp(`^└── ${child.grantId}  cli-child  \\[models:read\\]  live.*◀$`));

    const tail = await run(["audit", "tail", "--grant", child.grantId], env);
    expect(tail.code).toBe(0);
    expect(tail.stdout).toMatch(/delegated\s+cli-child/);
    expect(tail.stdout).toMatch(/used\s+cli-child\s+gr_\S+\s+GET openai\/v1\/models → 200/);

    const revoked = await run(["revoke", "--grant", root.grantId], env);
    expect(revoked).toMatchObject({ code: 0, stdout: "revoked 2 grants\n" });
    const bulk = JSON.parse((await run(["revoke", "--agent", "nobody", "--json"], env)).stdout) as {
      revoked: number;
    };
    expect(bulk.revoked).toBe(0);

    // Exit codes: 4 not found, 2 usage, 1 refused, 3 unreachable.
    expect((await run(["revoke", "--grant", "gr_0123456789abcdefghjkmnpqrs"], env)).code).toBe(4);
    expect((await run(["revoke", "--all"], env)).code).toBe(2);
    expect((await run(["revoke", "--grant", root.grantId, "--agent", "x"], env)).code).toBe(2);
    expect((await run(["grants", "ls"], { PERISHABLE_URL: t.url })).stderr).toContain(
      "set PERISHABLE_ADMIN_KEY",
    );
    const refused = await run(["grants", "ls"], {
      ...env,
      PERISHABLE_ADMIN_KEY: "pak_wrong-key-0123456789abcdef",
    });
    expect(refused).toMatchObject({
      code: 1,
      stderr: "perishable: unauthenticated: this route needs an admin key\n",
    });
    const port = await freePort();
    expect((await run(["grants", "ls", "--url", `http://127.0.0.1:${port}`], env)).code).toBe(3);
    // No secret on any output.
    expect(ls.stdout + tree.stdout + tail.stdout).not.toContain(root.token);
  }, 60_000); // a dozen CLI processes, one after the other: slow on a loaded machine

  it("follows the audit trail with audit tail -f", async () => {
    const { startTestBroker, SECRETS } = await import("./support/broker.js");
    await using t = await startTestBroker();
    const env = { PERISHABLE_URL: t.url, PERISHABLE_ADMIN_KEY: SECRETS.admin };
    const child = spawn(
      process.execPath,
      [bin, "audit", "tail", "-f", "--interval", "100", "--type", "issued"],
      {
        env: { ...BASE_ENV, ...env },
      },
    );
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    try {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const { grantId } = await t.issue({ scopes: ["models:read"], agent: "followed" });
      await expect.poll(() => stdout, { timeout: 5000 }).toContain(grantId);
      expect(stdout).toMatch(/issued\s+followed/);
    } finally {
      child.kill("SIGINT");
      await exitOf(child);
    }
  });
});
