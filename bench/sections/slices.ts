import { startNodes } from "../lib/nodes.js";
import { fmt, judged, type SectionReport } from "../lib/report.js";

/** What one lineage's limit let through under uneven traffic over three nodes. */
interface Run {
  readonly allowed: number;
  /** Refused while the cluster had let fewer than the limit through: units held by another node. */
  readonly early: number;
  readonly seconds: number;
}

/**
 * Eight clients; each request goes to node A, B or C with 70/20/10 odds, until `sent` requests
 * were sent. Counts what was let through and what was refused before the limit was reached.
 */
const traffic = async (
  urls: readonly string[],
  token: string,
  limit: number,
  sent: number,
  allowedSoFar = 0,
): Promise<Run> => {
  let allowed = allowedSoFar;
  let early = 0;
  let n = 0;
  const started = performance.now();
  const client = async () => {
    while (n < sent) {
      n += 1;
      const r = Math.random();
      const url = urls[r < 0.7 ? 0 : r < 0.9 ? 1 : 2]!;
      const response = await fetch(`${url}/proxy/openai/v1/models`, {
        headers: { authorization: `Bearer ${token}` },
      });
      await response.arrayBuffer();
      if (response.status === 200) allowed += 1;
      else if (allowed < limit) early += 1;
    }
  };
  await Promise.all(Array.from({ length: 8 }, client));
  return { allowed: allowed - allowedSoFar, early, seconds: (performance.now() - started) / 1000 };
};

/**
 * Leased slices over three nodes, with traffic spread unevenly (node A 70 %, B 20 %, C 10 %): a
 * rate limit, and a maxUses. How many requests each limit lets through (never more than the
 * limit), and the undershoot — requests refused while the cluster had not yet let the limit
 * through, because another node held units it had not spent.
 */
export const slicesBench = async (
  limit = Number(process.env.BENCH_SLICE_LIMIT ?? 2_000),
): Promise<SectionReport> => {
  await using rated = await startNodes("slices", { rate_limit: `${limit}/hour` });
  const rate = await traffic(
    rated.nodes.map((n) => n.url),
    (await rated.issue(3600)).token,
    limit,
    limit * 1.5,
  );
  await using counted = await startNodes("uses");
  const urls = counted.nodes.map((n) => n.url);
  const { token } = await counted.issue(3600, { maxUses: limit });
  const uses = await traffic(urls, token, limit, limit * 1.5);
  // Uses a node held and did not spend go back after a second unused; then the rest can be spent.
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  const after = await traffic(urls, token, limit, 200, uses.allowed);
  const total = uses.allowed + after.allowed;
  return {
    id: "slices",
    title: "Leased slices over three nodes, traffic 70 / 20 / 10 %",
    command: "corepack pnpm bench slices",
    header: ["measure", "rate limit", "maxUses", "target"],
    rows: [
      ["limit (one lineage)", `${fmt(limit, 0)} / hour`, fmt(limit, 0), ""],
      [
        "let through",
        fmt(rate.allowed, 0),
        fmt(uses.allowed, 0),
        judged("≤ the limit", rate.allowed <= limit && uses.allowed <= limit),
      ],
      [
        "refused before the cluster reached the limit (undershoot)",
        fmt(rate.early, 0),
        fmt(uses.early, 0),
        "",
      ],
      [
        "undershoot, as a share of the limit",
        `${fmt((rate.early / limit) * 100, 2)} %`,
        `${fmt((uses.early / limit) * 100, 2)} %`,
        "",
      ],
      ["let through after a second's pause (held uses given back)", "", fmt(after.allowed, 0), ""],
      ["let through in all", fmt(rate.allowed, 0), fmt(total, 0), judged("= the limit", total === limit)],
      [
        "requests per second, all nodes",
        fmt((limit * 1.5) / rate.seconds, 0),
        fmt((limit * 1.5) / uses.seconds, 0),
        "",
      ],
    ],
    notes: [
      `${fmt(limit * 1.5, 0)} requests from 8 clients per limit, each sent to node A, B or C with 70/20/10 % odds; one token, one scope; three broker nodes in one process on one private redis-server each. "Refused before the limit" counts refusals while fewer than the limit had been let through: units another node held and had not spent (they go back after a second unused). For maxUses, 200 more requests follow a 1.5 s pause, to spend what was given back.`,
      "A use slice is at most a sixteenth of what is left and none is leased once fewer than sixteen are left: the last fifteen uses are counted one by one by the script.",
    ],
  };
};
