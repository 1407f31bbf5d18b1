import { startNodes } from "../lib/nodes.js";
import { fmt, judged, type SectionReport } from "../lib/report.js";

/**
 * Leased rate-limit slices over three nodes, with traffic spread unevenly (node A 70 %, B 20 %,
 * C 10 %): how many requests the limit lets through (never more than the limit), and the
 * undershoot — requests refused while the cluster had not yet let the limit through, because
 * another node held units it had not spent.
 */
export const slicesBench = async (
  limit = Number(process.env.BENCH_SLICE_LIMIT ?? 2_000),
): Promise<SectionReport> => {
  await using cluster = await startNodes("slices", { rate_limit: `${limit}/hour` });
  const { nodes } = cluster;
  const { token } = await cluster.issue(3600);
  let allowed = 0;
  let early = 0;
  const started = performance.now();
  // Eight clients; each request goes to A, B or C with 70/20/10 odds, until 1.5× the limit was sent.
  let sent = 0;
  const client = async () => {
    while (sent < limit * 1.5) {
      sent += 1;
      const r = Math.random();
      const node = nodes[r < 0.7 ? 0 : r < 0.9 ? 1 : 2]!;
      const response = await fetch(`${node.url}/proxy/openai/v1/models`, {
        headers: { authorization: `Bearer ${token}` },
      });
      await response.arrayBuffer();
      if (response.status === 200) allowed += 1;
      else if (allowed < limit) early += 1;
    }
  };
  await Promise.all(Array.from({ length: 8 }, client));
  const seconds = (performance.now() - started) / 1000;
  return {
    id: "slices",
    title: "Rate-limit slices over three nodes, traffic 70 / 20 / 10 %",
    command: "corepack pnpm bench slices",
    header: ["measure", "value", "target"],
    rows: [
      ["limit (requests per hour, one lineage)", fmt(limit, 0), ""],
      ["let through", fmt(allowed, 0), judged("≤ the limit", allowed <= limit)],
      ["refused before the cluster reached the limit (undershoot)", fmt(early, 0), ""],
      ["undershoot, as a share of the limit", `${fmt((early / limit) * 100, 2)} %`, ""],
      ["requests per second, all nodes", fmt((limit * 1.5) / seconds, 0), ""],
    ],
    notes: [
      `${fmt(limit * 1.5, 0)} requests from 8 clients, each sent to node A, B or C with 70/20/10 % odds; one token, one scope with a ${limit}/hour limit; three broker nodes in one process on one private redis-server. "Refused before the limit" counts refusals while fewer than the limit had been let through: units another node held and had not spent (they go back after a second unused).`,
    ],
  };
};
