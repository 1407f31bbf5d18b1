import { startDevBroker } from "@perishable/broker";
import { startRedisServer } from "@perishable/test-support";
import { Redis } from "ioredis";
import { client, parallel } from "../lib/http.js";
import { fmt, judged, type SectionReport } from "../lib/report.js";

const KEYS = {
  PERISHABLE_ISSUER_KEY: "pik_bench-issuer-key-0123456789abcdef",
  PERISHABLE_ADMIN_KEY: "pak_bench-admin-key-0123456789abcdef",
  PERISHABLE_SECRET: "sec_bench-broker-secret-0123456789abcdef",
};

/**
 * Bulk revocation of `n` live tokens of one agent, on a private Redis with two broker nodes:
 * issue them through node A, revoke by selector on node A while node B probes a sample, and
 * report the time until every probed token is denied on B and until the walk has deleted the
 * keys (checked by scanning what is left).
 */
export const revocationBench = async (n: number): Promise<SectionReport> => {
  await using redis = await startRedisServer();
  const configure = { redis: { url: redis.url, prefix: "bench" }, env: KEYS } as const;
  const a = await startDevBroker({
    ...configure,
    configure: (doc) => {
      doc.issuers![0]!.max_ttl = 3600;
      doc.log = { level: "error" };
    },
  });
  const b = await startDevBroker({
    ...configure,
    configure: (doc) => {
      doc.log = { level: "error" };
    },
  });
  const toA = client(a.url);
  const toB = client(b.url);
  try {
    const issue = async (agent: string, count: number) => {
      const tokens: string[] = new Array(count);
      await parallel(count, 48, async (i) => {
        const { status, json } = await toA.call("POST", "/v1/tokens", KEYS.PERISHABLE_ISSUER_KEY, {
          scopes: ["models:read"],
          ttl: 3600,
          agent,
        });
        if (status !== 201) throw new Error(`issue failed: ${status} ${JSON.stringify(json)}`);
        tokens[i] = json.token as string;
      });
      return tokens;
    };
    const issueStart = performance.now();
    const rogue = await issue("rogue", n);
    const issueSeconds = (performance.now() - issueStart) / 1000;
    const honest = await issue("honest", 1_000);

    const probe = client(b.url, 32);
    const sample = Array.from({ length: 20 }, (_, i) => rogue[Math.floor((i * rogue.length) / 20)]!);
    const self = async (token: string) => (await probe.call("GET", "/v1/tokens/self", token)).status;
    for (const token of sample)
      if ((await self(token)) !== 200) throw new Error("a sampled token is not live before the revocation");

    const redisProbe = new Redis(redis.url);
    const memoryBefore = Number((await redisProbe.info("memory")).match(/used_memory:(\d+)/)?.[1]);

    const started = performance.now();
    const revocation = toA
      .call("POST", "/v1/revocations", KEYS.PERISHABLE_ADMIN_KEY, { agent: "rogue" })
      .then((r) => {
        walkedMs = performance.now() - started;
        return r;
      });
    let walkedMs = Number.NaN;
    let deniedMs = Number.NaN;
    let rounds = 0;
    for (;;) {
      const statuses = await Promise.all(sample.map(self));
      rounds += 1;
      if (statuses.every((s) => s === 401)) {
        deniedMs = performance.now() - started;
        break;
      }
    }
    const result = (await revocation).json as { revoked: number; tokens: number };

    // What is left of the rogue agent's grants, by a full scan.
    let left = 0;
    let cursor = "0";
    do {
      const [next, keys] = await redisProbe.scan(cursor, "MATCH", "bench:{*}:g:*", "COUNT", 5000);
      cursor = next;
      const pipeline = redisProbe.pipeline();
      for (const key of keys) pipeline.hget(key, "agent");
      for (const [, agent] of (await pipeline.exec()) ?? []) if (agent === "rogue") left += 1;
    } while (cursor !== "0");
    const memoryAfter = Number((await redisProbe.info("memory")).match(/used_memory:(\d+)/)?.[1]);
    redisProbe.disconnect();

    const stillDenied = await Promise.all(rogue.slice(0, 2_000).map(self));
    const honestOk = await Promise.all(honest.slice(0, 200).map(self));
    await probe.close();
    if (stillDenied.some((s) => s !== 401))
      throw new Error("a rogue token is still accepted after the revocation");
    if (honestOk.some((s) => s !== 200)) throw new Error("an honest token was revoked");

    return {
      id: "revocation",
      title: `Bulk revocation: ${n.toLocaleString("en-US")} live tokens of one agent`,
      command: "corepack pnpm bench revocation",
      header: ["measure", "value", "target"],
      rows: [
        [
          "tokens issued through node A (HTTP, 48 in flight)",
          `${fmt(n / issueSeconds, 0)} tokens/s`,
          judged("≥ 5,000/s", n / issueSeconds >= 5_000),
        ],
        [
          "revoked by `POST /v1/revocations {agent}` on node A",
          `${fmt(result.revoked, 0)} grants, ${fmt(result.tokens, 0)} tokens`,
          "",
        ],
        [
          "until every probed token is denied on node B",
          `${fmt(deniedMs, 1)} ms`,
          judged("< 100 ms", deniedMs < 100),
        ],
        [
          "until the walk has deleted every key (response)",
          `${fmt(walkedMs, 0)} ms`,
          judged("< 10 s", walkedMs < 10_000),
        ],
        ["grants of the agent left in Redis afterwards", String(left), judged("0", left === 0)],
        ["Redis memory freed per revoked grant", `${fmt((memoryBefore - memoryAfter) / n, 0)} bytes`, ""],
      ],
      notes: [
        `Node B probes 20 of the tokens (spread over the issue order) with \`GET /v1/tokens/self\` in rounds (${rounds} rounds until all were denied); the denial comes from the rule, pushed over pub/sub before the walk starts.`,
        "Afterwards 2,000 of the revoked tokens are checked on node B (all denied) and 200 of another agent's (all still live).",
      ],
    };
  } finally {
    await toA.close();
    await toB.close();
    await a.close();
    await b.close();
  }
};
