import { readFileSync } from "node:fs";
import { dirname, resolve as resolvePath } from "node:path";
import { parseDocument } from "yaml";
import {
  type InterpolationContext,
  type InterpolationProblem,
  interpolate,
  type Rereadable,
  rereadable,
} from "./interpolate.js";
import { ConfigError, Problems } from "./problems.js";
import { ConfigFile } from "./schema.js";
import { Secret } from "./secret.js";
import { Identities, parseIssuer, resolveAdmins, resolveIssuers } from "./sections/issuers.js";
import { resolvePrices } from "./sections/prices.js";
import { resolveScopes } from "./sections/scopes.js";
import { resolveStore, waitReplicasOf } from "./sections/store.js";
import { resolveUpstreams } from "./sections/upstreams.js";
import type { BrokerConfig } from "./types.js";

export { ConfigError, type ConfigProblem } from "./problems.js";

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
  const problems = new Problems();
  problems.list.push(...interpolationProblems);
  if (!parsed.success) {
    // A value emptied by a failed interpolation fails the schema too: report only the cause.
    const failed = new Set(interpolationProblems.map((p) => p.path));
    problems.addIssues(parsed.error.issues, "", failed);
    // Issuers are parsed one by one (see sections/issuers.ts): report theirs now too, so one run
    // shows everything.
    const rawIssuers = (interpolated as { issuers?: unknown }).issuers;
    if (Array.isArray(rawIssuers)) {
      for (const [i, entry] of rawIssuers.entries()) parseIssuer(entry, `issuers[${i}]`, problems, failed);
    }
    throw new ConfigError(source, problems.list);
  }
  if (!problems.empty) throw new ConfigError(source, problems.list);
  const ctx = { env: options.env ?? process.env, baseDir: options.baseDir ?? process.cwd() };
  const config = resolveConfig(parsed.data, ctx.baseDir, problems, authSources(raw, ctx));
  if (!problems.empty) throw new ConfigError(source, problems.list);
  return config;
};

/** The parsed file → the runtime config, section by section, with every problem collected. */
/** Upstream auth values written with `${file:…}`: kept as templates, re-read on rotation. */
const authSources = (raw: unknown, ctx: InterpolationContext): Map<string, Rereadable> => {
  const sources = new Map<string, Rereadable>();
  const upstreams = (raw as { upstreams?: Record<string, { auth?: { value?: unknown } }> }).upstreams ?? {};
  for (const [name, u] of Object.entries(upstreams)) {
    const source = rereadable(u?.auth?.value, ctx);
    if (source) sources.set(name, source);
  }
  return sources;
};

const resolveConfig = (
  file: ConfigFile,
  baseDir: string,
  problems: Problems,
  sources: ReadonlyMap<string, Rereadable>,
): BrokerConfig => {
  const { limits } = file;
  if (limits.default_ttl > limits.max_ttl) {
    problems.add("limits.default_ttl", `${limits.default_ttl} is above limits.max_ttl (${limits.max_ttl})`);
  }
  if (limits.max_ttl > limits.max_lifetime) {
    problems.add("limits.max_ttl", `${limits.max_ttl} is above limits.max_lifetime (${limits.max_lifetime})`);
  }
  const upstreams = resolveUpstreams(file.upstreams, problems, sources);
  const { scopes, scopesByUpstream } = resolveScopes(file.scopes, upstreams, problems);
  const ids = new Identities(problems);
  const issuers = resolveIssuers(file.issuers, { limits, scopes }, ids, problems);
  const admins = resolveAdmins(file.admins, ids, problems);
  const redis = resolveStore(file, problems);
  const prices = resolvePrices(file.prices, upstreams, problems);
  return deepFreeze({
    listen: {
      host: file.listen.host,
      port: file.listen.port,
      headersTimeoutMs: Math.min(file.listen.headers_timeout, file.listen.request_timeout) * 1000,
      requestTimeoutMs: file.listen.request_timeout * 1000,
    },
    secret: file.secret ? new Secret(file.secret) : undefined,
    store: {
      redis,
      prefix: file.store.prefix,
      commandTimeoutMs: file.store.command_timeout * 1000,
      connectTimeoutMs: file.store.connect_timeout * 1000,
      nodeLeaseMs: file.store.node_lease * 1000,
      nodeLocal: file.store.node_local,
      waitReplicas: waitReplicasOf(file),
      waitTimeoutMs: file.store.wait_timeout * 1000,
    },
    limits: {
      defaultTtl: limits.default_ttl * 1000,
      maxTtl: limits.max_ttl * 1000,
      maxLifetime: limits.max_lifetime * 1000,
      maxDepth: limits.max_depth,
      maxChildren: limits.max_children,
    },
    proxy: {
      maxBodyBytes: file.proxy.max_body_bytes,
      bufferBytes: file.proxy.buffer_bytes,
      bodyIdleMs: file.proxy.body_idle_timeout * 1000,
    },
    upstreams,
    scopes,
    scopesByUpstream,
    issuers,
    admins,
    prices,
    budgets: { leaseMs: file.budgets.lease * 1000 },
    publicUrl: file.public_url?.replace(/\/+$/, ""),
    dpop: { skewMs: file.dpop.skew * 1000 },
    audit: {
      streamMaxLen: file.audit.stream_max_len,
      file: file.audit.file ? resolvePath(baseDir, file.audit.file) : undefined,
      buffer: file.audit.buffer,
      anonymousPerSecond: file.audit.anonymous_per_second,
    },
    traces: file.telemetry.traces
      ? {
          endpoint: file.telemetry.traces.endpoint,
          headers: new Map(Object.entries(file.telemetry.traces.headers).map(([k, v]) => [k, new Secret(v)])),
          sampleRatio: file.telemetry.traces.sample_ratio,
          serviceName: file.telemetry.traces.service_name,
        }
      : undefined,
    log: { level: file.log.level },
  });
};

const refuseChange = () => {
  throw new TypeError("the broker config is frozen");
};

/**
 * Freezes the config all the way down, Maps and Sets included (their mutators throw): parsed once,
 * checked completely, then nothing changes it. Secrets and compiled patterns are left as they are.
 */
const deepFreeze = <T>(value: T): T => {
  if (value === null || typeof value !== "object") return value;
  if (value instanceof Secret || value instanceof RegExp) return value;
  if (value instanceof Map) {
    for (const [k, v] of value) {
      deepFreeze(k);
      deepFreeze(v);
    }
    for (const name of ["set", "delete", "clear"])
      Object.defineProperty(value, name, { value: refuseChange });
  } else if (value instanceof Set) {
    for (const v of value) deepFreeze(v);
    for (const name of ["add", "delete", "clear"])
      Object.defineProperty(value, name, { value: refuseChange });
  } else {
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return Object.freeze(value);
};
