import type { RunningBroker } from "@perishable/broker";
import { ADMIN, startNodes } from "../lib/nodes.js";
import { fmt, judged, percentile, type SectionReport } from "../lib/report.js";

/**
 * Revoking calls with three broker nodes on one Redis: each call answers only once every live
 * node has applied it (the node bus), so this is what the acknowledgement costs. Every token was
 * used on every node first (each node serves it from node-local state), and a bystander keeps
 * being served throughout.
 */
export const acksBench = async (
  revocations = Number(process.env.BENCH_REVOCATIONS ?? 300),
): Promise<SectionReport> => {
  await using cluster = await startNodes("acks");
  const { nodes } = cluster;
  const issue = () => cluster.issue(600);
  const use = (node: RunningBroker, token: string) =>
    fetch(`${node.url}/proxy/openai/v1/models`, { headers: { authorization: `Bearer ${token}` } }).then((r) =>
      r.arrayBuffer().then(() => r.status),
    );
  const times: number[] = [];
  let lateAllowed = 0;
  for (let i = 0; i < revocations; i++) {
    const { token, grantId } = await issue();
    for (const node of nodes) await use(node, token);
    const started = performance.now();
    const answer = await fetch(`${nodes[i % 3]!.url}/v1/grants/${grantId}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    await answer.arrayBuffer();
    times.push(performance.now() - started);
    for (const node of nodes) if ((await use(node, token)) === 200) lateAllowed += 1;
  }
  const p99 = percentile(times, 99);
  return {
    id: "acks",
    title: "Revoking calls with three nodes: call → answer, acknowledged by every node",
    command: "corepack pnpm bench acks",
    header: ["measure", "value", "target"],
    rows: [
      ["revocation call → answer p50 (ms)", fmt(percentile(times, 50), 2), ""],
      ["revocation call → answer p99 (ms)", fmt(p99, 2), judged("< 50 ms", p99 < 50)],
      [
        "requests let through after the answer, on any node",
        String(lateAllowed),
        judged("0", lateAllowed === 0),
      ],
    ],
    notes: [
      `${revocations} grants, each used once on each of three broker nodes (one process, one private redis-server), then revoked on one of them in turn (DELETE /v1/grants/:id) and tried again on all three.`,
      "A node that crashed holds a revoking call up for at most its lease (store.node_lease, 1 s); a clean shutdown leaves the member set at once.",
    ],
  };
};
