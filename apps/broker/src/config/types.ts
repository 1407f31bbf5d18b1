import type { BodyConstraints } from "../policy/constraints.js";
import type { RateLimit } from "../policy/rate.js";
import type { Secret } from "./secret.js";

/** The runtime config: parsed once, checked completely, frozen. Durations are milliseconds here. */
export interface BrokerConfig {
  readonly listen: { readonly host: string; readonly port: number };
  /** Keyed-hash secret for token storage; generated per process for the memory store if unset. */
  readonly secret: Secret | undefined;
  readonly store: { readonly redis: Secret | undefined; readonly prefix: string };
  readonly limits: {
    readonly defaultTtl: number;
    readonly maxTtl: number;
    readonly maxLifetime: number;
    readonly maxDepth: number;
  };
  readonly proxy: { readonly maxBodyBytes: number };
  readonly upstreams: ReadonlyMap<string, UpstreamConfig>;
  readonly scopes: ReadonlyMap<string, ScopeConfig>;
  /** Scopes grouped by upstream, in config order: the proxy's first lookup. */
  readonly scopesByUpstream: ReadonlyMap<string, readonly ScopeConfig[]>;
  readonly issuers: readonly IssuerConfig[];
  readonly admins: readonly AdminConfig[];
  readonly audit: {
    readonly streamMaxLen: number;
    readonly file: string | undefined;
    readonly buffer: number;
  };
  readonly log: { readonly level: "fatal" | "error" | "warn" | "info" | "debug" | "silent" };
}

export interface UpstreamConfig {
  readonly name: string;
  /** `https://api.openai.com` */
  readonly origin: string;
  /** Path prefix of base_url without a trailing slash (`""` for none). */
  readonly basePath: string;
  readonly auth: { readonly header: string; readonly value: Secret } | undefined;
  /** Extra headers set on every forwarded request (lower-cased names). */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** Names the broker sets (auth + configured headers): a client's header of that name is dropped. */
  readonly reservedHeaders: ReadonlySet<string>;
  readonly timeouts: { readonly connectMs: number; readonly headersMs: number; readonly bodyMs: number };
  readonly connections: number;
}

export interface ScopeConfig {
  readonly name: string;
  readonly upstream: string;
  readonly endpoints: readonly string[];
  readonly matchers: readonly RegExp[];
  readonly methods: ReadonlySet<string>;
  readonly rate: RateLimit | undefined;
  readonly constraints: BodyConstraints;
  readonly hasConstraints: boolean;
}

export interface IssuerConfig {
  readonly kind: "key";
  readonly name: string;
  readonly key: Secret;
  /** The most this issuer may grant. */
  readonly scopes: ReadonlySet<string>;
  readonly defaultTtl: number;
  readonly maxTtl: number;
  readonly maxLifetime: number;
}

export interface AdminConfig {
  readonly name: string;
  readonly key: Secret;
}
