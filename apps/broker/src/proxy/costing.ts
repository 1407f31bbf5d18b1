import type { ScopeConfig } from "../config/types.js";
import type { OutputField } from "../policy/constraints.js";
import {
  FREE,
  type Price,
  type Priced,
  pricedEndpoint,
  priceOf,
  type WorstCase,
  worstCase,
} from "../policy/pricing.js";

/** What a request costs at most under one scope, and what a budget needs done to its body. */
export interface Costing {
  /** The worst case, or null when it has none (refused then, but only under a budget). */
  readonly worst: WorstCase | null;
  /** Why there is no worst case. */
  readonly why?: string;
  /** The price the answer's usage is charged at. */
  readonly price?: Price;
  /** An output limit a budget fills in (the price's max_output) when the body and scope state none. */
  readonly fill?: { readonly field: OutputField; readonly value: number };
  /** The request streams chat or completions: a budget asks the upstream for the usage chunk. */
  readonly streamUsage: boolean;
}

const FREE_COSTING: Costing = Object.freeze({ worst: FREE.ok ? FREE.worst : null, streamUsage: false });

/** Methods that do not make an upstream generate anything. */
const READS = new Set(["GET", "HEAD", "OPTIONS", "DELETE"]);

/** How a request is priced: free, at an endpoint the broker can price, or not at all. */
export const pricingOf = (
  method: string,
  path: string,
  output: OutputField | null | undefined,
): Priced | "free" | "unpriceable" => {
  if (READS.has(method)) return "free";
  return pricedEndpoint(path, output) ?? "unpriceable";
};

/** The costing of a request that is free, or that nothing can price (with why). */
export const fixedCosting = (kind: "free" | "unpriceable", method: string, path: string): Costing =>
  kind === "free"
    ? FREE_COSTING
    : {
        worst: null,
        why: `${method} ${path.slice(0, 100)} is not an endpoint the broker can price, so a budget cannot cover it`,
        streamUsage: false,
      };

const TOKEN_FIELDS = ["max_tokens", "max_completion_tokens", "max_output_tokens"] as const;

/** The largest output limit the body states, in any of the fields an upstream might read. */
const statedLimit = (body: Record<string, unknown>): number | undefined => {
  let limit: number | undefined;
  for (const field of TOKEN_FIELDS) {
    const v = body[field];
    if (typeof v === "number" && Number.isInteger(v) && v > 0) limit = Math.max(limit ?? 0, v);
  }
  return limit;
};

/**
 * The costing of a request to a priced endpoint under one scope: the worst case from the body
 * (checked and parsed already), with the output limit the body states, else the one the scope
 * fills in, else the price's `max_output` (filled in then, under a budget).
 */
export const costingOf = (
  scope: ScopeConfig,
  path: string,
  priced: Priced,
  parsed: { readonly body: Record<string, unknown> | undefined; readonly bytes: number },
  prices: readonly Price[] | undefined,
  scopeFill: { readonly value: number } | undefined,
): Costing => {
  const { body, bytes } = parsed;
  if (!prices)
    return {
      worst: null,
      why: `upstream ${scope.upstream} has no prices, so a budget cannot cover its ${priced.kind === "embed" ? "embeddings" : "completions"}`,
      streamUsage: false,
    };
  if (!body)
    return {
      worst: null,
      why: "a budgeted request must be a JSON object naming its model",
      streamUsage: false,
    };
  const stated = statedLimit(body) ?? scopeFill?.value;
  const model = typeof body.model === "string" ? body.model : undefined;
  const price = model === undefined ? undefined : priceOf(prices, model);
  const fill =
    stated === undefined && priced.kind === "generate" && price?.maxOutput !== undefined
      ? { field: priced.field, value: price.maxOutput }
      : undefined;
  const bound = worstCase(body, bytes, priced, prices, scope.upstream, stated);
  // OpenAI's chat and completions streams carry usage only when asked; Anthropic's and the
  // Responses API's always do.
  const streamUsage = body.stream === true && path.endsWith("completions");
  if (!bound.ok) return { worst: null, why: bound.why, streamUsage };
  return { worst: bound.worst, ...(price ? { price } : {}), ...(fill ? { fill } : {}), streamUsage };
};
