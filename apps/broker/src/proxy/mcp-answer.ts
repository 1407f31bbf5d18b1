import type { ServerResponse } from "node:http";
import { REQUEST_ID_HEADER } from "@perishable/protocol";
import type { BrokerError } from "../errors.js";
import { jsonRpcError } from "../policy/mcp.js";
import type { McpPlan } from "./mcp-plan.js";

/** The audit trail's `mcp` detail of a POST: the first message's method, and its tool. */
export const mcpDetail = (plan: McpPlan): { method: string; tool?: string } => {
  const first = plan.messages[0];
  return { method: first?.method ?? "response", ...(first?.tool ? { tool: first.tool } : {}) };
};

/**
 * Whether a refusal is answered in JSON-RPC (HTTP 200, an error for each request) so that the
 * client's session survives it: a tool, argument or resource refused, a limit or budget reached.
 * What the client's transport must see as HTTP stays HTTP: a token refused (401: it refreshes
 * or stops), the store unavailable (503), a body that could not be read (400), a batch or
 * notifications alone (nothing to answer in JSON-RPC).
 */
export const answersAsJsonRpc = (error: BrokerError, plan: McpPlan): boolean =>
  error.status !== 401 &&
  error.status !== 503 &&
  error.code !== "bad_request" &&
  error.code !== "not_found" && // an unknown session: the client starts a new one
  plan.messages.some((m) => m.id !== undefined);

/** Each request of the POST answered with the refusal, as the JSON-RPC error -32001 with our code. */
export const writeJsonRpcRefusal = (
  res: ServerResponse,
  plan: McpPlan,
  error: BrokerError,
  requestId: string,
): void => {
  const errors = plan.messages
    .filter((m) => m.id !== undefined)
    .map((m) => jsonRpcError(m.id!, error.code, error.message, requestId));
  const body = JSON.stringify(plan.batch ? errors : errors[0]);
  res.writeHead(200, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    [REQUEST_ID_HEADER]: requestId,
    ...error.headers,
  });
  res.end(body);
};
