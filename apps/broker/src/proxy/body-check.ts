import type { IncomingMessage } from "node:http";
import type { ScopeConfig } from "../config/types.js";
import { BrokerError } from "../errors.js";
import {
  type BodyVerdict,
  checkBodyConstraints,
  type OutputField,
  outputFieldOf,
} from "../policy/constraints.js";
import { fold } from "../policy/json-keys.js";
import { readBody } from "./read-body.js";

/** What the constrained scopes said about one body. */
export interface BodyCheck {
  /** The JSON value that was checked (what is forwarded, re-serialised), or undefined if none. */
  readonly checked: Record<string, unknown> | undefined;
  /** Scope name → why its constraints refuse this body. */
  readonly reasons: ReadonlyMap<string, string>;
  /** Scope name → the output limit it fills in. */
  readonly fills: ReadonlyMap<string, { readonly field: OutputField; readonly value: number }>;
  /** The body as it came (forwarded as it came when it is not a JSON object). */
  readonly raw: Buffer;
  /** The body's length in bytes (what bounds its input tokens). */
  readonly bytes: number;
  /** Why the body cannot be read one way only (not a JSON object, ambiguous keys), if so. */
  readonly problem: string | undefined;
}

/** Body fields the constraints read: a key that an upstream could read as one of them is refused. */
const CONSTRAINED_FIELDS = new Set([
  "model",
  "max_tokens",
  "max_completion_tokens",
  "max_output_tokens",
  "n",
  "best_of",
  "stream",
  "tools",
  "functions",
  "tool_choice",
  "function_call",
]);

/**
 * Reads and checks a body against every candidate scope that has constraints. The broker forwards
 * only what it checked: the value is re-serialised from its own reading, so duplicate keys (which
 * one wins differs between JSON readers) cannot smuggle a second value past the check. What
 * re-serialising cannot settle is refused: a compressed body, more than one Content-Type, and
 * top-level keys that a case-insensitive reader (Go's encoding/json folds Unicode case, so
 * `Model`, `MODEL` and `max_tokenſ` all count) would take for another or for a constrained field.
 * Refusals are BrokerErrors; the caller authenticates before it answers with one.
 */
export const checkBody = async (
  req: IncomingMessage,
  scopes: readonly ScopeConfig[],
  path: string,
  maxBytes: number,
): Promise<BodyCheck> => {
  const encoding = req.headers["content-encoding"];
  if (encoding && encoding !== "identity") {
    // What the upstream decodes is not what the broker could check: refuse rather than guess.
    throw new BrokerError(
      "bad_request",
      "a compressed body cannot be checked against this scope's constraints",
    );
  }
  if (countHeader(req.rawHeaders, "content-type") > 1) {
    throw new BrokerError("bad_request", "more than one Content-Type: the body could be read two ways");
  }
  const buffered = hasBody(req) ? await readBody(req, maxBytes) : Buffer.alloc(0);
  const parsed = parseJson(req, buffered);
  const reasons = new Map<string, string>();
  const fills = new Map<string, { field: OutputField; value: number }>();
  const ambiguity = parsed === undefined ? undefined : ambiguousKey(parsed);
  const output = outputFieldOf(path);
  for (const scope of scopes) {
    if (!scope.hasConstraints) continue;
    const verdict: BodyVerdict =
      parsed === undefined
        ? { ok: false, reason: "the body must be a JSON object to check this scope's constraints" }
        : ambiguity
          ? { ok: false, reason: ambiguity }
          : checkBodyConstraints(parsed, scope.constraints, output);
    if (!verdict.ok && verdict.malformed) throw new BrokerError("bad_request", verdict.reason);
    if (!verdict.ok) reasons.set(scope.name, verdict.reason);
    else if (verdict.fill) fills.set(scope.name, verdict.fill);
  }
  const problem =
    parsed === undefined ? "the body must be a JSON object to check this scope's constraints" : ambiguity;
  return { checked: parsed, raw: buffered, reasons, fills, bytes: buffered.length, problem };
};

/**
 * The body to forward for the scope that allowed the request: the checked value with its fill-in,
 * and under a budget the price's output limit where nothing else set one, and a stream's request
 * for its usage chunk (`stream_options.include_usage`) when the client did not ask.
 */
export const forwardedBody = (
  check: BodyCheck,
  scope: string,
  budget?: {
    readonly fill?: { readonly field: OutputField; readonly value: number };
    readonly streamUsage: boolean;
  },
): Buffer => {
  // Not a JSON object (a scope without constraints let it through): nothing was re-read, so
  // nothing is re-written.
  if (check.checked === undefined) return check.raw;
  const fill = check.fills.get(scope) ?? budget?.fill;
  let value: Record<string, unknown> = fill
    ? { ...check.checked, [fill.field]: fill.value }
    : { ...check.checked };
  if (budget?.streamUsage) {
    const options = value.stream_options;
    const asked = options !== null && typeof options === "object" && !Array.isArray(options) ? options : {};
    value = { ...value, stream_options: { ...asked, include_usage: true } };
  }
  return Buffer.from(JSON.stringify(value));
};

const ambiguousKey = (body: Record<string, unknown>): string | undefined => {
  const seen = new Map<string, string>();
  for (const key of Object.keys(body)) {
    const folded = fold(key);
    const other = seen.get(folded);
    if (other !== undefined)
      return `the body has keys that differ only in case (${other}, ${key.slice(0, 64)})`;
    seen.set(folded, key);
    if (!CONSTRAINED_FIELDS.has(key) && CONSTRAINED_FIELDS.has(folded)) {
      return `the body key ${key.slice(0, 64)} could be read as ${folded}: write it as ${folded}`;
    }
  }
  return undefined;
};

const countHeader = (rawHeaders: readonly string[], lower: string): number => {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === lower.length && name.toLowerCase() === lower) n += 1;
  }
  return n;
};

export const hasBody = (req: IncomingMessage): boolean => {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
};

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\b/i;

/** The body as a JSON object, or undefined when it is not JSON or not an object. */
const parseJson = (req: IncomingMessage, body: Buffer): Record<string, unknown> | undefined => {
  if (!JSON_TYPE.test(req.headers["content-type"] ?? "")) return undefined;
  try {
    const value: unknown = JSON.parse(body.toString("utf8"));
    return value !== null && typeof value === "object" && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
};
