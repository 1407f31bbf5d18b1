import type { BrokerConfig } from "./types.js";

/**
 * The config a running broker serves, and the one change it takes without a restart: the
 * `scopes` and `prices` of a new file (SIGHUP). The new file is validated whole first (by the
 * loader); then it must fit what stays — every scope an issuer or claims rule grants still there,
 * every scope on an upstream the broker runs (pools, keys and the rest are built at start) — or
 * nothing of it is taken. Other sections that changed are named, for a restart.
 */
export interface ReloadResult {
  readonly applied: boolean;
  /** Why nothing was applied. */
  readonly problems: readonly string[];
  /** Sections that differ but need a restart. */
  readonly ignored: readonly string[];
}

const SECTIONS: readonly (keyof BrokerConfig)[] = [
  "listen",
  "store",
  "limits",
  "proxy",
  "upstreams",
  "issuers",
  "admins",
  "budgets",
  "publicUrl",
  "dpop",
  "audit",
  "traces",
  "log",
];

/** A section's shape for comparison: secrets by their value's digest-free presence, maps as entries. */
const shape = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) => {
    if (v instanceof Map) return [...v.entries()];
    if (v instanceof Set) return [...v.values()];
    if (v instanceof RegExp) return v.source;
    return v;
  });

export class LiveConfig {
  #current: BrokerConfig;

  constructor(initial: BrokerConfig) {
    this.#current = initial;
  }

  get current(): BrokerConfig {
    return this.#current;
  }

  /** Takes `next`'s scopes and prices if they fit the rest of the running config. */
  apply(next: BrokerConfig): ReloadResult {
    const now = this.#current;
    const problems: string[] = [];
    for (const scope of next.scopes.values()) {
      if (!now.upstreams.has(scope.upstream))
        problems.push(
          `scopes.${scope.name}: upstream ${scope.upstream} is not one this broker runs (restart to add it)`,
        );
    }
    for (const issuer of now.issuers) {
      const granted = [
        ...issuer.scopes,
        ...(issuer.kind === "oidc" ? issuer.rules.flatMap((r) => [...r.scopes]) : []),
      ];
      for (const scope of granted)
        if (!next.scopes.has(scope))
          problems.push(`issuer ${issuer.name} grants ${scope}, which the new file drops`);
    }
    for (const upstream of next.prices.keys())
      if (!now.upstreams.has(upstream)) problems.push(`prices.${upstream}: no such upstream running`);
    if (problems.length > 0) return { applied: false, problems, ignored: [] };
    const ignored = SECTIONS.filter((s) => shape(now[s]) !== shape(next[s]));
    this.#current = Object.freeze({
      ...now,
      scopes: next.scopes,
      scopesByUpstream: next.scopesByUpstream,
      prices: next.prices,
    });
    return { applied: true, problems: [], ignored };
  }
}
