import { filterToolList, type McpConstraints } from "../policy/mcp.js";

/** Rewrites an answer's body as it streams by: what goes in, what comes out. */
export interface BodyRewriter {
  push(chunk: Buffer): Buffer;
  end(): Buffer;
}

const MAX_JSON = 4 * 1024 * 1024;
const EMPTY = Buffer.alloc(0);

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => v !== null && typeof v === "object" && !Array.isArray(v);

/** A message (or a batch of them) with every tools/list result for `ids` filtered to the scope's tools. */
const filterMessages = (value: unknown, ids: ReadonlySet<string | number>, c: McpConstraints): unknown => {
  const one = (m: unknown) =>
    isObject(m) && (typeof m.id === "string" || typeof m.id === "number") && ids.has(m.id)
      ? filterToolList(m, c)
      : m;
  return Array.isArray(value) ? value.map(one) : one(value);
};

/**
 * The answers to tools/list requests, JSON or SSE, with only the tools the scope may call: the
 * model is never shown a tool its token cannot use. A JSON answer is read whole (up to 4 MiB; a
 * larger one is not a tool list and is replaced by an error); an event stream is rewritten event
 * by event, each sent on as soon as it is complete. Anything else passes as it came.
 */
export const toolListRewriter = (
  contentType: string | undefined,
  ids: ReadonlySet<string | number>,
  c: McpConstraints,
): BodyRewriter | undefined => {
  if (!c.tools || ids.size === 0 || !contentType) return undefined;
  if (contentType.startsWith("application/json")) {
    const parts: Buffer[] = [];
    let bytes = 0;
    return {
      push(chunk) {
        bytes += chunk.length;
        if (bytes <= MAX_JSON) parts.push(chunk);
        return EMPTY;
      },
      end() {
        if (bytes > MAX_JSON)
          return Buffer.from(
            '{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"the answer is too large to check"}}',
          );
        const text = Buffer.concat(parts).toString("utf8");
        try {
          return Buffer.from(JSON.stringify(filterMessages(JSON.parse(text), ids, c)));
        } catch {
          return Buffer.from(text); // not JSON: no tool list in it
        }
      },
    };
  }
  if (contentType.startsWith("text/event-stream")) {
    let pending = "";
    const rewriteEvent = (event: string): string => {
      const lines = event.split("\n");
      const data = lines.filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, ""));
      if (data.length === 0) return event;
      let value: unknown;
      try {
        value = JSON.parse(data.join("\n"));
      } catch {
        return event;
      }
      const filtered = JSON.stringify(filterMessages(value, ids, c));
      return [...lines.filter((l) => !l.startsWith("data:")), `data: ${filtered}`].join("\n");
    };
    const flush = (final: boolean): Buffer => {
      const normalized = pending.replace(/\r\n/g, "\n");
      const cut = final ? normalized.length : normalized.lastIndexOf("\n\n") + 2;
      if (cut <= 1) {
        pending = normalized;
        return EMPTY;
      }
      const complete = normalized.slice(0, cut);
      pending = normalized.slice(cut);
      const events = complete.split("\n\n");
      const tail = events.pop() ?? "";
      const out =
        events.map((e) => `${rewriteEvent(e)}\n\n`).join("") + (final && tail ? rewriteEvent(tail) : "");
      return Buffer.from(out);
    };
    return {
      push(chunk) {
        pending += chunk.toString("utf8");
        return flush(false);
      },
      end() {
        return flush(true);
      },
    };
  }
  return undefined;
};
