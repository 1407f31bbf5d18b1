import { readFileSync } from "node:fs";
import { dirname, resolve as resolvePath } from "node:path";
import { parseDocument } from "yaml";
import type { z } from "zod";
import { hasConstraints } from "../policy/constraints.js";
import { compileEndpointPattern, compileGlob } from "../policy/pattern.js";
import { parseRateLimit } from "../policy/rate.js";
import { type InterpolationProblem, interpolate } from "./interpolate.js";
import { ConfigFile } from "./schema.js";
import { Secret } from "./secret.js";
import type { BrokerConfig, IssuerConfig, ScopeConfig, UpstreamConfig } from "./types.js";

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
  if (!parsed.success)
    problems.push(...parsed.error.issues.map(issueToProblem).filter((p) => !failed.has(p.path)));
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

const issueToProblem = (issue: z.core.$ZodIssue): ConfigProblem => {
  const path = formatPath(issue.path);
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
    upstreams.set(
      name,
      Object.freeze({
        name,
        origin: url.origin,
        basePath: url.pathname.replace(/\/+$/, ""),
        auth: u.auth ? Object.freeze({ header: u.auth.header, value: new Secret(u.auth.value) }) : undefined,
        headers: Object.freeze(Object.entries(u.headers).map(([k, v]) => Object.freeze([k, v] as const))),
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
    });
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
  const issuers: IssuerConfig[] = file.issuers.map((issuer, i) => {
    const path = `issuers[${i}]`;
    if (names.has(issuer.name))
      problems.push({ path: `${path}.name`, message: `duplicate name ${issuer.name}` });
    names.add(issuer.name);
    claimKey(issuer.key, `issuer ${issuer.name}`, `${path}.key`);
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
    return Object.freeze({
      kind: "key" as const,
      name: issuer.name,
      key: new Secret(issuer.key),
      scopes: new Set(issuer.scopes),
      defaultTtl: defaultTtl * 1000,
      maxTtl: maxTtl * 1000,
      maxLifetime: maxLifetime * 1000,
    });
  });
  const admins = file.admins.map((admin, i) => {
    const path = `admins[${i}]`;
    if (names.has(admin.name))
      problems.push({ path: `${path}.name`, message: `duplicate name ${admin.name}` });
    names.add(admin.name);
    claimKey(admin.key, `admin ${admin.name}`, `${path}.key`);
    return Object.freeze({ name: admin.name, key: new Secret(admin.key) });
  });

  if (file.store.redis && !file.secret) {
    problems.push({
      path: "secret",
      message:
        "is required with a Redis store (every broker node must hash tokens with the same secret): secret: ${PERISHABLE_SECRET}",
    });
  }
  if (problems.length > 0) return undefined;

  return Object.freeze({
    listen: Object.freeze({ ...file.listen }),
    secret: file.secret ? new Secret(file.secret) : undefined,
    store: Object.freeze({
      redis: file.store.redis ? new Secret(file.store.redis) : undefined,
      prefix: file.store.prefix,
    }),
    limits: Object.freeze({
      defaultTtl: limits.default_ttl * 1000,
      maxTtl: limits.max_ttl * 1000,
      maxLifetime: limits.max_lifetime * 1000,
      maxDepth: limits.max_depth,
    }),
    proxy: Object.freeze({ maxBodyBytes: file.proxy.max_body_bytes }),
    upstreams,
    scopes,
    scopesByUpstream: new Map([...scopesByUpstream].map(([k, v]) => [k, Object.freeze(v)])),
    issuers: Object.freeze(issuers),
    admins: Object.freeze(admins),
    audit: Object.freeze({
      streamMaxLen: file.audit.stream_max_len,
      file: file.audit.file ? resolvePath(baseDir, file.audit.file) : undefined,
      buffer: file.audit.buffer,
    }),
    log: Object.freeze({ level: file.log.level }),
  });
};
