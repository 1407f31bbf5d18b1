import { redact } from "@perishable/protocol";
import { caseVariant } from "./json-keys.js";

/** A scope's `mcp:` constraints, compiled. */
export interface McpConstraints {
  /** Tools `tools/call` may call (globs), or undefined for any. */
  readonly tools?: readonly RegExp[];
  readonly toolGlobs?: readonly string[];
  /** String arguments that must match, where a tool has them: name → globs (any of them). */
  readonly arguments: ReadonlyArray<readonly [string, readonly RegExp[], readonly string[]]>;
  /** URIs `resources/read` may read (globs), or undefined for any. */
  readonly resources?: readonly RegExp[];
}

/** One JSON-RPC message of a POST, as the checks and the audit trail see it. */
export interface McpMessage {
  /** The request id (a string or a number), or undefined for a notification or a response. */
  readonly id: string | number | undefined;
  readonly method: string | undefined;
  /** `tools/call`'s tool name. */
  readonly tool?: string;
  readonly uri?: string;
  readonly args?: Readonly<Record<string, unknown>>;
}

/** A POST's messages, or why they cannot be read one way only (a JSON-RPC parse error then). */
export type McpBody =
  | {
      readonly ok: true;
      readonly batch: boolean;
      readonly messages: readonly McpMessage[];
      readonly value: unknown;
    }
  | { readonly ok: false; readonly reason: string };

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => v !== null && typeof v === "object" && !Array.isArray(v);

const readMessage = (m: unknown, where: string): McpMessage | string => {
  if (!isObject(m)) return `${where} is not a JSON-RPC message`;
  const variant = caseVariant(m) ?? (isObject(m.params) ? caseVariant(m.params) : undefined);
  if (variant !== undefined) return `${where} has keys that differ only in case (${variant.slice(0, 64)})`;
  if (m.jsonrpc !== "2.0") return `${where} is not JSON-RPC 2.0`;
  const id = typeof m.id === "string" || typeof m.id === "number" ? m.id : undefined;
  if (m.method === undefined) return { id, method: undefined }; // a response (to a server request)
  if (typeof m.method !== "string") return `${where}.method must be a string`;
  const params = isObject(m.params) ? m.params : undefined;
  if (m.method === "tools/call") {
    if (!params || typeof params.name !== "string") return `${where}: tools/call needs params.name`;
    const args = params.arguments;
    if (args !== undefined && !isObject(args)) return `${where}: tools/call arguments must be an object`;
    if (args && caseVariant(args) !== undefined)
      return `${where}: tools/call arguments have keys that differ only in case`;
    return { id, method: m.method, tool: params.name, args: args ?? {} };
  }
  if (m.method === "resources/read") {
    if (!params || typeof params.uri !== "string") return `${where}: resources/read needs params.uri`;
    return { id, method: m.method, uri: params.uri };
  }
  return { id, method: m.method };
};

/** The messages of an MCP POST body (one message or a batch). */
export const readMcpBody = (value: unknown): McpBody => {
  const batch = Array.isArray(value);
  const list = batch ? (value as unknown[]) : [value];
  if (list.length === 0) return { ok: false, reason: "an empty batch" };
  const messages: McpMessage[] = [];
  for (const [i, m] of list.entries()) {
    const read = readMessage(m, batch ? `message ${i}` : "the message");
    if (typeof read === "string") return { ok: false, reason: read };
    messages.push(read);
  }
  return { ok: true, batch, messages, value };
};

const shown = (text: string) => JSON.stringify(redact(text.slice(0, 100)));

/**
 * Why a scope refuses one message, or undefined: `tools/call` by tool name and by the scope's
 * argument constraints (a constrained argument the tool was given must be a string matching one
 * glob), `resources/read` by URI. Everything else of the protocol passes.
 */
export const mcpRefusal = (m: McpMessage, c: McpConstraints): string | undefined => {
  if (m.method === "tools/call" && m.tool !== undefined) {
    if (c.tools && !c.tools.some((re) => re.test(m.tool!)))
      return `tool ${shown(m.tool)} is not allowed (allowed: ${c.toolGlobs?.join(", ")})`;
    for (const [name, globs, written] of c.arguments) {
      if (!m.args || !Object.hasOwn(m.args, name)) continue;
      const value = m.args[name];
      if (typeof value !== "string") return `argument ${name} of ${shown(m.tool)} must be a string`;
      if (!globs.some((re) => re.test(value)))
        return `argument ${name} ${shown(value)} of ${shown(m.tool)} is not allowed (allowed: ${written.join(", ")})`;
    }
  }
  if (
    m.method === "resources/read" &&
    m.uri !== undefined &&
    c.resources &&
    !c.resources.some((re) => re.test(m.uri!))
  )
    return `resource ${shown(m.uri)} is not allowed`;
  return undefined;
};

/** A tools/list result with only the tools the scope may call. */
export const filterToolList = (message: Json, c: McpConstraints): Json => {
  const result = message.result;
  if (!c.tools || !isObject(result) || !Array.isArray(result.tools)) return message;
  const tools = result.tools.filter(
    (t) => isObject(t) && typeof t.name === "string" && c.tools!.some((re) => re.test(t.name as string)),
  );
  return { ...message, result: { ...result, tools } };
};

/** The JSON-RPC error the broker answers a refused request with (the server never sees it). */
export const jsonRpcError = (
  id: string | number | null,
  code: string,
  message: string,
  requestId: string,
) => ({
  jsonrpc: "2.0" as const,
  id,
  error: { code: -32001, message, data: { code, requestId } },
});
