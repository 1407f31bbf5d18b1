import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { startDevBroker } from "@perishable/broker";
import { startMcpServer } from "@perishable/test-support";
import { fmt, percentile, type SectionReport } from "../lib/report.js";

/**
 * An allowed MCP tools/call, direct to a real McpServer and through the broker (the real MCP
 * client both ways, one process, the dev broker on its memory store). What the broker adds per
 * message: latency, and CPU as the difference of this process's CPU per call between the two.
 */
export const mcpBench = async (
  calls = Number(process.env.BENCH_MCP_CALLS ?? 2_000),
): Promise<SectionReport> => {
  await using server = await startMcpServer({ json: true });
  const dev = await startDevBroker({
    configure: (doc) => {
      doc.log = { level: "error" };
      doc.upstreams.github = {
        kind: "mcp",
        base_url: server.url,
        auth: { header: "authorization", value: "Bearer ghp_x" },
      };
      doc.scopes["github:triage"] = {
        upstream: "github",
        endpoints: ["/"],
        methods: ["GET", "POST", "DELETE"],
        mcp: { tools: ["get_issue", "add_issue_comment"], arguments: { owner: "acme", repo: "api-*" } },
      };
      (doc.issuers![0] as { scopes: string[] }).scopes.push("github:triage");
    },
  });
  try {
    const issued = (await (
      await fetch(`${dev.url}/v1/tokens`, {
        method: "POST",
        headers: { authorization: `Bearer ${dev.issuerKey}`, "content-type": "application/json" },
        body: JSON.stringify({ scopes: ["github:triage"], ttl: 600 }),
      })
    ).json()) as { token: string };
    const run = async (url: URL, headers: Record<string, string>) => {
      const client = new Client({ name: "bench", version: "1.0.0" });
      await client.connect(new StreamableHTTPClientTransport(url, { requestInit: { headers } }));
      const call = () =>
        client.callTool({ name: "get_issue", arguments: { owner: "acme", repo: "api-gw", number: 1 } });
      for (let i = 0; i < 200; i++) await call(); // warm up
      const times: number[] = [];
      const cpu = process.cpuUsage();
      for (let i = 0; i < calls; i++) {
        const started = performance.now();
        await call();
        times.push(performance.now() - started);
      }
      const used = process.cpuUsage(cpu);
      await client.close();
      return {
        p50: percentile(times, 50),
        p99: percentile(times, 99),
        cpuUs: (used.user + used.system) / calls,
      };
    };
    const direct = await run(new URL(server.url), {});
    const broker = await run(new URL(`${dev.url}/proxy/github/`), {
      authorization: `Bearer ${issued.token}`,
    });
    return {
      id: "mcp",
      title: "An allowed MCP tools/call: direct and through the broker",
      command: "corepack pnpm bench mcp",
      header: ["measure", "direct", "through the broker", "added"],
      rows: [
        ["latency p50 (ms)", fmt(direct.p50, 3), fmt(broker.p50, 3), fmt(broker.p50 - direct.p50, 3)],
        ["latency p99 (ms)", fmt(direct.p99, 3), fmt(broker.p99, 3), fmt(broker.p99 - direct.p99, 3)],
        [
          "CPU per call, client + server (+ broker) in one process (µs)",
          fmt(direct.cpuUs, 0),
          fmt(broker.cpuUs, 0),
          `${fmt(broker.cpuUs - direct.cpuUs, 0)} (the broker's)`,
        ],
      ],
      notes: [
        `${calls} calls one after the other after 200 to warm up, the real @modelcontextprotocol/sdk Client and McpServer (JSON answers), the dev broker on its memory store checking the tool name and two argument globs per call, in one Node process.`,
      ],
    };
  } finally {
    await dev.close();
  }
};
