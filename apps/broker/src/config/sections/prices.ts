import { compileGlob } from "../../policy/pattern.js";
import { type Price, perToken } from "../../policy/pricing.js";
import type { Problems } from "../problems.js";
import type { ConfigFile } from "../schema.js";
import type { UpstreamConfig } from "../types.js";

/**
 * `prices:` → per upstream, its model globs in file order with prices per token. A model name of
 * digits only is refused: a YAML mapping keeps the order of every other key, but not of those.
 */
export const resolvePrices = (
  raw: ConfigFile["prices"],
  upstreams: ReadonlyMap<string, UpstreamConfig>,
  problems: Problems,
): Map<string, readonly Price[]> => {
  const prices = new Map<string, readonly Price[]>();
  for (const [upstream, table] of Object.entries(raw)) {
    if (!upstreams.has(upstream)) problems.add(`prices.${upstream}`, `no upstream named ${upstream}`);
    const rules: Price[] = [];
    for (const [glob, p] of Object.entries(table)) {
      if (/^\d+$/.test(glob)) {
        problems.add(
          `prices.${upstream}.${glob}`,
          "a model glob of digits only loses its place in the order",
        );
        continue;
      }
      rules.push(
        Object.freeze({
          glob,
          matcher: compileGlob(glob),
          input: perToken(p.input),
          output: perToken(p.output),
          cachedInput: perToken(p.cached_input ?? p.input),
          cacheWrite: perToken(p.cache_write ?? p.input * 1.25),
          maxOutput: p.max_output,
          context: p.context,
        }),
      );
    }
    prices.set(upstream, rules);
  }
  return prices;
};
