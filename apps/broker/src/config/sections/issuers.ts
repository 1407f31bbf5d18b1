import type { z } from "zod";
import { compileGlob } from "../../policy/pattern.js";
import { budgetLimits } from "../../policy/pricing.js";
import type { Problems } from "../problems.js";
import { ASYMMETRIC_ALGORITHMS, type ConfigFile, KeyIssuer, OidcIssuer } from "../schema.js";
import { Secret } from "../secret.js";
import type { AdminConfig, IssuerConfig, ScopeConfig } from "../types.js";

/** The names and keys of issuers and admins, which must all be distinct. */
export class Identities {
  readonly names = new Set<string>();
  readonly #keys = new Map<string, string>();
  readonly #problems: Problems;

  constructor(problems: Problems) {
    this.#problems = problems;
  }

  claimKey(key: string, owner: string, path: string): void {
    const other = this.#keys.get(key);
    if (other) this.#problems.add(path, `the same key is already used by ${other}; every key must be unique`);
    this.#keys.set(key, owner);
  }
}

/** One `issuers[i]` entry through its own schema (key or OIDC), its problems reported under its path. */
export const parseIssuer = (raw: unknown, path: string, problems: Problems, skip?: ReadonlySet<string>) => {
  if (raw === null || typeof raw !== "object") return undefined;
  const parsed = ("oidc" in raw ? OidcIssuer : KeyIssuer).safeParse(raw);
  if (parsed.success) return parsed.data;
  problems.addIssues(parsed.error.issues, path, skip);
  return undefined;
};

/**
 * `issuers:` → key issuers and OIDC issuers with their claims rules, each within the global limits
 * and naming only known scopes. Each entry is parsed here, once (the file schema only knows it is
 * a mapping), so a file that fails elsewhere still reports its issuers' problems.
 */
export const resolveIssuers = (
  raw: ConfigFile["issuers"],
  context: { readonly limits: ConfigFile["limits"]; readonly scopes: ReadonlyMap<string, ScopeConfig> },
  ids: Identities,
  problems: Problems,
): IssuerConfig[] => {
  const { limits, scopes } = context;
  const names = ids.names;
  const claimKey = (key: string, owner: string, path: string) => ids.claimKey(key, owner, path);
  const issuers: IssuerConfig[] = [];
  const oidcIssuers = new Set<string>();
  raw.forEach((raw, i) => {
    const path = `issuers[${i}]`;
    const issuer = parseIssuer(raw, path, problems);
    if (!issuer) return;
    if (names.has(issuer.name)) problems.add(`${path}.name`, `duplicate name ${issuer.name}`);
    names.add(issuer.name);
    issuer.scopes.forEach((scope, j) => {
      if (!scopes.has(scope)) problems.add(`${path}.scopes[${j}]`, `no scope named ${scope}`);
    });
    const common = issuerLimits(issuer, limits, path, problems);
    if (!("oidc" in issuer)) {
      claimKey(issuer.key, `issuer ${issuer.name}`, `${path}.key`);
      issuers.push(Object.freeze({ kind: "key" as const, key: new Secret(issuer.key), ...common }));
      return;
    }
    const o = issuer.oidc;
    if (oidcIssuers.has(o.issuer))
      problems.add(`${path}.oidc.issuer`, "another OIDC issuer has the same issuer URL");
    oidcIssuers.add(o.issuer);
    const rules = claimRules(issuer, common, path, problems);
    issuers.push(
      Object.freeze({
        kind: "oidc" as const,
        ...common,
        issuer: o.issuer,
        audience: o.audience,
        jwksUri: o.jwks_uri,
        algorithms: o.algorithms ?? [...ASYMMETRIC_ALGORITHMS],
        clockSkewSeconds: o.clock_skew,
        maxTokenAgeSeconds: o.max_token_age,
        jwksCooldownMs: o.jwks_cooldown * 1000,
        jwksMaxFetchesPerMinute: o.jwks_max_fetches_per_minute,
        jwksCacheMs: o.jwks_cache * 1000,
        agentClaim: issuer.agent_claim,
        onBehalfOfClaim: issuer.on_behalf_of_claim,
        rules,
      }),
    );
  });
  return issuers;
};

type ParsedIssuer = NonNullable<ReturnType<typeof parseIssuer>>;

/** An issuer's lifetimes (seconds in the file, ms resolved), each within the global limits. */
const issuerLimits = (
  issuer: ParsedIssuer,
  limits: ConfigFile["limits"],
  path: string,
  problems: Problems,
) => {
  const maxTtl = issuer.max_ttl ?? limits.max_ttl;
  const maxLifetime = issuer.max_lifetime ?? limits.max_lifetime;
  const defaultTtl = issuer.default_ttl ?? Math.min(limits.default_ttl, maxTtl);
  if (maxTtl > limits.max_ttl)
    problems.add(`${path}.max_ttl`, `${maxTtl} is above limits.max_ttl (${limits.max_ttl})`);
  if (maxLifetime > limits.max_lifetime) {
    problems.add(
      `${path}.max_lifetime`,
      `${maxLifetime} is above limits.max_lifetime (${limits.max_lifetime})`,
    );
  }
  if (defaultTtl > maxTtl)
    problems.add(`${path}.default_ttl`, `${defaultTtl} is above the issuer's max_ttl (${maxTtl})`);
  const common = {
    name: issuer.name,
    maxBudget: issuer.max_budget ? budgetLimits(issuer.max_budget) : undefined,
    requireDpop: issuer.require_dpop ?? false,
    requireActor: issuer.require_actor ?? false,
    scopes: new Set(issuer.scopes),
    defaultTtl: defaultTtl * 1000,
    maxTtl: maxTtl * 1000,
    maxLifetime: maxLifetime * 1000,
  };
  return common;
};

/** An OIDC issuer's claims rules, each within the issuer's scopes and lifetimes. */
const claimRules = (
  issuer: z.infer<typeof OidcIssuer>,
  common: { readonly maxTtl: number; readonly maxLifetime: number },
  path: string,
  problems: Problems,
) => {
  const maxTtl = common.maxTtl / 1000;
  const maxLifetime = common.maxLifetime / 1000;
  return (issuer.rules ?? []).map((rule, r) => {
    const rulePath = `${path}.rules[${r}]`;
    (rule.scopes ?? []).forEach((scope, j) => {
      if (!issuer.scopes.includes(scope)) {
        problems.add(`${rulePath}.scopes[${j}]`, `${scope} is not among the issuer's scopes`);
      }
    });
    if ((rule.max_ttl ?? 0) > maxTtl)
      problems.add(`${rulePath}.max_ttl`, `above the issuer's max_ttl (${maxTtl})`);
    if ((rule.max_lifetime ?? 0) > maxLifetime) {
      problems.add(`${rulePath}.max_lifetime`, `above the issuer's max_lifetime (${maxLifetime})`);
    }
    return Object.freeze({
      claims: Object.entries(rule.claims).map(
        ([claim, pattern]) =>
          [claim, (Array.isArray(pattern) ? pattern : [pattern]).map(compileGlob)] as const,
      ),
      description: `rules[${r}] ${JSON.stringify(rule.claims)}`,
      scopes: new Set(rule.scopes ?? issuer.scopes),
      maxTtl: (rule.max_ttl ?? maxTtl) * 1000,
      maxLifetime: (rule.max_lifetime ?? maxLifetime) * 1000,
    });
  });
};

/** `admins:` → names and keys. */
export const resolveAdmins = (
  admins: ConfigFile["admins"],
  ids: Identities,
  problems: Problems,
): AdminConfig[] => {
  const names = ids.names;
  return admins.map((admin, i) => {
    const path = `admins[${i}]`;
    if (names.has(admin.name)) problems.add(`${path}.name`, `duplicate name ${admin.name}`);
    names.add(admin.name);
    ids.claimKey(admin.key, `admin ${admin.name}`, `${path}.key`);
    return Object.freeze({ name: admin.name, key: new Secret(admin.key) });
  });
};
