import { spawn } from "node:child_process";
import { mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Anthropic from "@anthropic-ai/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SECRETS, startTestBroker, type TestBroker } from "./support/broker.js";

/**
 * `perishable token helper` as Claude Code runs its `apiKeyHelper`: a child process whose stdout
 * is the key. This test plays Claude Code: runs the helper, calls Anthropic's API through the
 * broker with what it printed (the beta and version headers Claude Code sends, count_tokens),
 * gets a 401 once the grant is revoked, and re-runs the helper — which then refuses to hand out
 * a token at all.
 */
let t: TestBroker;
const bin = fileURLToPath(new URL("../dist/bin.js", import.meta.url));

beforeAll(async () => {
  t = await startTestBroker({
    configure: (doc) => {
      doc.scopes["claude:messages"] = {
        upstream: "anthropic",
        endpoints: ["/v1/messages", "/v1/messages/count_tokens"],
        methods: ["POST"],
      };
    },
  });
});
afterAll(async () => t?.[Symbol.asyncDispose]());

const helper = (cache: string, args: string[] = []) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(
      process.execPath,
      [bin, "token", "helper", "-s", "claude:messages", "--agent", "claude-code", "--url", t.url, ...args],
      {
        env: {
          PATH: process.env.PATH ?? "",
          PERISHABLE_ISSUER_KEY: SECRETS.issuer,
          PERISHABLE_HELPER_CACHE: cache,
        },
      },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });

const claude = (key: string) =>
  new Anthropic({
    baseURL: `${t.url}/proxy/anthropic`,
    apiKey: key,
    maxRetries: 0,
    defaultHeaders: { "anthropic-beta": "oauth-2025-04-20,interleaved-thinking-2025-05-14" },
  });

describe("perishable token helper (Claude Code's apiKeyHelper)", () => {
  it("prints only a token, keeps it, refreshes at half its life, and stops for good once revoked", async () => {
    const cache = join(mkdtempSync(join(tmpdir(), "perishable-helper-")), "token.json");
    // Six seconds, so that the runs before half its life are done by then even on a busy machine.
    const first = await helper(cache, ["--ttl", "6"]);
    const issued = Date.now();
    expect(first.code).toBe(0);
    expect(first.stderr).toBe("");
    expect(first.stdout).toMatch(/^prs_[A-Za-z0-9_-]+\n$/);
    const key = first.stdout.trim();
    expect(statSync(cache).mode & 0o777).toBe(0o600);

    const message = await claude(key).messages.create({
      model: "claude-sonnet-4-5",
      max_tokens: 64,
      messages: [{ role: "user", content: "hi" }],
    });
    expect(message.content.length).toBeGreaterThan(0);
    const seen = t.mock.requests.at(-1)!;
    expect(seen.headers["anthropic-beta"]).toContain("interleaved-thinking");
    expect(seen.headers["x-api-key"]).toBe(SECRETS.anthropic);
    const counted = await claude(key).messages.countTokens({
      model: "claude-sonnet-4-5",
      messages: [{ role: "user", content: "hi" }],
    });
    expect(counted.input_tokens).toBeGreaterThan(0);

    // Within half its life: the same token, checked with the broker.
    expect((await helper(cache, ["--ttl", "6"])).stdout.trim()).toBe(key);
    // Past half: a refreshed one, the old still good until its own expiry.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, issued + 3_100 - Date.now())));
    const refreshed = (await helper(cache, ["--ttl", "6"])).stdout.trim();
    expect(refreshed).toMatch(/^prs_/);
    expect(refreshed).not.toBe(key);

    const self = (await (await t.call("/v1/tokens/self", refreshed)).json()) as {
      grant: { grantId: string };
    };
    expect((await t.admin(`/v1/grants/${self.grant.grantId}`, { method: "DELETE" })).status).toBe(200);
    const refused = await claude(refreshed)
      .messages.create({
        model: "claude-sonnet-4-5",
        max_tokens: 8,
        messages: [{ role: "user", content: "x" }],
      })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(Anthropic.AuthenticationError);
    // Claude Code re-runs the helper after a 401: no token, now or on any later run.
    for (let i = 0; i < 2; i++) {
      const again = await helper(cache, ["--ttl", "6"]);
      expect(again.code).toBe(1);
      expect(again.stdout).toBe("");
      expect(again.stderr).toContain("revoked");
    }
  });

  it("replaces a grant that merely ended, and never prints a refusal on stdout", async () => {
    const cache = join(mkdtempSync(join(tmpdir(), "perishable-helper-")), "token.json");
    const first = (await helper(cache, ["--ttl", "1"])).stdout.trim();
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    const next = await helper(cache, ["--ttl", "1"]);
    expect(next.code).toBe(0);
    expect(next.stdout.trim()).toMatch(/^prs_/);
    expect(next.stdout.trim()).not.toBe(first);
    const wrongKey = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = spawn(
        process.execPath,
        [bin, "token", "helper", "-s", "claude:messages", "--url", t.url],
        {
          env: {
            PATH: process.env.PATH ?? "",
            PERISHABLE_ISSUER_KEY: "pik_wrong-key-0123456789abcdef",
            PERISHABLE_HELPER_CACHE: `${cache}.other`,
          },
        },
      );
      let stdout = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d));
      child.on("close", (code) => resolve({ code, stdout }));
    });
    expect(wrongKey.code).not.toBe(0);
    expect(wrongKey.stdout).toBe("");
  });
});
