import { mkdtempSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AuditPage, eventsOf } from "@perishable/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SECRETS, startTestBroker, type TestBroker, testConfigDocument } from "./support/broker.js";
import { startProcessBroker } from "./support/process-broker.js";

/**
 * Upstream keys from files (`${file:…}`), rotated under a live broker: the file is swapped the
 * way Kubernetes and Vault Agent do it while requests are in flight; new requests carry the new
 * key, none fails, and a rotation that leaves an empty file keeps the old key and says so.
 */
let t: TestBroker;
const dir = mkdtempSync(join(tmpdir(), "perishable-keys-"));
const keyFile = join(dir, "openai-key");
const OLD = "sk-rotation-OLD-0123456789abcdef";
const NEW = "sk-rotation-NEW-fedcba9876543210";

/** Replaces the file at once (write beside it, rename over it), as secret mounts do. */
const swap = (content: string) => {
  const temporary = join(dir, `.tmp-${Date.now()}`);
  writeFileSync(temporary, content);
  renameSync(temporary, keyFile);
};

beforeAll(async () => {
  swap(`${OLD}\n`);
  t = await startTestBroker({
    mock: { chunks: 20, chunkDelayMs: 25 },
    configure: (doc) => {
      doc.upstreams.openai!.auth = { header: "authorization", value: `Bearer \${file:${keyFile}}` };
    },
  });
});
afterAll(async () => t?.[Symbol.asyncDispose]());

const chat = (token: string, stream = false) =>
  t.call("/proxy/openai/v1/chat/completions", token, {
    method: "POST",
    body: JSON.stringify({ model: "gpt-4o-mini", stream, messages: [{ role: "user", content: "hi" }] }),
  });
const lastKey = () => t.mock.requests.at(-1)?.headers.authorization;

describe("upstream key rotation", () => {
  it("takes a new key for new requests while requests in flight finish, and never fails one", async () => {
    const { token } = await t.issue({ scopes: ["llm:complete"] });
    expect((await chat(token)).status).toBe(200);
    expect(lastKey()).toBe(`Bearer ${OLD}`);
    // Streams in flight across the swap, and calls all the while.
    const streams = Array.from({ length: 4 }, () =>
      chat(token, true).then(async (r) => [r.status, await r.text()] as const),
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    swap(`${NEW}\n`);
    const statuses: number[] = [];
    const deadline = Date.now() + 5_000;
    while (lastKey() !== `Bearer ${NEW}` && Date.now() < deadline) statuses.push((await chat(token)).status);
    expect(lastKey()).toBe(`Bearer ${NEW}`);
    for (const [status, body] of await Promise.all(streams)) {
      expect(status).toBe(200);
      expect(body).toContain("[DONE]");
    }
    expect(statuses.every((s) => s === 200)).toBe(true);
    const audit = (await (await t.admin("/v1/audit?type=upstream_key_rotated")).json()) as AuditPage;
    expect(eventsOf(audit.events, "upstream_key_rotated").map((e) => e.upstream)).toContain("openai");
    expect(JSON.stringify(audit)).not.toContain(NEW);
    expect(await (await t.call("/metrics", undefined)).text()).toMatch(
      /perishable_upstream_key_rotations_total\{upstream="openai",result="rotated"\} 1/,
    );
  });

  it("keeps the last good key when the file turns empty, and says so in the log, a metric and /readyz", async () => {
    const { token } = await t.issue({ scopes: ["llm:complete"] });
    swap("");
    t.broker.server.keys.reload();
    expect((await chat(token)).status).toBe(200);
    expect(lastKey()).toBe(`Bearer ${NEW}`);
    const ready = (await (await t.call("/readyz", undefined)).json()) as {
      staleUpstreamKeys?: Record<string, string>;
    };
    expect(ready.staleUpstreamKeys?.openai).toContain("empty");
    expect(t.logs()).toContain("upstream key not rotated");
    expect(t.logs()).not.toContain(NEW);
    expect(await (await t.call("/metrics", undefined)).text()).toMatch(/result="refused"\} [1-9]/);
    swap(`${NEW}\n`);
    t.broker.server.keys.reload();
    expect((await (await t.call("/readyz", undefined)).json()) as object).toEqual({ status: "ready" });
  });

  it("reads keys again on SIGHUP instead of dying of it", async () => {
    const doc = testConfigDocument(t.mock.url);
    doc.upstreams.openai!.auth = { header: "authorization", value: `Bearer \${file:${keyFile}}` };
    await using node = await startProcessBroker(doc);
    node.process.kill("SIGHUP");
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(node.process.exitCode).toBeNull();
    expect((await fetch(`${node.url}/readyz`)).status).toBe(200);
  });

  it("applies a new file's scopes on SIGHUP, and refuses a file that is invalid or does not fit", async () => {
    const doc = testConfigDocument(t.mock.url);
    await using node = await startProcessBroker(doc);
    const issued = (await (
      await fetch(`${node.url}/v1/tokens`, {
        method: "POST",
        headers: { authorization: `Bearer ${SECRETS.issuer}`, "content-type": "application/json" },
        body: JSON.stringify({ scopes: ["llm:complete"] }),
      })
    ).json()) as { token: string };
    const ask = (model: string) =>
      fetch(`${node.url}/proxy/openai/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${issued.token}`, "content-type": "application/json" },
        body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
      }).then((r) => r.status);
    const { listen } = JSON.parse(readFileSync(node.file, "utf8")) as { listen: unknown };
    const rewrite = (change: (d: typeof doc) => void) => {
      const next = structuredClone(doc);
      change(next);
      writeFileSync(node.file, JSON.stringify({ ...next, listen }));
    };
    const hup = async () => {
      node.process.kill("SIGHUP");
      await new Promise((resolve) => setTimeout(resolve, 300));
    };
    expect(await ask("gpt-4o-mini")).toBe(200);
    rewrite((d) => {
      d.scopes["llm:complete"]!.models = ["gpt-4.1-*"];
    });
    await hup();
    expect(await ask("gpt-4o-mini")).toBe(403);
    expect(await ask("gpt-4.1-mini")).toBe(200);
    expect(node.output()).toContain("config reloaded");
    // Invalid as a whole, or dropping a scope an issuer grants: nothing of it is taken.
    writeFileSync(node.file, "scopes: [not, a, mapping");
    await hup();
    rewrite((d) => {
      delete d.scopes["llm:embed"];
      d.scopes["llm:complete"]!.models = ["gpt-4o-mini"];
    });
    await hup();
    expect(await ask("gpt-4o-mini")).toBe(403);
    expect(node.output().match(/config not reloaded/g)).toHaveLength(2);
    expect(node.process.exitCode).toBeNull();
  });
});
