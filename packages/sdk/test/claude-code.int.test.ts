import { mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { query } from "@anthropic-ai/claude-agent-sdk";
import { type DevBroker, startDevBroker } from "@perishable/broker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * Claude Code, run by the Claude Agent SDK (@anthropic-ai/claude-agent-sdk and its bundled CLI),
 * pointed at the broker with `ANTHROPIC_BASE_URL` and getting its key from `apiKeyHelper` =
 * `perishable token helper`: it works, Anthropic (the mock) sees only the upstream's key, and
 * once the grant is revoked Claude Code's re-run of the helper gets nothing — no call goes out.
 */
const bin = fileURLToPath(new URL("../../../apps/broker/dist/bin.js", import.meta.url));
let dev: DevBroker;
let home: string;

beforeAll(async () => {
  dev = await startDevBroker({
    configure: (doc) => {
      doc.log = { level: "error" };
    },
  });
  home = mkdtempSync(join(tmpdir(), "perishable-claude-"));
  mkdirSync(join(home, "work"));
});
afterAll(async () => dev?.close());

const ask = async () => {
  const seen: { type: string; subtype?: string; is_error?: boolean }[] = [];
  for await (const message of query({
    prompt: "Say hello.",
    options: {
      maxTurns: 1,
      model: "claude-sonnet-4-5",
      cwd: join(home, "work"),
      settings: {
        apiKeyHelper: `${process.execPath} ${bin} token helper -s claude:messages --agent claude-code --ttl 600 --url ${dev.url}`,
      },
      env: {
        PATH: process.env.PATH ?? "",
        HOME: home,
        PERISHABLE_ISSUER_KEY: dev.issuerKey,
        PERISHABLE_HELPER_CACHE: join(home, "helper.json"),
        ANTHROPIC_BASE_URL: `${dev.url}/proxy/anthropic`,
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
        DISABLE_TELEMETRY: "1",
        DISABLE_AUTOUPDATER: "1",
      },
    },
  }))
    seen.push(message as never);
  return seen;
};

describe("Claude Code through the Claude Agent SDK, keyed by perishable token helper", () => {
  it("answers through the broker, and after a revocation gets no key and makes no call", async () => {
    const first = await ask();
    expect(first.at(-1)).toMatchObject({ type: "result", subtype: "success" });
    const calls = dev.mock!.requests.filter((r) => r.url.startsWith("/v1/messages"));
    expect(calls.length).toBeGreaterThan(0);
    for (const call of calls) {
      expect(call.headers["x-api-key"]).not.toMatch(/^prs_/);
      expect(JSON.stringify(call.headers)).not.toContain("prs_");
    }
    const { token } = JSON.parse(readFileSync(join(home, "helper.json"), "utf8")) as { token: string };
    const revoked = await fetch(`${dev.url}/v1/tokens/self`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${token}` },
    });
    expect(revoked.status).toBe(200);
    const before = dev.mock!.requests.length;
    // Claude Code runs the helper again; the helper refuses a revoked grant: no key, no call.
    await expect(ask()).rejects.toThrow(/apiKeyHelper/);
    expect(dev.mock!.requests.length).toBe(before);
  });
});
