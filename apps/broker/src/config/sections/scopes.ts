import { hasConstraints } from "../../policy/constraints.js";
import { compileEndpointPattern, compileGlob } from "../../policy/pattern.js";
import { parseRateLimit } from "../../policy/rate.js";
import type { Problems } from "../problems.js";
import type { ConfigFile } from "../schema.js";
import type { ScopeConfig, UpstreamConfig } from "../types.js";

/** `scopes:` → compiled endpoint matchers, methods, rate limit and body constraints; grouped by upstream. */
export const resolveScopes = (
  file: ConfigFile["scopes"],
  upstreams: ReadonlyMap<string, UpstreamConfig>,
  problems: Problems,
): { scopes: Map<string, ScopeConfig>; scopesByUpstream: Map<string, readonly ScopeConfig[]> } => {
  const scopes = new Map<string, ScopeConfig>();
  const scopesByUpstream = new Map<string, ScopeConfig[]>();
  for (const [name, s] of Object.entries(file)) {
    const path = `scopes.${name}`;
    if (!upstreams.has(s.upstream)) {
      problems.add(
        `${path}.upstream`,
        `no upstream named ${s.upstream} (have: ${[...upstreams.keys()].join(", ")})`,
      );
    }
    const matchers: RegExp[] = [];
    s.endpoints.forEach((pattern, i) => {
      try {
        matchers.push(compileEndpointPattern(pattern));
      } catch (error) {
        problems.add(`${path}.endpoints[${i}]`, (error as Error).message);
      }
    });
    const constraints = Object.freeze({
      models: s.models ? Object.freeze(s.models.map(compileGlob)) : undefined,
      modelGlobs: s.models ? Object.freeze([...s.models]) : undefined,
      maxTokens: s.max_tokens,
      maxChoices: s.max_choices,
      tools: s.tools ? Object.freeze(s.tools.map(compileGlob)) : undefined,
      toolGlobs: s.tools ? Object.freeze([...s.tools]) : undefined,
    });
    if (s.max_choices !== undefined && s.max_tokens === undefined) {
      problems.add(`${path}.max_choices`, "bounds choices against max_tokens: set max_tokens too");
    }
    if (s.mcp && upstreams.get(s.upstream)?.kind !== "mcp")
      problems.add(`${path}.mcp`, `upstream ${s.upstream} is not kind: mcp`);
    const mcp = s.mcp
      ? Object.freeze({
          ...(s.mcp.tools
            ? { tools: Object.freeze(s.mcp.tools.map(compileGlob)), toolGlobs: s.mcp.tools }
            : {}),
          arguments: Object.freeze(
            Object.entries(s.mcp.arguments ?? {}).map(([arg, glob]) => {
              const globs = Array.isArray(glob) ? glob : [glob];
              return Object.freeze([arg, Object.freeze(globs.map(compileGlob)), globs] as const);
            }),
          ),
          ...(s.mcp.resources ? { resources: Object.freeze(s.mcp.resources.map(compileGlob)) } : {}),
        })
      : undefined;
    const scope: ScopeConfig = Object.freeze({
      name,
      upstream: s.upstream,
      mcp,
      websocket: s.websocket,
      requireDpop: s.require_dpop,
      maxConnectionMs: s.max_connection_seconds === undefined ? undefined : s.max_connection_seconds * 1000,
      endpoints: Object.freeze([...s.endpoints]),
      matchers: Object.freeze(matchers),
      methods: new Set(s.methods),
      rate: s.rate_limit ? Object.freeze(parseRateLimit(s.rate_limit)!) : undefined,
      constraints,
      hasConstraints: hasConstraints(constraints),
    });
    scopes.set(name, scope);
    const list = scopesByUpstream.get(s.upstream) ?? [];
    list.push(scope);
    scopesByUpstream.set(s.upstream, list);
  }

  return {
    scopes,
    scopesByUpstream: new Map([...scopesByUpstream].map(([k, v]) => [k, Object.freeze(v)])),
  };
};
