/**
 * `pnpm soak`: a bounded reliability run on loopback. Two broker processes share a private Redis;
 * SOAK_SESSIONS agent sessions (4-second tokens, so each refreshes every ~2 s) call through both
 * nodes, delegate to short-lived sub-agents, and have their grants revoked while the load runs,
 * plus one bulk revocation by agent. It counts failed calls on live grants (must be 0) and calls
 * accepted after their revocation had taken effect (must be 0), samples the brokers' memory, and
 * writes the figures to docs/reliability.md.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { devConfig, startMockUpstream } from "@perishable/broker";
import { connect, type Session } from "@perishable/sdk";
import { freePort, startRedisServer } from "@perishable/test-support";
import { fmt, machine, markdownTable, percentile } from "./lib/report.js";

const SECONDS = Number(process.env.SOAK_SECONDS ?? 120);
const SESSIONS = Number(process.env.SOAK_SESSIONS ?? 60);
const KEYS = {
  issuer: "pik_soak-issuer-key-0123456789abcdef",
  admin: "pak_soak-admin-key-0123456789abcdef",
  secret: "sec_soak-secret-0123456789abcdefghij",
};
const bin = fileURLToPath(new URL("../apps/broker/dist/bin.js", import.meta.url));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const startNode = async (doc: object) => {
  const port = await freePort();
  const file = join(mkdtempSync(join(tmpdir(), "perishable-soak-")), "perishable.yaml");
  writeFileSync(file, JSON.stringify({ ...doc, listen: { host: "127.0.0.1", port } }));
  const child = spawn(process.execPath, [bin, "start", "--config", file], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  const url = `http://127.0.0.1:${port}`;
  for (
    let i = 0;
    i < 100 &&
    !(await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    ));
    i++
  )
    await sleep(100);
  const rss = () =>
    Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))?.[1] ?? 0) * 1024;
  const heap = async () =>
    Number(
      /^perishable_nodejs_heap_size_used_bytes (\d+)/m.exec(
        await (await fetch(`${url}/metrics`)).text(),
      )?.[1] ?? 0,
    );
  return { url, child, rss, heap };
};

await using redis = await startRedisServer();
const mock = await startMockUpstream();
const doc = devConfig({
  port: 0,
  secret: KEYS.secret,
  issuerKey: KEYS.issuer,
  adminKey: KEYS.admin,
  openai: { baseUrl: mock.url, key: "sk-soak-upstream" },
  anthropic: { baseUrl: mock.url, key: "sk-ant-soak-upstream" },
});
doc.store = { redis: redis.url, prefix: "soak" };
// Keep the rate limit in the path (every call counts it, over the grant and its ancestors), high enough not to bite.
doc.scopes!["llm:complete"]!.rate_limit = "20000/minute";
doc.log = { level: "warn" };
const nodes = [await startNode(doc), await startNode(doc)];
process.on("exit", () => {
  for (const node of nodes) node.child.kill("SIGKILL");
});
process.stdout.write(`${machine()}\nsoak: ${SESSIONS} sessions for ${SECONDS} s on two broker processes\n`);

const counts = {
  calls: 0,
  ok: 0,
  failedLive: 0,
  acceptedAfterRevocation: 0,
  deniedAfterRevocation: 0,
  refreshes: 0,
  expiredEvents: 0,
  delegations: 0,
  childCalls: 0,
  revocations: 0,
  bulkRevoked: 0,
};
const latencies: number[] = [];
const failures: string[] = [];
const memory: { t: number; rss: number[]; heap: number[] }[] = [];
const started = Date.now();
const deadline = started + SECONDS * 1000;

/** When a session's grant was revoked (its revocation answered): calls started after it must be refused. */
const revokedAt = new Map<Session, number>();
const parentOf = new Map<Session, Session>();
const sessions = new Set<Session>();
const revocationOf = (session: Session): number | undefined => {
  const own = revokedAt.get(session);
  const parent = parentOf.get(session);
  const inherited = parent ? revokedAt.get(parent) : undefined;
  return own === undefined ? inherited : inherited === undefined ? own : Math.min(own, inherited);
};

const call = async (session: Session, node: string, kind: "self" | "child") => {
  const t = performance.now();
  const before = Date.now();
  const init = {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "soak" }] }),
  };
  // Through its own node with session.fetch; through the other node as a load balancer would
  // route it: the same current token, on the same path.
  const response =
    node === session.broker.origin
      ? await session.fetch("/proxy/openai/v1/chat/completions", init)
      : await fetch(`${node}/proxy/openai/v1/chat/completions`, {
          ...init,
          headers: { ...init.headers, authorization: `Bearer ${session.token}` },
        });
  const body = await response.text();
  latencies.push(performance.now() - t);
  counts.calls += 1;
  if (kind === "child") counts.childCalls += 1;
  const revoked = revocationOf(session);
  if (revoked !== undefined && before > revoked) {
    if (response.status === 200) counts.acceptedAfterRevocation += 1;
    else counts.deniedAfterRevocation += 1;
    return;
  }
  if (response.status === 200) counts.ok += 1;
  else if (!/token_revoked/.test(body)) {
    // Not revoked (a revocation racing this very call answers token_revoked, which is right).
    counts.failedLive += 1;
    if (failures.length < 10) failures.push(`${response.status} ${body.slice(0, 200)}`);
  }
};

const agent = async (i: number) => {
  const node = nodes[i % 2]!.url;
  const other = nodes[(i + 1) % 2]!.url;
  const session = await connect({
    broker: node,
    credential: KEYS.issuer,
    scopes: ["llm:complete", "llm:embed"],
    ttl: 4,
    agent: `soak-${i % 10}`,
  });
  sessions.add(session);
  session.on("refreshed", () => {
    counts.refreshes += 1;
  });
  session.on("expired", () => {
    counts.expiredEvents += 1;
  });
  let round = 0;
  while (Date.now() < deadline && session.state === "live") {
    round += 1;
    await call(session, round % 2 ? node : other, "self");
    if (round % 25 === 0 && session.state === "live") {
      const child = await session
        .delegate({ scopes: ["llm:complete"], ttl: 2, agent: `soak-${i % 10}-sub` })
        .catch(() => undefined);
      if (child) {
        parentOf.set(child, session);
        counts.delegations += 1;
        for (let k = 0; k < 3; k++) await call(child, k % 2 ? node : other, "child");
        child.close();
      }
    }
    await sleep(50 + Math.random() * 150);
  }
  // A revoked agent keeps trying for a moment, through both nodes: nothing may get through.
  if (revocationOf(session) !== undefined)
    for (let k = 0; k < 4; k++) await call(session, k % 2 ? node : other, "self");
  sessions.delete(session);
  session.close();
};

const revoker = async () => {
  // Every 3 s, one live agent's grant is revoked through the admin API of node B.
  while (Date.now() < deadline - 5_000) {
    await sleep(3_000);
    const live = [...sessions].filter((s) => s.state === "live" && revocationOf(s) === undefined);
    const victim = live[Math.floor(Math.random() * live.length)];
    if (!victim) continue;
    const response = await fetch(`${nodes[1]!.url}/v1/grants/${victim.grant.grantId}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${KEYS.admin}` },
    });
    if (response.ok) {
      revokedAt.set(victim, Date.now());
      counts.revocations += 1;
    }
  }
};

const bulk = async () => {
  // Halfway through, through node A: every grant of agent soak-7, and everything they delegated.
  await sleep((SECONDS * 1000) / 2);
  const targets = [...sessions].filter((s) => s.grant.agent === "soak-7");
  const response = await fetch(`${nodes[0]!.url}/v1/revocations`, {
    method: "POST",
    headers: { authorization: `Bearer ${KEYS.admin}`, "content-type": "application/json" },
    body: JSON.stringify({ agent: "soak-7" }),
  });
  const at = Date.now();
  counts.bulkRevoked = ((await response.json()) as { revoked: number }).revoked;
  for (const s of targets) if (!revokedAt.has(s)) revokedAt.set(s, at);
};

const sampler = async () => {
  while (Date.now() < deadline) {
    memory.push({
      t: Date.now() - started,
      rss: nodes.map((n) => n.rss()),
      heap: await Promise.all(nodes.map((n) => n.heap())),
    });
    await sleep(5_000);
  }
};

await Promise.all([
  ...Array.from({ length: SESSIONS }, (_, i) => sleep(i * 20).then(() => agent(i))),
  revoker(),
  bulk(),
  sampler(),
]);
memory.push({
  t: Date.now() - started,
  rss: nodes.map((n) => n.rss()),
  heap: await Promise.all(nodes.map((n) => n.heap())),
});
for (const node of nodes) node.child.kill("SIGTERM");
await mock.close();

// Memory: the first samples after warm-up against the last ones.
const window = (from: number, to: number) => memory.filter((m) => m.t >= from && m.t <= to);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const early = window(15_000, 40_000);
const late = window(SECONDS * 1000 - 25_000, SECONDS * 1000 + 5_000);
const rssEarly = mean(early.flatMap((m) => m.rss));
const rssLate = mean(late.flatMap((m) => m.rss));
const heapEarly = mean(early.flatMap((m) => m.heap));
const heapLate = mean(late.flatMap((m) => m.heap));
const mib = (b: number) => `${fmt(b / 2 ** 20, 1)} MiB`;
const pass = counts.failedLive === 0 && counts.acceptedAfterRevocation === 0 && counts.expiredEvents === 0;
const rows = [
  ["duration, sessions", `${SECONDS} s, ${SESSIONS} (4-second tokens), 2 broker processes`, ""],
  ["proxied calls (through both nodes)", fmt(counts.calls, 0), ""],
  ["token refreshes", fmt(counts.refreshes, 0), ""],
  [
    "delegations (child grants, each used 3 times)",
    `${fmt(counts.delegations, 0)} (${fmt(counts.childCalls, 0)} calls)`,
    "",
  ],
  ["grants revoked one by one while in use", fmt(counts.revocations, 0), ""],
  ["grants revoked in bulk (agent soak-7) halfway", fmt(counts.bulkRevoked, 0), ""],
  ["failed calls on live grants", String(counts.failedLive), "0"],
  ["calls accepted after their revocation took effect", String(counts.acceptedAfterRevocation), "0"],
  ["calls refused after revocation (as they must be)", fmt(counts.deniedAfterRevocation, 0), ""],
  ["sessions that expired instead of refreshing", String(counts.expiredEvents), "0"],
  [
    "call latency p50 / p99 (client side, loaded machine)",
    `${fmt(percentile(latencies, 50), 1)} / ${fmt(percentile(latencies, 99), 1)} ms`,
    "",
  ],
  [
    "broker RSS, mean of both: 15-40 s → last 25 s",
    `${mib(rssEarly)} → ${mib(rssLate)} (${fmt(((rssLate - rssEarly) / rssEarly) * 100, 1)} %)`,
    "< +20 %",
  ],
  [
    "broker heap used: 15-40 s → last 25 s",
    `${mib(heapEarly)} → ${mib(heapLate)} (${fmt(((heapLate - heapEarly) / heapEarly) * 100, 1)} %)`,
    "",
  ],
];
const table = markdownTable(["measure", "value", "must be"], rows);
process.stdout.write(`\n${table}\n${failures.length ? `\nfailures:\n${failures.join("\n")}\n` : ""}`);

const FILE = new URL("../docs/reliability.md", import.meta.url);
const block = [
  "<!-- soak -->",
  `Last run: ${machine()}. Command: \`SOAK_SECONDS=${SECONDS} SOAK_SESSIONS=${SESSIONS} corepack pnpm soak\`. Result: **${pass ? "pass" : "FAIL"}**.`,
  "",
  table,
  "<!-- /soak -->",
].join("\n");
const current = readFileSync(FILE, "utf8");
writeFileSync(FILE, current.replace(/<!-- soak -->[\s\S]*?<!-- \/soak -->/, block));
process.exit(pass ? 0 : 1);
