import type { IncomingMessage } from "node:http";
import type { ScopeConfig } from "../config/types.js";
import { BrokerError } from "../errors.js";
import { type McpMessage, mcpRefusal, readMcpBody } from "../policy/mcp.js";
import { readBody } from "./read-body.js";

/** What the constrained MCP scopes said about one POST: its messages, and each scope's refusal. */
export interface McpPlan {
  readonly messages: readonly McpMessage[];
  readonly batch: boolean;
  /** The body to forward: re-serialised from what was checked. */
  readonly body: Buffer;
  /** Scope name → why it refuses one of the messages. */
  readonly reasons: ReadonlyMap<string, string>;
  /** Ids of the tools/list requests: their answers are filtered to the scope's tools. */
  readonly listIds: ReadonlySet<string | number>;
}

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\b/i;

/**
 * Reads an MCP POST and checks every message against every candidate scope (`policy/mcp.ts`). A
 * body the broker cannot read one way only (compressed, not JSON, not JSON-RPC, case-variant keys)
 * is a BrokerError; the caller authenticates before it answers with one. A batch is checked as a
 * whole: it is one HTTP request, authorised, counted and audited once, so one refused message
 * refuses it (MCP's 2025-06-18 revision dropped batches; older clients rarely send them).
 */
export const planMcp = async (
  req: IncomingMessage,
  scopes: readonly ScopeConfig[],
  maxBytes: number,
): Promise<McpPlan> => {
  const encoding = req.headers["content-encoding"];
  if (encoding && encoding !== "identity")
    throw new BrokerError("bad_request", "a compressed MCP message cannot be checked");
  if (!JSON_TYPE.test(req.headers["content-type"] ?? ""))
    throw new BrokerError("bad_request", "an MCP POST carries application/json");
  const raw = await readBody(req, maxBytes);
  let value: unknown;
  try {
    value = JSON.parse(raw.toString("utf8"));
  } catch {
    throw new BrokerError("bad_request", "the MCP message is not JSON");
  }
  const read = readMcpBody(value);
  if (!read.ok) throw new BrokerError("bad_request", `the MCP message cannot be checked: ${read.reason}`);
  const reasons = new Map<string, string>();
  for (const scope of scopes) {
    if (!scope.mcp) continue;
    for (const message of read.messages) {
      const refused = mcpRefusal(message, scope.mcp);
      if (refused) {
        reasons.set(scope.name, refused);
        break;
      }
    }
  }
  const listIds = new Set(
    read.messages.flatMap((m) => (m.method === "tools/list" && m.id !== undefined ? [m.id] : [])),
  );
  return {
    messages: read.messages,
    batch: read.batch,
    body: Buffer.from(JSON.stringify(read.value)),
    reasons,
    listIds,
  };
};
