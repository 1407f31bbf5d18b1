import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { type DevBroker, startDevBroker } from "@perishable/broker";
import { startMcpServer, type TestMcpServer } from "@perishable/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type Session } from "../src/index.js";

let mcp: TestMcpServer;
let dev: DevBroker;
const sessions: Session[] = [];
beforeAll(async () => {
  mcp = await startMcpServer();
  dev = await startDevBroker({
    configure: (doc) => {
      doc.upstreams.github = {
        kind: "mcp",
        base_url: mcp.url,
        auth: { header: "authorization", value: "Bearer ghp_upstream" },
      };
      doc.scopes["github:rw"] = { upstream: "github", endpoints: ["/"], methods: ["GET", "POST", "DELETE"] };
      doc.scopes["github:triage"] = {
        upstream: "github",
        endpoints: ["/"],
        methods: ["GET", "POST", "DELETE"],
        mcp: { tools: ["get_issue", "add_issue_comment"], arguments: { owner: "acme", repo: "api-*" } },
      };
      (doc.issuers![0] as { scopes: string[] }).scopes.push("github:rw", "github:triage");
    },
  });
});
afterAll(async () => {
  for (const s of sessions) s.close();
  await dev?.close();
  await mcp?.[Symbol.asyncDispose]();
});

describe("session.mcp()", () => {
  it("gives an MCP client a transport that carries the current token, across refreshes", async () => {
    const planner = await connect({
      broker: dev.url,
      credential: dev.issuerKey,
      scopes: ["github:rw", "github:triage"],
      ttl: 2,
    });
    sessions.push(planner);
    // The planner hands a triage sub-agent less: two tools, on acme/api-* only.
    const triage = await planner.delegate({ scopes: ["github:triage"], agent: "triage" });
    const { url, fetch } = triage.mcp("github");
    const client = new Client({ name: "triage", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(url, { fetch }));
    expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual([
      "add_issue_comment",
      "get_issue",
    ]);
    const first = triage.token;
    await new Promise((resolve) => setTimeout(resolve, 1_500)); // past a refresh (at half the 2 s TTL)
    expect(triage.token).not.toBe(first);
    const result = await client.callTool({
      name: "add_issue_comment",
      arguments: { owner: "acme", repo: "api-gw", number: 3, body: "on it" },
    });
    expect(result.content).toEqual([{ type: "text", text: "commented on acme/api-gw#3" }]);
    await expect(
      client.callTool({ name: "get_issue", arguments: { owner: "other", repo: "api-gw", number: 1 } }),
    ).rejects.toThrow(/not allowed/);
    await client.close();
    expect(mcp.seen.every((s) => !JSON.stringify(s).includes("prs_"))).toBe(true);
    expect(() => triage.mcp("../admin")).toThrow(TypeError);
  });
});
