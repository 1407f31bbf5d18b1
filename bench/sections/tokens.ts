import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, startRedisServer } from "@perishable/test-support";
import { Redis } from "ioredis";
import { type Proc, spawnPinned } from "../lib/procs.js";
import { fmt, judged, type SectionReport } from "../lib/report.js";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const ISSUER = "pik_bench-issuer-key-0123456789abcdef";

const onCore1 = (script: string, options: object) =>
  JSON.parse(
    execFileSync(
      "taskset",
      ["-c", "1", process.execPath, here(`../procs/${script}`), JSON.stringify(options)],
      {
        encoding: "utf8",
        maxBuffer: 1 << 20,
      },
    ),
  );

/**
 * Issuance, refresh and delegation through one broker process (pinned to core 0) on Redis:
 * throughput at 32 connections and latency at 1; then 100,000 live grants, for the broker's RSS and
 * Redis memory per grant.
 */
export const tokensBench = async (
  grants = Number(process.env.BENCH_GRANTS ?? 100_000),
): Promise<SectionReport> => {
  await using redis = await startRedisServer({ cpu: 1 });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const file = join(mkdtempSync(join(tmpdir(), "perishable-bench-")), "perishable.yaml");
  writeFileSync(
    file,
    JSON.stringify({
      listen: { host: "127.0.0.1", port },
      secret: "sec_bench-secret-0123456789abcdefghij",
      store: { redis: redis.url, prefix: "bench" },
      limits: { max_depth: 8 },
      upstreams: { openai: { base_url: "http://127.0.0.1:1" } },
      scopes: {
        "llm:complete": { upstream: "openai", endpoints: ["/v1/chat/completions"], methods: ["POST"] },
      },
      issuers: [{ name: "bench", key: ISSUER, scopes: ["llm:complete"], max_ttl: 3600 }],
      log: { level: "warn" },
    }),
  );
  let broker: Proc | undefined;
  try {
    broker = await spawnPinned(
      0,
      [process.execPath, here("../../apps/broker/dist/bin.js"), "start", "--config", file],
      {
        readyCheck: () =>
          fetch(`${url}/readyz`).then(
            (r) => r.ok,
            () => false,
          ),
      },
    );
    const issue = async (credential: string) =>
      (await (
        await fetch(`${url}/v1/tokens`, {
          method: "POST",
          headers: { authorization: `Bearer ${credential}`, "content-type": "application/json" },
          body: JSON.stringify({ scopes: ["llm:complete"], ttl: 3600 }),
        })
      ).json()) as { token: string };
    const parent = await issue(ISSUER);
    const refreshing = await issue(ISSUER);
    const body = JSON.stringify({ scopes: ["llm:complete"], ttl: 600 });
    const kinds = [
      { name: "issue a root grant (issuer key)", path: "/v1/tokens", credential: ISSUER, body },
      { name: "refresh a token", path: "/v1/tokens/refresh", credential: refreshing.token, body: "{}" },
      { name: "delegate a child grant (prs_ token)", path: "/v1/tokens", credential: parent.token, body },
    ];
    const rows: string[][] = [];
    for (const kind of kinds) {
      const headers = { authorization: `Bearer ${kind.credential}`, "content-type": "application/json" };
      onCore1("load.mjs", {
        url: `${url}${kind.path}`,
        connections: 16,
        duration: 2,
        method: "POST",
        headers,
        body: kind.body,
      });
      const before = broker.cpuSeconds();
      const wide = onCore1("load.mjs", {
        url: `${url}${kind.path}`,
        connections: 32,
        duration: 5,
        method: "POST",
        headers,
        body: kind.body,
      });
      const cpu = ((broker.cpuSeconds() - before) / Math.max(1, wide.requests)) * 1e6;
      const one = onCore1("latency.mjs", { url: `${url}${kind.path}`, seconds: 3, headers, body: kind.body });
      rows.push([
        kind.name,
        `${fmt(wide.rps, 0)} /s`,
        `${fmt(one.p50, 3)} / ${fmt(one.p99, 3)} ms`,
        `${fmt(cpu, 0)} µs`,
        kind.name.startsWith("issue")
          ? judged("≥ 5,000/s", wide.rps >= 5_000)
          : kind.name.startsWith("delegate")
            ? judged("p99 < 2 ms", one.p99 < 2)
            : "",
      ]);
    }

    // 100,000 live grants: what they cost the broker process (nothing: it keeps none) and Redis.
    const probe = new Redis(redis.url);
    const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await probe.info("memory"))?.[1]);
    const rssBefore = broker.rssBytes();
    const memoryBefore = await usedMemory();
    const keysBefore = await probe.dbsize();
    onCore1("load.mjs", {
      url: `${url}/v1/tokens`,
      connections: 32,
      amount: grants,
      method: "POST",
      headers: { authorization: `Bearer ${ISSUER}`, "content-type": "application/json" },
      body,
    });
    const memoryAfter = await usedMemory();
    const keysAfter = await probe.dbsize();
    probe.disconnect();
    const rssAfter = broker.rssBytes();
    rows.push(
      [
        `${fmt(grants, 0)} more live grants: broker RSS`,
        `${fmt(rssBefore / 2 ** 20, 1)} → ${fmt(rssAfter / 2 ** 20, 1)} MiB`,
        "",
        "",
        "",
      ],
      [
        `${fmt(grants, 0)} more live grants: Redis memory`,
        `${fmt((memoryAfter - memoryBefore) / grants, 0)} bytes per grant`,
        `${fmt((keysAfter - keysBefore) / grants, 1)} keys per grant`,
        "",
        "",
      ],
    );
    return {
      id: "tokens",
      title: "Token issuance, refresh and delegation",
      command: "corepack pnpm bench tokens",
      header: [
        "measure",
        "throughput (32 connections)",
        "latency p50 / p99 (1 connection)",
        "broker CPU per call",
        "target",
      ],
      rows,
      notes: [
        "One broker process pinned to core 0, on Redis; autocannon and the 1-connection client pinned to core 1 with Redis.",
        "A grant with its first token is a grant hash, a token hash, a token-id key, a token-set entry, a lineage-tree entry and its expiry-index entry; the broker process keeps none of it (its RSS is flat).",
      ],
    };
  } finally {
    await broker?.stop();
  }
};
