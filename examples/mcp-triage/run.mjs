// One command: a GitHub-like MCP server, a dev broker in front of it, and a planner that hands a
// triage sub-agent a child token allowed only get_issue and add_issue_comment on acme/api-*.
// The triage agent talks to the MCP server through the broker with the real MCP client; the
// server's credential never leaves the broker, and the agent's token never reaches the server.
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { startDevBroker } from "@perishable/broker";
import { connect } from "@perishable/sdk";
import { z } from "zod";

const UPSTREAM_CREDENTIAL = "Bearer ghp_example-not-a-real-token";
const say = (who, text) => console.log(`${who.padEnd(8)} │ ${text}`);

// The MCP server: three tools, one of them dangerous. It logs the credential it is called with.
const sessions = new Map();
const mcpServer = () => {
  const server = new McpServer({ name: "github-like", version: "1.0.0" });
  const issue = { owner: z.string(), repo: z.string(), number: z.number() };
  server.registerTool("get_issue", { inputSchema: issue }, async (a) => ({
    content: [{ type: "text", text: `#${a.number} in ${a.owner}/${a.repo}: "login fails on Safari"` }],
  }));
  server.registerTool("add_issue_comment", { inputSchema: { ...issue, body: z.string() } }, async (a) => ({
    content: [{ type: "text", text: `commented on ${a.owner}/${a.repo}#${a.number}` }],
  }));
  server.registerTool("delete_repo", { inputSchema: { owner: z.string(), repo: z.string() } }, async (a) => ({
    content: [{ type: "text", text: `deleted ${a.owner}/${a.repo}` }],
  }));
  return server;
};
const credentials = new Set();
const http = createServer(async (req, res) => {
  const parts = [];
  for await (const chunk of req) parts.push(chunk);
  const raw = Buffer.concat(parts).toString("utf8");
  credentials.add(String(req.headers.authorization));
  const id = req.headers["mcp-session-id"];
  let transport = typeof id === "string" ? sessions.get(id) : undefined;
  if (!transport) {
    transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (sid) => sessions.set(sid, transport),
    });
    await mcpServer().connect(transport);
  }
  await transport.handleRequest(req, res, raw ? JSON.parse(raw) : undefined);
});
await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));
const mcpUrl = `http://127.0.0.1:${http.address().port}/mcp`;

const dev = await startDevBroker({
  configure: (doc) => {
    doc.upstreams.github = {
      kind: "mcp",
      base_url: mcpUrl,
      auth: { header: "authorization", value: UPSTREAM_CREDENTIAL },
    };
    doc.scopes["github:rw"] = { upstream: "github", endpoints: ["/"], methods: ["GET", "POST", "DELETE"] };
    doc.scopes["github:triage"] = {
      upstream: "github",
      endpoints: ["/"],
      methods: ["GET", "POST", "DELETE"],
      mcp: { tools: ["get_issue", "add_issue_comment"], arguments: { owner: "acme", repo: "api-*" } },
    };
    doc.issuers[0].scopes.push("github:rw", "github:triage");
  },
});

try {
  const planner = await connect({
    broker: dev.url,
    credential: dev.issuerKey,
    scopes: ["github:rw", "github:triage"],
    agent: "planner",
  });
  say("planner", "holds github:rw; hands the triage agent github:triage only");
  const triage = await planner.delegate({ scopes: ["github:triage"], agent: "triage" });

  const { url, fetch } = triage.mcp("github");
  const client = new Client({ name: "triage", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(url, { fetch }));
  const { tools } = await client.listTools();
  say("triage", `sees the tools ${tools.map((t) => t.name).join(", ")} (the server has three)`);
  const read = await client.callTool({
    name: "get_issue",
    arguments: { owner: "acme", repo: "api-gateway", number: 42 },
  });
  say("triage", `get_issue → ${read.content[0].text}`);
  const wrote = await client.callTool({
    name: "add_issue_comment",
    arguments: { owner: "acme", repo: "api-gateway", number: 42, body: "Reproduced." },
  });
  say("triage", `add_issue_comment → ${wrote.content[0].text}`);
  for (const [tool, args] of [
    ["delete_repo", { owner: "acme", repo: "api-gateway" }],
    ["get_issue", { owner: "someone-else", repo: "api-gateway", number: 1 }],
  ]) {
    const refused = await client.callTool({ name: tool, arguments: args }).catch((e) => e);
    say(
      "triage",
      `${tool}(${args.owner}/${args.repo}) → refused by the broker: ${refused.message.replace(/^MCP error -32001: /, "")}`,
    );
  }
  await client.close();
  const seen = [...credentials].filter((c) => c !== "undefined");
  const onlyBrokers = seen.length > 0 && seen.every((c) => c === UPSTREAM_CREDENTIAL);
  say(
    "server",
    onlyBrokers
      ? "saw only the broker's own GitHub credential — never a prs_ token"
      : "saw another credential!",
  );
  await planner.revoke();
  planner.close();
} finally {
  await dev.close();
  http.closeAllConnections();
  http.close();
}
