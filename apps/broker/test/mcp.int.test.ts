import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CreateMessageRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { startMcpServer, type TestMcpServer } from "@perishable/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestBroker, type TestBroker } from "./support/broker.js";

const MCP_SECRET = "ghp_mcp-upstream-secret-0123456789abcdef";

for (const json of [false, true]) {
  describe(`an MCP server behind the broker (${json ? "JSON" : "SSE"} answers)`, () => {
    let mcp: TestMcpServer;
    let t: TestBroker;
    let triage: string;
    let sampler: string;
    beforeAll(async () => {
      mcp = await startMcpServer({ json });
      t = await startTestBroker({
        configure: (doc) => {
          doc.upstreams.github = {
            kind: "mcp",
            base_url: mcp.url,
            auth: { header: "authorization", value: `Bearer ${MCP_SECRET}` },
          };
          doc.scopes["github:triage"] = {
            upstream: "github",
            endpoints: ["/"],
            methods: ["GET", "POST", "DELETE"],
            mcp: {
              tools: ["get_issue", "add_issue_comment"],
              arguments: { owner: "acme", repo: "api-*" },
              resources: ["repo://acme/*/readme"],
            },
          };
          doc.scopes["github:summarise"] = {
            upstream: "github",
            endpoints: ["/"],
            methods: ["GET", "POST", "DELETE"],
            mcp: { tools: ["get_issue_summary"] },
          };
          (doc.issuers![0] as { scopes: string[] }).scopes.push("github:triage", "github:summarise");
        },
      });
      triage = (await t.issue({ scopes: ["github:triage"], agent: "triage" })).token;
      sampler = (await t.issue({ scopes: ["github:summarise"], agent: "sampler" })).token;
    });
    afterAll(async () => {
      await t?.[Symbol.asyncDispose]();
      await mcp?.[Symbol.asyncDispose]();
    });

    const connect = async (token: string) => {
      const client = new Client({ name: "agent", version: "1.0.0" });
      const transport = new StreamableHTTPClientTransport(new URL(`${t.url}/proxy/github/`), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      });
      await client.connect(transport);
      return { client, transport };
    };

    it("shows the model only the tools the token may call, and calls the allowed ones", async () => {
      const { client } = await connect(triage);
      const { tools } = await client.listTools();
      expect(tools.map((tool) => tool.name).sort()).toEqual(["add_issue_comment", "get_issue"]);
      const result = await client.callTool({
        name: "get_issue",
        arguments: { owner: "acme", repo: "api-gw", number: 7 },
      });
      expect(result.content).toEqual([{ type: "text", text: "issue acme/api-gw#7" }]);
      await client.close();
      const metrics = await (await fetch(`${t.url}/metrics`)).text();
      expect(metrics).toMatch(/perishable_mcp_tool_calls_total\{upstream="github",tool="get_issue"\} [1-9]/);
    });

    it("refuses a tool, an argument or a resource as a JSON-RPC error; the session survives and the server never sees it", async () => {
      const { client } = await connect(triage);
      const before = mcp.seen.length;
      await expect(
        client.callTool({ name: "delete_repo", arguments: { owner: "acme", repo: "api-gw" } }),
      ).rejects.toThrow(/tool "delete_repo" is not allowed/);
      await expect(
        client.callTool({ name: "get_issue", arguments: { owner: "evil", repo: "api-gw", number: 1 } }),
      ).rejects.toThrow(/argument owner "evil" of "get_issue" is not allowed/);
      await expect(
        client.callTool({
          name: "get_issue",
          arguments: { owner: ["acme"], repo: "api-gw", number: 1 } as never,
        }),
      ).rejects.toThrow(/argument owner of "get_issue" must be a string/);
      await expect(client.readResource({ uri: "repo://acme/api/secrets" })).rejects.toThrow(
        /resource .* is not allowed/,
      );
      expect(mcp.seen.slice(before).some((s) => /delete_repo|evil|secrets/.test(s.body))).toBe(false);
      // Still the same session: an allowed call goes through.
      expect((await client.readResource({ uri: "repo://acme/api/readme" })).contents[0]).toMatchObject({
        text: "the readme",
      });
      await client.close();
    });

    // With JSON answers a server has no stream to ask on during a call: sampling is an SSE matter.
    (json ? () => {} : it)(
      "passes a server's request to the client (sampling) and the client's answer back",
      async () => {
        const client = new Client({ name: "agent", version: "1.0.0" }, { capabilities: { sampling: {} } });
        client.setRequestHandler(CreateMessageRequestSchema, async (request) => ({
          model: "client-model",
          role: "assistant",
          content: {
            type: "text",
            text: `sampled "${(request.params.messages[0]?.content as { text?: string } | undefined)?.text}"`,
          },
        }));
        await client.connect(
          new StreamableHTTPClientTransport(new URL(`${t.url}/proxy/github/`), {
            requestInit: { headers: { authorization: `Bearer ${sampler}` } },
          }),
        );
        const result = await client.callTool({
          name: "get_issue_summary",
          arguments: { owner: "acme", repo: "api-gw", number: 9 },
        });
        expect(result.content).toEqual([
          { type: "text", text: 'summary: sampled "summarise acme/api-gw#9"' },
        ]);
        await client.close();
      },
    );

    it("sends an idle GET event stream's headers at once", async () => {
      const headers = { "content-type": "application/json", accept: "application/json, text/event-stream" };
      const init = await t.call("/proxy/github/", triage, {
        method: "POST",
        headers,
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 0,
          method: "initialize",
          params: {
            protocolVersion: "2025-06-18",
            capabilities: {},
            clientInfo: { name: "raw", version: "1" },
          },
        }),
      });
      const session = init.headers.get("mcp-session-id")!;
      await init.text();
      const version = { "mcp-session-id": session, "mcp-protocol-version": "2025-06-18" };
      await t.call("/proxy/github/", triage, {
        method: "POST",
        headers: { ...headers, ...version },
        body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }),
      });
      // The server writes nothing on this stream until it has something to say: the headers must
      // not wait for a first byte of body.
      const stream = await t.call("/proxy/github/", triage, {
        headers: { accept: "text/event-stream", ...version },
        signal: AbortSignal.timeout(2_000),
      });
      expect(stream.status).toBe(200);
      expect(stream.headers.get("content-type")).toContain("text/event-stream");
      await stream.body?.cancel();
    });

    it("passes Last-Event-ID on the session's GET stream through to the server", async () => {
      const { client, transport } = await connect(triage);
      const before = mcp.seen.length;
      const resumed = await t
        .call("/proxy/github/", triage, {
          headers: {
            accept: "text/event-stream",
            "mcp-session-id": transport.sessionId!,
            "last-event-id": "evt-41",
          },
          signal: AbortSignal.timeout(1_000),
        })
        .catch(() => undefined);
      await resumed?.body?.cancel().catch(() => {});
      const get = mcp.seen
        .slice(before)
        .find((s) => s.method === "GET" && s.headers["last-event-id"] === "evt-41");
      expect(get?.headers["mcp-session-id"]).toBe(transport.sessionId!.split(".")[0]);
      await client.close();
    });

    it("never hands the server the prs_ token, and injects the upstream's own credential", async () => {
      const { client } = await connect(triage);
      await client.listTools();
      await client.close();
      expect(mcp.seen.length).toBeGreaterThan(0);
      for (const s of mcp.seen) {
        expect(JSON.stringify(s.headers)).not.toContain("prs_");
        expect(s.body).not.toContain("prs_");
        if (s.method === "POST") expect(s.headers.authorization).toBe(`Bearer ${MCP_SECRET}`);
      }
    });

    it("binds a session to the lineage that opened it: another lineage's token cannot use its id", async () => {
      const { client, transport } = await connect(triage);
      const sealed = transport.sessionId!;
      // The client holds the server's id sealed for this lineage; the server only ever sees its own.
      expect(sealed).toMatch(/^[0-9a-f-]{36}\.[A-Za-z0-9_-]{22}$/);
      expect(mcp.seen.every((s) => !String(s.headers["mcp-session-id"] ?? "").includes("."))).toBe(true);
      const other = (await t.issue({ scopes: ["github:triage"], agent: "thief" })).token;
      const before = mcp.seen.length;
      const stolen = await t.call("/proxy/github/", other, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          "mcp-session-id": sealed,
          "mcp-protocol-version": "2025-06-18",
        },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
      });
      expect(stolen.status).toBe(404);
      expect(await stolen.json()).toMatchObject({ error: { code: "not_found" } });
      const bare = await t.call("/proxy/github/", other, {
        method: "POST",
        headers: { "content-type": "application/json", "mcp-session-id": sealed.split(".")[0]! },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
      });
      expect(bare.status).toBe(404); // the server's own id, unsealed, is no way in either
      // (The owner's client may open its GET event stream meanwhile; no POST reached the server.)
      expect(mcp.seen.slice(before).filter((s) => s.method === "POST")).toEqual([]);
      expect((await client.listTools()).tools.length).toBe(2); // the owner's session still works
      await client.close();
    });

    it("counts maxUses per message, and refuses in JSON-RPC once they are spent", async () => {
      const counted = (
        await t.issue({ scopes: ["github:triage"], agent: "counted", maxUses: 4, maxConcurrent: 2 })
      ).token;
      const { client } = await connect(counted); // initialize and its notification: two uses
      const call = () =>
        client.callTool({ name: "get_issue", arguments: { owner: "acme", repo: "api-q", number: 2 } });
      await call();
      const spent = await (async () => {
        for (let i = 0; i < 3; i++) {
          const refused = await call().catch((e: unknown) => e);
          if (refused instanceof Error) return refused;
        }
        return undefined;
      })();
      expect(spent?.message).toMatch(/maxUses/);
      await client.close().catch(() => {});
    });

    it("checks a batch as one request: one refused message refuses it whole", async () => {
      const batch = await t.call("/proxy/github/", triage, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
        body: JSON.stringify([
          {
            jsonrpc: "2.0",
            id: 1,
            method: "tools/call",
            params: { name: "get_issue", arguments: { owner: "acme", repo: "api-1", number: 1 } },
          },
          { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "delete_repo", arguments: {} } },
        ]),
      });
      expect(batch.status).toBe(200);
      const answers = (await batch.json()) as {
        id: number;
        error: { code: number; data: { code: string } };
      }[];
      expect(answers.map((a) => [a.id, a.error.code, a.error.data.code])).toEqual([
        [1, -32001, "constraint_denied"],
        [2, -32001, "constraint_denied"],
      ]);
    });

    it("cuts a revoked token off at its next message, and audits MCP calls with method and tool", async () => {
      const token = (await t.issue({ scopes: ["github:triage"], agent: "doomed" })).token;
      const { client } = await connect(token);
      await client.callTool({ name: "get_issue", arguments: { owner: "acme", repo: "api-x", number: 1 } });
      await t.call("/v1/tokens/self", token, { method: "DELETE" });
      await expect(client.listTools()).rejects.toThrow();
      await t.broker.server.audit.flush();
      const page = (await (await t.admin("/v1/audit?agent=doomed&limit=50")).json()) as {
        events: { type: string; mcp?: { method: string; tool?: string }; code?: string }[];
      };
      expect(page.events.find((e) => e.type === "used" && e.mcp?.method === "tools/call")?.mcp).toEqual({
        method: "tools/call",
        tool: "get_issue",
      });
      expect(page.events.some((e) => e.type === "denied" && e.code === "token_revoked")).toBe(true);
    });
  });
}
