import { readFileSync } from "node:fs";
import { dirname, resolve as resolvePath } from "node:path";
import { parseDocument } from "yaml";
import type { z } from "zod";
import { hasConstraints } from "../policy/constraints.js";
import { REROUTING_HEADERS } from "../policy/headers.js";
import { compileEndpointPattern, compileGlob } from "../policy/pattern.js";
import { parseRateLimit } from "../policy/rate.js";
import { type InterpolationProblem, interpolate } from "./interpolate.js";
import { ASYMMETRIC_ALGORITHMS, ConfigFile, KeyIssuer, OidcIssuer } from "./schema.js";
import { Secret } from "./secret.js";
import type { BrokerConfig, IssuerConfig, RedisTarget, ScopeConfig, UpstreamConfig } from "./types.js";

export interface ConfigProblem {
  /** Dotted path into the file (`scopes.llm:complete.upstream`), or "" for the file itself. */
  readonly path: string;
  readonly message: string;
}

/** Thrown when a config cannot be used; carries every problem found, not just the first. */
export class ConfigError extends Error {
  readonly problems: readonly ConfigProblem[];

  constructor(source: string, problems: readonly ConfigProblem[]) {
    super(
      `${source}: ${problems.length} problem${problems.length === 1 ? "" : "s"}\n${problems
        .map((p) => `  - ${p.path ? `${p.path}: ` : ""}${p.message}`)
        .join("\n")}`,
    );
    this.name = "ConfigError";
    this.problems = problems;
  }
}

export interface LoadOptions {
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Name shown in error messages. */
  readonly source?: string;
  /** Directory `${file:…}` paths resolve against. */
  readonly baseDir?: string;
}

export const loadConfigFile = (
  file: string,
  options: Omit<LoadOptions, "source" | "baseDir"> = {},
): BrokerConfig => {
  const full = resolvePath(file);
  let text: string;
  try {
    text = readFileSync(full, "utf8");
  } catch (error) {
    throw new ConfigError(file, [
      { path: "", message: `cannot read (${(error as NodeJS.ErrnoException).code ?? "error"})` },
    ]);
  }
  return parseConfig(text, { ...options, source: file, baseDir: dirname(full) });
};

/** YAML text → validated, frozen runtime config, or a ConfigError listing every problem. */
export const parseConfig = (text: string, options: LoadOptions = {}): BrokerConfig => {
  const source = options.source ?? "config";
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    // The first line of a YAML error names the problem and position; the rest quotes the
    // source, which may hold a literal secret, so it is left out.
    throw new ConfigError(
      source,
      doc.errors.map((e) => ({ path: "", message: `YAML: ${e.message.split("\n")[0]}` })),
    );
  }
  const raw: unknown = doc.toJS();
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError(source, [{ path: "", message: "the file must hold a YAML mapping" }]);
  }
  return validateConfig(raw, options);
};

/** A parsed document (object form) → runtime config. Used by `perishable dev` too. */
export const validateConfig = (raw: unknown, options: LoadOptions = {}): BrokerConfig => {
  const source = options.source ?? "config";
  const interpolationProblems: InterpolationProblem[] = [];
  const interpolated = interpolate(
    raw,
    { env: options.env ?? process.env, baseDir: options.baseDir ?? process.cwd() },
    interpolationProblems,
  );
  const parsed = ConfigFile.safeParse(interpolated);
  // A value emptied by a failed interpolation fails the schema too: report only the cause.
  const failed = new Set(interpolationProblems.map((p) => p.path));
  const problems: ConfigProblem[] = [...interpolationProblems];
  if (!parsed.success) {
    problems.push(
      ...parsed.error.issues.map((issue) => issueToProblem(issue)).filter((p) => !failed.has(p.path)),
    );
    // Issuers are checked on their own once the file parses; report theirs now too, so one run shows everything.
    const rawIssuers = (interpolated as { issuers?: unknown }).issuers;
    if (Array.isArray(rawIssuers)) {
      rawIssuers.forEach((raw, i) => {
        if (raw === null || typeof raw !== "object") return;
        const result = ("oidc" in raw ? OidcIssuer : KeyIssuer).safeParse(raw);
        if (!result.success)
          problems.push(
            ...result.error.issues
              .map((issue) => issueToProblem(issue, `issuers[${i}]`))
              .filter((p) => !failed.has(p.path)),
          );
      });
    }
  }
  if (problems.length > 0 || !parsed.success) throw new ConfigError(source, problems);
  const config = resolveConfig(parsed.data, options.baseDir ?? process.cwd(), problems);
  if (!config || problems.length > 0) throw new ConfigError(source, problems);
  return config;
};

/** `issuers[0].key`: the same form the interpolation and cross-checks use. */
const formatPath = (path: readonly PropertyKey[]): string =>
  path.reduce<string>(
    (out, part) =>
      typeof part === "number" ? `${out}[${part}]` : out ? `${out}.${String(part)}` : String(part),
    "",
  );

const issueToProblem = (issue: z.core.$ZodIssue, under = ""): ConfigProblem => {
  const inner = formatPath(issue.path);
  const path =
    under && inner ? (inner.startsWith("[") ? `${under}${inner}` : `${under}.${inner}`) : under || inner;
  if (issue.code === "unrecognized_keys") {
    return { path, message: `unknown key${issue.keys.length > 1 ? "s" : ""}: ${issue.keys.join(", ")}` };
  }
  if (issue.code === "invalid_type" && issue.input === undefined) return { path, message: "is required" };
  return { path, message: issue.message };
};

const resolveConfig = (
  file: ConfigFile,
  baseDir: string,
  problems: ConfigProblem[],
): BrokerConfig | undefined => {
  const { limits } = file;
  if (limits.default_ttl > limits.max_ttl) {
    problems.push({
      path: "limits.default_ttl",
      message: `${limits.default_ttl} is above limits.max_ttl (${limits.max_ttl})`,
    });
  }
  if (limits.max_ttl > limits.max_lifetime) {
    problems.push({
      path: "limits.max_ttl",
      message: `${limits.max_ttl} is above limits.max_lifetime (${limits.max_lifetime})`,
    });
  }

  const upstreams = new Map<string, UpstreamConfig>();
  for (const [name, u] of Object.entries(file.upstreams)) {
    const url = new URL(u.base_url);
    if (url.search || url.hash || url.username || url.password) {
      problems.push({
        path: `upstreams.${name}.base_url`,
        message: "must not carry a query, fragment or credentials",
      });
    }
    u.forward_headers.forEach((header, i) => {
      if (!REROUTING_HEADERS.has(header)) {
        problems.push({
          path: `upstreams.${name}.forward_headers[${i}]`,
          message: `${header} is not a re-routing or account header the broker drops (it is forwarded or never is)`,
        });
      }
    });
    upstreams.set(
      name,
      Object.freeze({
        name,
        origin: url.origin,
        basePath: url.pathname.replace(/\/+$/, ""),
        auth: u.auth ? Object.freeze({ header: u.auth.header, value: new Secret(u.auth.value) }) : undefined,
        headers: Object.freeze(Object.entries(u.headers).map(([k, v]) => Object.freeze([k, v] as const))),
        forwardHeaders: new Set(u.forward_headers),
        reservedHeaders: new Set([...Object.keys(u.headers), ...(u.auth ? [u.auth.header] : [])]),
        timeouts: Object.freeze({
          connectMs: u.timeout.connect * 1000,
          headersMs: u.timeout.headers * 1000,
          bodyMs: u.timeout.body * 1000,
        }),
        connections: u.connections,
      }),
    );
  }

  const scopes = new Map<string, ScopeConfig>();
  const scopesByUpstream = new Map<string, ScopeConfig[]>();
  for (const [name, s] of Object.entries(file.scopes)) {
    const path = `scopes.${name}`;
    if (!upstreams.has(s.upstream)) {
      problems.push({
        path: `${path}.upstream`,
        message: `no upstream named ${s.upstream} (have: ${[...upstreams.keys()].join(", ")})`,
      });
    }
    const matchers: RegExp[] = [];
    s.endpoints.forEach((pattern, i) => {
      try {
        matchers.push(compileEndpointPattern(pattern));
      } catch (error) {
        problems.push({ path: `${path}.endpoints[${i}]`, message: (error as Error).message });
      }
    });
    const constraints = Object.freeze({
      models: s.models ? Object.freeze(s.models.map(compileGlob)) : undefined,
      modelGlobs: s.models ? Object.freeze([...s.models]) : undefined,
      maxTokens: s.max_tokens,
      maxChoices: s.max_choices,
    });
    if (s.max_choices !== undefined && s.max_tokens === undefined) {
      problems.push({
        path: `${path}.max_choices`,
        message: "bounds choices against max_tokens: set max_tokens too",
      });
    }
    const scope: ScopeConfig = Object.freeze({
      name,
      upstream: s.upstream,
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

  const names = new Set<string>();
  const keys = new Map<string, string>();
  const claimKey = (key: string, owner: string, path: string) => {
    const other = keys.get(key);
    if (other)
      problems.push({ path, message: `the same key is already used by ${other}; every key must be unique` });
    keys.set(key, owner);
  };
  const issuers: IssuerConfig[] = [];
  const oidcIssuers = new Set<string>();
  file.issuers.forEach((raw, i) => {
    const path = `issuers[${i}]`;
    const isOidc = "oidc" in raw;
    const parsed = (isOidc ? OidcIssuer : KeyIssuer).safeParse(raw);
    if (!parsed.success) {
      problems.push(...parsed.error.issues.map((issue) => issueToProblem(issue, path)));
      return;
    }
    const issuer = parsed.data;
    if (names.has(issuer.name))
      problems.push({ path: `${path}.name`, message: `duplicate name ${issuer.name}` });
    names.add(issuer.name);
    issuer.scopes.forEach((scope, j) => {
      if (!scopes.has(scope))
        problems.push({ path: `${path}.scopes[${j}]`, message: `no scope named ${scope}` });
    });
    const maxTtl = issuer.max_ttl ?? limits.max_ttl;
    const maxLifetime = issuer.max_lifetime ?? limits.max_lifetime;
    const defaultTtl = issuer.default_ttl ?? Math.min(limits.default_ttl, maxTtl);
    if (maxTtl > limits.max_ttl)
      problems.push({
        path: `${path}.max_ttl`,
        message: `${maxTtl} is above limits.max_ttl (${limits.max_ttl})`,
      });
    if (maxLifetime > limits.max_lifetime) {
      problems.push({
        path: `${path}.max_lifetime`,
        message: `${maxLifetime} is above limits.max_lifetime (${limits.max_lifetime})`,
      });
    }
    if (defaultTtl > maxTtl)
      problems.push({
        path: `${path}.default_ttl`,
        message: `${defaultTtl} is above the issuer's max_ttl (${maxTtl})`,
      });
    const common = {
      name: issuer.name,
      scopes: new Set(issuer.scopes),
      defaultTtl: defaultTtl * 1000,
      maxTtl: maxTtl * 1000,
      maxLifetime: maxLifetime * 1000,
    };
    if (!("oidc" in issuer)) {
      claimKey(issuer.key, `issuer ${issuer.name}`, `${path}.key`);
      issuers.push(Object.freeze({ kind: "key" as const, key: new Secret(issuer.key), ...common }));
      return;
    }
    const o = issuer.oidc;
    if (oidcIssuers.has(o.issuer))
      problems.push({ path: `${path}.oidc.issuer`, message: "another OIDC issuer has the same issuer URL" });
    oidcIssuers.add(o.issuer);
    const rules = (issuer.rules ?? []).map((rule, r) => {
      const rulePath = `${path}.rules[${r}]`;
      (rule.scopes ?? []).forEach((scope, j) => {
        if (!issuer.scopes.includes(scope)) {
          problems.push({
            path: `${rulePath}.scopes[${j}]`,
            message: `${scope} is not among the issuer's scopes`,
          });
        }
      });
      if ((rule.max_ttl ?? 0) > maxTtl)
        problems.push({ path: `${rulePath}.max_ttl`, message: `above the issuer's max_ttl (${maxTtl})` });
      if ((rule.max_lifetime ?? 0) > maxLifetime) {
        problems.push({
          path: `${rulePath}.max_lifetime`,
          message: `above the issuer's max_lifetime (${maxLifetime})`,
        });
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
        rules,
      }),
    );
  });
  const admins = file.admins.map((admin, i) => {
    const path = `admins[${i}]`;
    if (names.has(admin.name))
      problems.push({ path: `${path}.name`, message: `duplicate name ${admin.name}` });
    names.add(admin.name);
    claimKey(admin.key, `admin ${admin.name}`, `${path}.key`);
    return Object.freeze({ name: admin.name, key: new Secret(admin.key) });
  });

  const { redis, cluster, sentinel } = file.store;
  if ([redis, cluster, sentinel].filter((v) => v !== undefined).length > 1) {
    problems.push({ path: "store", message: "set one of redis, cluster, sentinel" });
  }
  const target: RedisTarget | undefined = redis
    ? { kind: "single", url: new Secret(redis) }
    : cluster
      ? { kind: "cluster", urls: cluster.map((u) => new Secret(u)) }
      : sentinel
        ? {
            kind: "sentinel",
            nodes: sentinel.nodes.map((u) => new Secret(u)),
            name: sentinel.name,
            password: sentinel.password ? new Secret(sentinel.password) : undefined,
          }
        : undefined;
  if (target && !file.secret) {
    problems.push({
      path: "secret",
      message:
        "is required with a Redis store (every broker node must hash tokens with the same secret): secret: ${PERISHABLE_SECRET}",
    });
  }
  if (problems.length > 0) return undefined;

  return Object.freeze({
    listen: Object.freeze({
      host: file.listen.host,
      port: file.listen.port,
      headersTimeoutMs: Math.min(file.listen.headers_timeout, file.listen.request_timeout) * 1000,
      requestTimeoutMs: file.listen.request_timeout * 1000,
    }),
    secret: file.secret ? new Secret(file.secret) : undefined,
    store: Object.freeze({
      redis: target,
      prefix: file.store.prefix,
    }),
    limits: Object.freeze({
      defaultTtl: limits.default_ttl * 1000,
      maxTtl: limits.max_ttl * 1000,
      maxLifetime: limits.max_lifetime * 1000,
      maxDepth: limits.max_depth,
      maxChildren: limits.max_children,
    }),
    proxy: Object.freeze({
      maxBodyBytes: file.proxy.max_body_bytes,
      bufferBytes: file.proxy.buffer_bytes,
      bodyIdleMs: file.proxy.body_idle_timeout * 1000,
    }),
    upstreams,
    scopes,
    scopesByUpstream: new Map([...scopesByUpstream].map(([k, v]) => [k, Object.freeze(v)])),
    issuers: Object.freeze(issuers),
    admins: Object.freeze(admins),
    audit: Object.freeze({
      streamMaxLen: file.audit.stream_max_len,
      file: file.audit.file ? resolvePath(baseDir, file.audit.file) : undefined,
      buffer: file.audit.buffer,
      anonymousPerSecond: file.audit.anonymous_per_second,
    }),
    log: Object.freeze({ level: file.log.level }),
  });
};
