import { redact } from "@perishable/protocol";
import type { OutputField } from "./constraints.js";

/**
 * What calls cost, and the most a call can cost before it is sent. Money is counted in whole
 * nano-dollars (1e-9 USD) everywhere below the config: a price of $0.15 per million tokens is 150
 * nano-dollars a token, sums stay exact in a double (and in Redis' integers) up to $9 million, and
 * every rounding rounds a cost up and a limit down.
 */
export const NANO_PER_USD = 1_000_000_000;

/** A spending limit as the broker counts it: nano-dollars and tokens; a unit left out is not limited. */
export interface BudgetLimits {
  readonly usd?: number;
  readonly tokens?: number;
}

/** A budget as a request or the config states it (dollars) → as the broker counts it (nano-dollars, rounded down). */
export const budgetLimits = (stated: { readonly usd?: number; readonly tokens?: number }): BudgetLimits => ({
  ...(stated.usd === undefined ? {} : { usd: Math.floor(stated.usd * NANO_PER_USD) }),
  ...(stated.tokens === undefined ? {} : { tokens: stated.tokens }),
});

/** One `prices.<upstream>.<glob>` entry, compiled: nano-dollars per token. */
export interface Price {
  readonly glob: string;
  readonly matcher: RegExp;
  readonly input: number;
  readonly output: number;
  /** Cached input tokens (OpenAI `cached_tokens`, Anthropic `cache_read_input_tokens`); default: input. */
  readonly cachedInput: number;
  /** Anthropic `cache_creation_input_tokens`; default: 1.25 × input, Anthropic's 5-minute write price. */
  readonly cacheWrite: number;
  /** Output limit filled in for a budgeted request that states none and has no ceiling. */
  readonly maxOutput: number | undefined;
  /** The model's context window: the input bound when the body's size cannot bound it. */
  readonly context: number | undefined;
}

/** USD per million tokens (the config's unit) → nano-dollars per token. */
export const perToken = (usdPerMillion: number): number => usdPerMillion * 1_000;

/** The first price whose glob matches the model (config order), or undefined. */
export const priceOf = (prices: readonly Price[] | undefined, model: string): Price | undefined =>
  prices?.find((p) => p.matcher.test(model));

/** What a request may cost at most: nano-dollars and tokens (input + output), before it is sent. */
export interface WorstCase {
  readonly usd: number;
  readonly tokens: number;
}

/** A request's cost bound, or why it has none (refused then, but only under a budget). */
export type Bound =
  | { readonly ok: true; readonly worst: WorstCase }
  | { readonly ok: false; readonly why: string };

/** Nothing to pay: reads, deletes, token counting. */
export const FREE: Bound = Object.freeze({ ok: true, worst: Object.freeze({ usd: 0, tokens: 0 }) });

/** Tokens the provider adds that the body does not show (tool-use system prompts, message framing). */
const FIXED_OVERHEAD = 2_048;
/** A built-in or server tool's definition lives at the provider, not in the body. */
const PER_SERVER_TOOL = 2_048;

/**
 * An upper bound on a body's input tokens, or undefined when its size cannot bound them. Every token
 * of text is at least one byte (byte-level BPE), and JSON's keys, quotes and escapes only add bytes,
 * so the body's length bounds its text; the provider's own framing and tool prompts get a fixed
 * allowance, built-in tools one each. Content that the provider fetches or expands (an image or
 * file by URL or id, an earlier response or conversation by id) is not bounded by the body: then
 * only the model's context window is.
 */
export const inputTokenBound = (
  body: Record<string, unknown>,
  bytes: number,
  parts = scanParts(body),
): number | undefined => {
  if (typeof body.previous_response_id === "string" || body.conversation !== undefined) return undefined;
  let serverTools = 0;
  if (Array.isArray(body.tools)) {
    for (const tool of body.tools) {
      const type = (tool as { type?: unknown } | null)?.type;
      if (typeof type === "string" && type !== "function" && type !== "custom") serverTools += 1;
    }
  }
  if (parts.outside) return undefined;
  return bytes + FIXED_OVERHEAD + serverTools * PER_SERVER_TOOL;
};

/** Parts that make the provider fetch or expand something: images, files and audio by URL or id. */
const OUTSIDE_TYPES = new Set([
  "image_url",
  "input_image",
  "image",
  "input_file",
  "file",
  "document",
  "input_audio",
]);

/**
 * What a body's content holds: a part the provider fetches from outside (in the messages, input
 * or system prompt), a cache breakpoint (Anthropic's `cache_control`, there or on a tool).
 */
const scanParts = (body: Record<string, unknown>): { outside: boolean; cacheControl: boolean } => {
  const found = { outside: false, cacheControl: false };
  const walk = (value: unknown, depth: number): void => {
    if (depth > 8 || value === null || typeof value !== "object" || found.outside) return;
    if (Array.isArray(value)) {
      for (const v of value) walk(v, depth + 1);
      return;
    }
    const part = value as Record<string, unknown>;
    if (typeof part.type === "string" && OUTSIDE_TYPES.has(part.type)) found.outside = true;
    if (part.cache_control !== undefined) found.cacheControl = true;
    for (const v of Object.values(part)) walk(v, depth + 1);
  };
  for (const value of [body.messages, body.input, body.system]) walk(value, 0);
  if (Array.isArray(body.tools) && body.tools.some((t) => (t as { cache_control?: unknown })?.cache_control))
    found.cacheControl = true;
  return found;
};

/** The endpoints a budget can price: what each one's output limit is, and whether it embeds. */
export type Priced = { readonly kind: "generate"; readonly field: OutputField } | { readonly kind: "embed" };

export const pricedEndpoint = (
  path: string,
  output: OutputField | null | undefined,
): Priced | "free" | undefined => {
  if (output) return { kind: "generate", field: output };
  if (output === null) return "free"; // count_tokens
  if (path.endsWith("/embeddings")) return { kind: "embed" };
  return undefined;
};

/**
 * The worst case of a request to a priced endpoint: input bound × the dearest input price, plus the
 * output limit (stated or filled in) × choices × the output price.
 */
export const worstCase = (
  body: Record<string, unknown>,
  bytes: number,
  priced: Priced,
  prices: readonly Price[] | undefined,
  upstream: string,
  outputLimit: number | undefined,
): Bound => {
  const model = body.model;
  if (typeof model !== "string") return { ok: false, why: "a budgeted request must name its model" };
  const price = priceOf(prices, model);
  if (!price)
    return {
      ok: false,
      why: `model ${JSON.stringify(redact(model.slice(0, 100)))} has no price for upstream ${upstream}, so a budget cannot cover it`,
    };
  const parts = scanParts(body);
  const fromBody = inputTokenBound(body, bytes, parts);
  const input =
    fromBody === undefined
      ? price.context
      : price.context === undefined
        ? fromBody
        : Math.min(fromBody, price.context);
  if (input === undefined)
    return {
      ok: false,
      why: `the request refers to content outside its body, so only a context window bounds it: set prices.${upstream}.${JSON.stringify(price.glob)}.context`,
    };
  let output = 0;
  if (priced.kind === "generate") {
    const limit = outputLimit ?? price.maxOutput;
    if (limit === undefined)
      return {
        ok: false,
        why: `a budgeted request needs an output limit: state ${priced.field}, or set max_tokens on the scope or max_output on the price`,
      };
    output = limit * choicesOf(body);
  }
  // Cache writes (dearer than input) happen only where the body sets a cache breakpoint.
  const writesCache = parts.cacheControl;
  const inputPrice = Math.max(price.input, price.cachedInput, writesCache ? price.cacheWrite : 0);
  return {
    ok: true,
    worst: { usd: Math.ceil(input * inputPrice + output * price.output), tokens: input + output },
  };
};

const choicesOf = (body: Record<string, unknown>): number => {
  let n = 1;
  for (const key of ["n", "best_of"]) {
    const v = body[key];
    if (typeof v === "number" && Number.isInteger(v) && v > n) n = v;
  }
  return n;
};

/** What an answer's usage says was consumed, by price class. */
export interface Consumed {
  readonly input: number;
  readonly cachedInput: number;
  readonly cacheWrite: number;
  readonly output: number;
}

/**
 * Token counts from an answer's usage counters (as `proxy/usage.ts` flattens them), for OpenAI chat
 * and completions (`prompt_tokens`, `completion_tokens`, `prompt_tokens_details.cached_tokens`),
 * Responses (`input_tokens`, `output_tokens`, `input_tokens_details.cached_tokens`), embeddings and
 * Anthropic messages (`input_tokens` uncached, `cache_read_input_tokens`,
 * `cache_creation_input_tokens`, `output_tokens`). Undefined when the usage says nothing countable.
 */
export const consumedOf = (usage: Readonly<Record<string, number>> | undefined): Consumed | undefined => {
  if (!usage) return undefined;
  const n = (key: string) => {
    const v = usage[key];
    return typeof v === "number" && Number.isFinite(v) && v > 0 ? Math.ceil(v) : 0;
  };
  if (usage.prompt_tokens !== undefined || usage.completion_tokens !== undefined) {
    const cached = Math.min(n("prompt_tokens_details.cached_tokens"), n("prompt_tokens"));
    return {
      input: n("prompt_tokens") - cached,
      cachedInput: cached,
      cacheWrite: 0,
      output: n("completion_tokens"),
    };
  }
  if (usage.input_tokens !== undefined || usage.output_tokens !== undefined) {
    if (usage["input_tokens_details.cached_tokens"] !== undefined) {
      const cached = Math.min(n("input_tokens_details.cached_tokens"), n("input_tokens"));
      return {
        input: n("input_tokens") - cached,
        cachedInput: cached,
        cacheWrite: 0,
        output: n("output_tokens"),
      };
    }
    return {
      input: n("input_tokens"),
      cachedInput: n("cache_read_input_tokens"),
      cacheWrite: n("cache_creation_input_tokens"),
      output: n("output_tokens"),
    };
  }
  return undefined;
};

/** What consumed tokens cost at a price: nano-dollars (rounded up) and tokens. */
export const costOf = (consumed: Consumed, price: Price): WorstCase => ({
  usd: Math.ceil(
    consumed.input * price.input +
      consumed.cachedInput * price.cachedInput +
      consumed.cacheWrite * price.cacheWrite +
      consumed.output * price.output,
  ),
  tokens: consumed.input + consumed.cachedInput + consumed.cacheWrite + consumed.output,
});
