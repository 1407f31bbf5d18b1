import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, seenCommand, startRedisServer } from "@perishable/test-support";
import { Redis } from "ioredis";
import { Agent, request } from "undici";
import { type Proc, spawnPinned } from "../lib/procs.js";
import { fmt, judged, percentile, type SectionReport } from "../lib/report.js";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const KEYS = {
  issuer: "pik_bench-issuer-key-0123456789abcdef",
  admin: "pak_bench-admin-key-0123456789abcdef",
  secret: "sec_bench-secret-0123456789abcdefghij",
};
const UPSTREAM_KEY = "sk-bench-upstream-key-0123456789";
const BODY = JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Say hello." }] });
const STREAM_BODY = JSON.stringify({
  model: "gpt-4o-mini",
  stream: true,
  messages: [{ role: "user", content: "Say hello." }],
});
/** The proxies run on core 0; the load generator, the mock upstream and Redis on core 1. */
const PROXY_CPU = 0;
const REST_CPU = 1;

interface Peer {
  readonly name: "direct" | "node floor" | "broker" | "broker, budgeted" | "broker, script per request";
  readonly url: string;
  readonly credential: string;
  /** The process whose CPU a request costs (none for direct). */
  readonly proc: Proc | undefined;
}

interface Run {
  rps: number;
  redisCpuPerRequestUs: number;
  p50: number;
  p99: number;
  requests: number;
  cpuPerRequestUs: number;
  errors: number;
}

/** CPU seconds of any process by pid (Redis). */
const cpuOf = (pid: number | undefined): number => {
  if (!pid) return 0;
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
};
let redisPid: number | undefined;

/** One connection, one request after the other, timed to the microsecond (autocannon rounds to ms). */
const latency = (peer: Peer, seconds: number) =>
  JSON.parse(
    execFileSync(
      "taskset",
      [
        "-c",
        String(REST_CPU),
        process.execPath,
        here("../procs/latency.mjs"),
        JSON.stringify({
          url: peer.url,
          seconds,
          headers: { authorization: `Bearer ${peer.credential}`, "content-type": "application/json" },
          body: BODY,
        }),
      ],
      { encoding: "utf8" },
    ),
  ) as { requests: number; p50: number; p99: number };

const load = (peer: Peer, connections: number, seconds: number): Run => {
  const before = peer.proc?.cpuSeconds() ?? 0;
  const redisBefore = cpuOf(redisPid);
  const out = execFileSync(
    "taskset",
    [
      "-c",
      String(REST_CPU),
      process.execPath,
      here("../procs/load.mjs"),
      JSON.stringify({
        url: peer.url,
        connections,
        duration: seconds,
        method: "POST",
        headers: { authorization: `Bearer ${peer.credential}`, "content-type": "application/json" },
        body: BODY,
      }),
    ],
    { encoding: "utf8", maxBuffer: 1 << 20 },
  );
  const r = JSON.parse(out) as {
    requests: number;
    rps: number;
    p50: number;
    p99: number;
    errors: number;
    non2xx: number;
    timeouts: number;
  };
  const cpu = (peer.proc?.cpuSeconds() ?? 0) - before;
  const redisCpu = cpuOf(redisPid) - redisBefore;
  return {
    redisCpuPerRequestUs: (redisCpu / Math.max(1, r.requests)) * 1e6,
    rps: r.rps,
    p50: r.p50,
    p99: r.p99,
    requests: r.requests,
    cpuPerRequestUs: (cpu / Math.max(1, r.requests)) * 1e6,
    errors: r.errors + r.non2xx + r.timeouts,
  };
};

/** One SSE request: time to the first chunk, time to the last, and whether the first came before the upstream's last. */
/** Short keep-alive: the servers under test close idle sockets after 5 s, and a reused one racing that close fails. */
const agent = new Agent({ keepAliveTimeout: 1_000 });

const stream = async (peer: Peer) => {
  const started = performance.now();
  const response = await request(peer.url, {
    dispatcher: agent,
    method: "POST",
    headers: { authorization: `Bearer ${peer.credential}`, "content-type": "application/json" },
    body: STREAM_BODY,
  });
  let first = Number.NaN;
  let events = 0;
  for await (const chunk of response.body) {
    if (Number.isNaN(first)) first = performance.now() - started;
    events += (chunk.toString().match(/^data: /gm) ?? []).length;
  }
  return { ttfb: first, total: performance.now() - started, events };
};

/**
 * Direct, the node floor and the broker side by side, interleaved round by round: throughput
 * and latency at 32 connections, latency at 1, CPU per request, and SSE first-byte times.
 */
export const proxyBench = async (
  rounds = Number(process.env.BENCH_ROUNDS ?? 3),
  seconds = Number(process.env.BENCH_SECONDS ?? 6),
): Promise<SectionReport> => {
  await using redis = await startRedisServer({ cpu: REST_CPU });
  redisPid = redis.pid();
  const procs: Proc[] = [];
  try {
    const mockPort = await freePort();
    const mockUrl = `http://127.0.0.1:${mockPort}`;
    procs.push(
      await spawnPinned(REST_CPU, [process.execPath, here("../procs/mock.mjs"), String(mockPort), "10"], {
        ready: /ready/,
      }),
    );

    const floorPort = await freePort();
    const floor = await spawnPinned(
      PROXY_CPU,
      [process.execPath, here("../procs/floor.mjs"), String(floorPort), mockUrl, redis.url, UPSTREAM_KEY],
      {
        ready: /ready/,
      },
    );
    procs.push(floor);
    const probe = new Redis(redis.url);
    await probe.set("floor:floor-token-0123456789", "1");

    // The broker as an operator would run it: scopes with endpoint patterns, a rate limit, a model
    // constraint, the audit trail on (Redis stream), metrics on.
    const brokerPort = await freePort();
    const config = {
      listen: { host: "127.0.0.1", port: brokerPort },
      secret: KEYS.secret,
      store: { redis: redis.url, prefix: "bench" },
      upstreams: {
        openai: { base_url: mockUrl, auth: { header: "authorization", value: `Bearer ${UPSTREAM_KEY}` } },
      },
      scopes: {
        "llm:complete": {
          upstream: "openai",
          endpoints: ["/v1/chat/completions", "/v1/completions", "/v1/responses"],
          methods: ["POST"],
          rate_limit: "10000000/minute",
          models: ["gpt-4o-mini", "gpt-4.1-*"],
        },
        "llm:embed": { upstream: "openai", endpoints: ["/v1/embeddings"], methods: ["POST"] },
        "files:read": { upstream: "openai", endpoints: ["/v1/files/*"], methods: ["GET"] },
      },
      issuers: [
        {
          name: "bench",
          key: KEYS.issuer,
          scopes: ["llm:complete", "llm:embed", "files:read"],
          max_ttl: 3600,
        },
      ],
      admins: [{ name: "secops", key: KEYS.admin }],
      // Priced, so a budgeted token's calls reserve and settle; an unbudgeted one's are only costed.
      prices: { openai: { "gpt-4o-mini": { input: 0.15, output: 0.6, max_output: 1_000 } } },
      log: { level: "warn" },
    };
    // The broker twice: node-local hot path on (the default), and off (the script per request).
    const spawnBroker = async (port: number, nodeLocal: boolean) => {
      const file = join(mkdtempSync(join(tmpdir(), "perishable-bench-")), "perishable.yaml");
      const doc = {
        ...config,
        listen: { host: "127.0.0.1", port },
        store: { ...config.store, node_local: nodeLocal },
      };
      writeFileSync(file, JSON.stringify(doc));
      const url = `http://127.0.0.1:${port}`;
      const proc = await spawnPinned(
        PROXY_CPU,
        [
          process.execPath,
          // BENCH_PROFILE=<dir>: the broker writes a V8 CPU profile there when it stops (bench/profile.ts reads it).
          ...(process.env.BENCH_PROFILE && nodeLocal
            ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROFILE}`]
            : []),
          here("../../apps/broker/dist/bin.js"),
          "start",
          "--config",
          file,
        ],
        {
          readyCheck: () =>
            fetch(`${url}/readyz`).then(
              (r) => r.ok,
              () => false,
            ),
        },
      );
      procs.push(proc);
      return proc;
    };
    const brokerUrl = `http://127.0.0.1:${brokerPort}`;
    const broker = await spawnBroker(brokerPort, true);
    const scriptPort = await freePort();
    const scriptBroker = await spawnBroker(scriptPort, false);
    const issued = (await (
      await fetch(`${brokerUrl}/v1/tokens`, {
        method: "POST",
        headers: { authorization: `Bearer ${KEYS.issuer}`, "content-type": "application/json" },
        body: JSON.stringify({ scopes: ["llm:complete"], ttl: 3600 }),
      })
    ).json()) as { token: string };

    const budgeted = (await (
      await fetch(`${brokerUrl}/v1/tokens`, {
        method: "POST",
        headers: { authorization: `Bearer ${KEYS.issuer}`, "content-type": "application/json" },
        body: JSON.stringify({ scopes: ["llm:complete"], ttl: 3600, budget: { usd: 100_000 } }),
      })
    ).json()) as { token: string };
    const scriptPeer: Peer = {
      name: "broker, script per request",
      url: `http://127.0.0.1:${scriptPort}/proxy/openai/v1/chat/completions`,
      credential: issued.token,
      proc: scriptBroker,
    };
    const budgetPeer: Peer = {
      name: "broker, budgeted",
      url: `${brokerUrl}/proxy/openai/v1/chat/completions`,
      credential: budgeted.token,
      proc: broker,
    };
    const peers: Peer[] = [
      { name: "direct", url: `${mockUrl}/v1/chat/completions`, credential: UPSTREAM_KEY, proc: undefined },
      {
        name: "node floor",
        url: `http://127.0.0.1:${floorPort}/floor/v1/chat/completions`,
        credential: "floor-token-0123456789",
        proc: floor,
      },
      {
        name: "broker",
        url: `${brokerUrl}/proxy/openai/v1/chat/completions`,
        credential: issued.token,
        proc: broker,
      },
    ];
    const rssLaunch = broker.rssBytes();
    // Warm up every peer at the load it will see (JIT, pools, scripts, heap sized for the load).
    for (const peer of [...peers, budgetPeer, scriptPeer]) load(peer, 32, 4);
    const heapUsed = async () =>
      Number(
        /^perishable_nodejs_heap_size_used_bytes (\d+)/m.exec(
          await (await fetch(`${brokerUrl}/metrics`)).text(),
        )?.[1] ?? 0,
      );
    const rssStart = broker.rssBytes();
    const heapStart = await heapUsed();

    const wide = new Map<string, Run[]>([...peers, budgetPeer, scriptPeer].map((p) => [p.name, []]));
    const single = new Map<string, { p50: number; p99: number }[]>(peers.map((p) => [p.name, []]));
    const streams = new Map<string, { ttfb: number; total: number; events: number }[]>(
      peers.map((p) => [p.name, []]),
    );
    const streamErrors: string[] = [];
    for (let round = 0; round < rounds; round++) {
      for (const peer of [...peers, budgetPeer, scriptPeer])
        wide.get(peer.name)!.push(load(peer, 32, seconds));
      for (const peer of peers) single.get(peer.name)!.push(latency(peer, Math.max(3, seconds / 2)));
      for (let i = 0; i < 10; i++) {
        for (const peer of peers) {
          try {
            // One retry: a reused keep-alive socket may race the server closing it (a client artifact).
            streams.get(peer.name)!.push(await stream(peer).catch(() => stream(peer)));
          } catch (error) {
            streamErrors.push(`${peer.name} (round ${round}, stream ${i}): ${(error as Error).message}`);
          }
        }
      }
    }
    const rssEnd = broker.rssBytes();
    const heapEnd = await heapUsed();

    // Round trips to Redis per proxied request, watched with MONITOR (script-internal commands excluded).
    const monitor = await probe.monitor();
    const sent: string[] = [];
    monitor.on("monitor", (_time: string, args: string[], source: string) => {
      const seen = seenCommand(args, source);
      if (!seen.background) sent.push(seen.command);
    });
    for (let i = 0; i < 50; i++)
      await (
        await request(peers[2]!.url, {
          dispatcher: agent,
          method: "POST",
          headers: { authorization: `Bearer ${issued.token}`, "content-type": "application/json" },
          body: BODY,
        })
      ).body.text();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const roundTrips = sent.length / 50;
    // The same with a budget: served from slices of spend leased as flights (a lease now and then,
    // on the tree's `fl` set like the settlements, which are batched off the request path).
    sent.length = 0;
    let settles = 0;
    monitor.removeAllListeners("monitor");
    monitor.on("monitor", (_time: string, args: string[], source: string) => {
      const seen = seenCommand(args, source);
      if (seen.background) return;
      if (/\}:fl$/.test(seen.key ?? "")) settles += 1;
      else sent.push(seen.command);
    });
    for (let i = 0; i < 50; i++)
      await (
        await request(budgetPeer.url, {
          dispatcher: agent,
          method: "POST",
          headers: { authorization: `Bearer ${budgeted.token}`, "content-type": "application/json" },
          body: BODY,
        })
      ).body.text();
    await new Promise((resolve) => setTimeout(resolve, 200));
    monitor.disconnect();
    probe.disconnect();
    const budgetRoundTrips = sent.length / 50;

    const med = (runs: Run[], key: keyof Run) =>
      percentile(
        runs.map((r) => r[key]),
        50,
      );
    const value = (name: string, key: keyof Run) => med(wide.get(name)!, key);
    const direct = (key: keyof Run) => value("direct", key);
    const one = (name: string, key: "p50" | "p99") =>
      percentile(
        single.get(name)!.map((r) => r[key]),
        50,
      );
    const ratio = (a: number, b: number) => (Number.isFinite(a / b) ? `${fmt(a / b, 2)}×` : "-");
    const atMost = (a: number, b: number, limit: number, label: string) => judged(label, a / b <= limit);
    const added = (name: string, key: "p50" | "p99") => one(name, key) - one("direct", key);
    const ttfb = (name: string) =>
      percentile(
        streams.get(name)!.map((s) => s.ttfb),
        50,
      );
    const addedTtfb = (name: string) => ttfb(name) - ttfb("direct");
    // The mock writes 20 chunks 10 ms apart: its last one leaves ~190 ms after its first.
    const firstBeforeLast = (name: string) => streams.get(name)!.every((s) => s.ttfb < 150 && s.events >= 20);
    const errors = [...wide.values()].flat().reduce((n, r) => n + r.errors, 0);

    const row = (label: string, d: string, f: string, b: string, r: string, target: string) => [
      label,
      d,
      f,
      b,
      r,
      target,
    ];
    return {
      id: "proxy",
      title: "Proxied requests: direct, the node floor and the broker",
      command: "corepack pnpm bench proxy",
      header: ["measure", "direct", "node floor", "broker", "broker ÷ floor", "target"],
      rows: [
        row(
          "throughput, 32 connections (req/s)",
          fmt(direct("rps"), 0),
          fmt(value("node floor", "rps"), 0),
          fmt(value("broker", "rps"), 0),
          ratio(value("broker", "rps"), value("node floor", "rps")),
          judged("≥ 1.0×", value("broker", "rps") / value("node floor", "rps") >= 1),
        ),
        row(
          "latency p50 / p99, 32 connections (ms)",
          `${fmt(direct("p50"))} / ${fmt(direct("p99"))}`,
          `${fmt(value("node floor", "p50"))} / ${fmt(value("node floor", "p99"))}`,
          `${fmt(value("broker", "p50"))} / ${fmt(value("broker", "p99"))}`,
          "",
          "",
        ),
        row(
          "CPU per request (µs, user + sys of the proxy process)",
          "-",
          fmt(value("node floor", "cpuPerRequestUs"), 0),
          fmt(value("broker", "cpuPerRequestUs"), 0),
          ratio(value("broker", "cpuPerRequestUs"), value("node floor", "cpuPerRequestUs")),
          atMost(value("broker", "cpuPerRequestUs"), value("node floor", "cpuPerRequestUs"), 1, "≤ 1.0×"),
        ),
        row(
          "with store.node_local: false (the script per request): CPU µs / req/s",
          "-",
          "-",
          `${fmt(value("broker, script per request", "cpuPerRequestUs"), 0)} / ${fmt(value("broker, script per request", "rps"), 0)}`,
          `${ratio(value("broker, script per request", "cpuPerRequestUs"), value("node floor", "cpuPerRequestUs"))} / ${ratio(value("broker, script per request", "rps"), value("node floor", "rps"))}`,
          "",
        ),
        row(
          "CPU per request with a budget (µs; ratio: ÷ the broker without one)",
          "-",
          "-",
          fmt(value("broker, budgeted", "cpuPerRequestUs"), 0),
          ratio(value("broker, budgeted", "cpuPerRequestUs"), value("broker", "cpuPerRequestUs")),
          "",
        ),
        row(
          "Redis CPU per request with a budget (µs; ratio: ÷ without one)",
          "-",
          "-",
          fmt(value("broker, budgeted", "redisCpuPerRequestUs"), 0),
          ratio(value("broker, budgeted", "redisCpuPerRequestUs"), value("broker", "redisCpuPerRequestUs")),
          "",
        ),
        row(
          "Redis CPU per request (µs; Redis shares the load generator's core)",
          "-",
          fmt(value("node floor", "redisCpuPerRequestUs"), 0),
          fmt(value("broker", "redisCpuPerRequestUs"), 0),
          ratio(value("broker", "redisCpuPerRequestUs"), value("node floor", "redisCpuPerRequestUs")),
          "",
        ),
        row(
          "latency p50 / p99, 1 connection (ms)",
          `${fmt(one("direct", "p50"), 3)} / ${fmt(one("direct", "p99"), 3)}`,
          `${fmt(one("node floor", "p50"), 3)} / ${fmt(one("node floor", "p99"), 3)}`,
          `${fmt(one("broker", "p50"), 3)} / ${fmt(one("broker", "p99"), 3)}`,
          "",
          "",
        ),
        row(
          "added p50, 1 connection (ms)",
          "-",
          fmt(added("node floor", "p50"), 3),
          fmt(added("broker", "p50"), 3),
          ratio(added("broker", "p50"), added("node floor", "p50")),
          atMost(added("broker", "p50"), added("node floor", "p50"), 1, "≤ 1.0×"),
        ),
        row(
          "added p99, 1 connection (ms)",
          "-",
          fmt(added("node floor", "p99"), 3),
          fmt(added("broker", "p99"), 3),
          ratio(added("broker", "p99"), added("node floor", "p99")),
          atMost(added("broker", "p99"), added("node floor", "p99"), 1.5, "≤ 1.5×"),
        ),
        row(
          "SSE time to first chunk, p50 (ms)",
          fmt(ttfb("direct")),
          fmt(ttfb("node floor")),
          fmt(ttfb("broker")),
          "",
          "",
        ),
        row(
          "SSE added time to first chunk (ms)",
          "-",
          fmt(addedTtfb("node floor")),
          fmt(addedTtfb("broker")),
          ratio(addedTtfb("broker"), addedTtfb("node floor")),
          atMost(addedTtfb("broker"), addedTtfb("node floor"), 1.2, "≤ 1.2×"),
        ),
        row(
          "every stream's first chunk before the upstream's last",
          String(firstBeforeLast("direct")),
          String(firstBeforeLast("node floor")),
          String(firstBeforeLast("broker")),
          "",
          judged("true", firstBeforeLast("broker")),
        ),
        row(
          "Redis round trips per proxied request (steady state, node-local path)",
          "-",
          "1",
          fmt(roundTrips, 2),
          "",
          judged("0", roundTrips === 0),
        ),
        row(
          "Redis round trips per budgeted request (+ on the flights set: slice leases, renewals, settlements)",
          "-",
          "1",
          `${fmt(budgetRoundTrips, 2)} (+${fmt(settles / 50, 2)})`,
          "",
          judged("< 1", budgetRoundTrips < 1),
        ),
        row(
          "broker RSS after warm-up → after the run",
          "-",
          "-",
          `${fmt(rssStart / 2 ** 20, 1)} → ${fmt(rssEnd / 2 ** 20, 1)} MiB (${fmt(((rssEnd - rssStart) / rssStart) * 100, 1)} %)`,
          "",
          judged("< +20 %", (rssEnd - rssStart) / rssStart < 0.2),
        ),
        row(
          "broker heap used after warm-up → after the run",
          "-",
          "-",
          `${fmt(heapStart / 2 ** 20, 1)} → ${fmt(heapEnd / 2 ** 20, 1)} MiB`,
          "",
          "",
        ),
      ],
      notes: [
        `Medians of ${rounds} interleaved rounds (${seconds} s at 32 connections, ${Math.max(3, seconds / 2)} s at 1 connection per peer and round; 30 SSE streams per peer). Failed or non-2xx responses over all runs: ${errors}.`,
        "The proxies run pinned to core 0; autocannon, the mock upstream and Redis to core 1. The node floor is `bench/procs/floor.mjs`: node:http, one ioredis GET of a static bearer, the key injected, undici `Pool.stream()`.",
        "The broker runs with scopes with endpoint patterns, a rate limit, a model constraint (so every body is read and checked), the audit trail to a Redis stream and metrics on; its token is a real `prs_` token.",
        ...(streamErrors.length ? [`Stream errors: ${streamErrors.join("; ")}`] : []),
        `Broker RSS at launch ${fmt(rssLaunch / 2 ** 20, 1)} MiB, ${fmt(rssStart / 2 ** 20, 1)} MiB after a 4-second warm-up of each peer at 32 connections; latency at 1 connection is measured by its own client (undici, one keep-alive connection, requests back to back).`,
      ],
    };
  } finally {
    for (const proc of procs.reverse()) await proc.stop();
  }
};
