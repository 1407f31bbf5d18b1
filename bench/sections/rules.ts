import { randomBytes } from "node:crypto";
import { RedisStore, type Store } from "@perishable/broker";

/** The id alphabet of @perishable/protocol (Crockford-style base32). */
const ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

import { startRedisServer } from "@perishable/test-support";
import { fmt, judged, percentile, type SectionReport } from "../lib/report.js";

const id = (prefix: string, tree: string) =>
  `${prefix}${tree}${Array.from(randomBytes(16), (b) => ID_ALPHABET[b % 32]).join("")}`;

/** A root grant and one token, as the issue use case stores them (the hash stands in for HMAC). */
const grantWithToken = async (store: Store, now: number) => {
  const tree = Array.from(randomBytes(10), (b) => ID_ALPHABET[b % 32]).join("");
  const grantId = id("gr_", tree);
  const hash = randomBytes(32).toString("base64url");
  await store.createGrant(
    {
      id: grantId,
      tree,
      rootId: grantId,
      parentId: null,
      ancestors: [],
      agent: "planner",
      task: null,
      scopes: ["llm:complete"],
      depth: 0,
      issuer: "bench",
      createdAt: now,
      notAfter: now + 3_600_000,
      ttl: 3_600_000,
      maxTtl: 3_600_000,
      maxUses: null,
      metadata: {},
      identity: null,
    },
    { tokenId: id("tk_", tree), hash, grantId, issuedAt: now, expiresAt: now + 3_600_000 },
  );
  return { tree, hash };
};

/**
 * Authorisation with many live revocation rules: one store (the Redis one, a private redis-server)
 * answers `authorize` for the same token with 0, 300 and 10,000 rules that select other agents.
 * Before the rules were indexed every rule went into every call (300 rules: 1.9 → 3.3 ms median
 * per proxied call); now a call carries only the rules that could select its token.
 */
export const rulesBench = async (
  calls = Number(process.env.BENCH_RULE_CALLS ?? 3_000),
): Promise<SectionReport> => {
  await using redis = await startRedisServer({ cpu: 1 });
  const store = new RedisStore({ url: redis.url, prefix: "bench", auditMaxLen: 1_000 });
  await store.connect();
  const rows: string[][] = [];
  const medians: number[] = [];
  try {
    const now = Date.now();
    const ref = await grantWithToken(store, now);
    const candidates = [{ scope: "llm:complete", pass: true, limit: 0, windowMs: 0, worst: null }];
    let live = 0;
    for (const target of [0, 300, 10_000]) {
      for (; live < target; live++) {
        await store.putRule({
          id: `rv_bench_${live}`,
          selector: { agent: `bystander-${live}` },
          by: "bench",
          createdAt: now,
          cutoff: now,
          expiresAt: now + 3_600_000,
        });
      }
      // A token's first call carries every rule (what every call did before the index).
      const firsts: number[] = [];
      for (let i = 0; i < 100; i++) {
        const fresh = await grantWithToken(store, Date.now());
        const started = performance.now();
        await store.authorize(fresh, Date.now(), candidates);
        firsts.push(performance.now() - started);
      }
      for (let i = 0; i < 500; i++) await store.authorize(ref, Date.now(), candidates); // warm-up
      const times: number[] = [];
      const cpu = process.cpuUsage();
      for (let i = 0; i < calls; i++) {
        const started = performance.now();
        const result = await store.authorize(ref, Date.now(), candidates);
        times.push(performance.now() - started);
        if (!result.ok) throw new Error(`authorize refused: ${result.code}`);
      }
      const used = process.cpuUsage(cpu);
      const p50 = percentile(times, 50);
      medians.push(p50);
      rows.push([
        `${fmt(target, 0)} live rules`,
        fmt(p50 * 1000, 0),
        fmt(percentile(times, 99) * 1000, 0),
        fmt((used.user + used.system) / calls, 1),
        fmt(percentile(firsts, 50) * 1000, 0),
        target === 0 ? "" : judged("≤ 1.5× of 0 rules", p50 <= medians[0]! * 1.5),
      ]);
    }
  } finally {
    await store.close();
  }
  return {
    id: "rules",
    title: "Authorisation with live revocation rules",
    command: "corepack pnpm bench rules",
    header: [
      "rules",
      "authorize p50 (µs)",
      "p99 (µs)",
      "client CPU per call (µs)",
      "a token's first call, p50 (µs)",
      "target",
    ],
    rows,
    notes: [
      `${fmt(calls, 0)} sequential RedisStore.authorize calls for one token per row, on a private redis-server pinned to core 1; the rules select other agents (as a bulk revocation by agent leaves them).`,
      "The first call of a token carries every rule and brings its chain's immutable facts (agent, scopes, root, creation time of the grant and its ancestors) back; later calls carry only the rules the index finds for those facts.",
    ],
  };
};
