import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { z } from "zod";

/** What the MCP server was sent: every request's headers and body, to prove what never reached it. */
export interface McpSeen {
  readonly method: string;
  readonly headers: IncomingMessage["headers"];
  readonly body: string;
}

export interface TestMcpServer extends AsyncDisposable {
  readonly url: string;
  readonly seen: McpSeen[];
}

const issue = { owner: z.string(), repo: z.string(), number: z.number() };

/** GitHub-like tools (one that samples), two resources. */
const githubLike = () => {
  const server = new McpServer({ name: "github-like", version: "1.0.0" });
  server.registerTool("get_issue", { description: "read an issue", inputSchema: issue }, async (a) => ({
    content: [{ type: "text", text: `issue ${a.owner}/${a.repo}#${a.number}` }],
  }));
  server.registerTool(
    "add_issue_comment",
    { description: "comment", inputSchema: { ...issue, body: z.string() } },
    async (a) => ({ content: [{ type: "text", text: `commented on ${a.owner}/${a.repo}#${a.number}` }] }),
  );
  server.registerTool(
    "delete_repo",
    { description: "delete", inputSchema: { owner: z.string(), repo: z.string() } },
    async (a) => ({
      content: [{ type: "text", text: `deleted ${a.owner}/${a.repo}` }],
    }),
  );
  // Asks the client's model (sampling): a server-to-client request on the POST's event stream.
  server.registerTool(
    "get_issue_summary",
    { description: "summarise", inputSchema: issue },
    async (a, extra) => {
      const sampled = await server.server.createMessage(
        {
          messages: [
            { role: "user", content: { type: "text", text: `summarise ${a.owner}/${a.repo}#${a.number}` } },
          ],
          maxTokens: 50,
        },
        { relatedRequestId: extra.requestId },
      );
      const text = sampled.content.type === "text" ? sampled.content.text : "?";
      return { content: [{ type: "text", text: `summary: ${text}` }] };
    },
  );
  server.registerResource("readme", "repo://acme/api/readme", { mimeType: "text/plain" }, async (uri) => ({
    contents: [{ uri: uri.href, text: "the readme" }],
  }));
  server.registerResource("secrets", "repo://acme/api/secrets", { mimeType: "text/plain" }, async (uri) => ({
    contents: [{ uri: uri.href, text: "do not read" }],
  }));
  return server;
};

/** A real McpServer (GitHub-like tools, one resource) over the real Streamable HTTP server transport. */
export const startMcpServer = async (options: { json?: boolean } = {}): Promise<TestMcpServer> => {
  const seen: McpSeen[] = [];
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const http: Server = createServer(async (req, res) => {
    // Its one endpoint, exactly: a broker that added a slash would get 404s.
    if ((req.url ?? "").split("?")[0] !== "/mcp") {
      res.writeHead(404).end();
      return;
    }
    const parts: Buffer[] = [];
    for await (const chunk of req) parts.push(chunk as Buffer);
    const raw = Buffer.concat(parts).toString("utf8");
    seen.push({ method: req.method ?? "", headers: { ...req.headers }, body: raw });
    const id = req.headers["mcp-session-id"];
    let transport = typeof id === "string" ? sessions.get(id) : undefined;
    if (!transport) {
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse: options.json === true,
        onsessioninitialized: (sid) => {
          sessions.set(sid, transport!);
        },
      });
      await githubLike().connect(transport);
    }
    await transport.handleRequest(req, res, raw ? JSON.parse(raw) : undefined);
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const { port } = http.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    seen,
    [Symbol.asyncDispose]: async () => {
      for (const t of sessions.values()) await t.close().catch(() => {});
      http.closeAllConnections();
      await new Promise((resolve) => http.close(resolve));
    },
  };
};
