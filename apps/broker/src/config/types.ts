import type { BodyConstraints } from "../policy/constraints.js";
import type { McpConstraints } from "../policy/mcp.js";
import type { BudgetLimits, Price } from "../policy/pricing.js";
import type { RateLimit } from "../policy/rate.js";
import type { Rereadable } from "./interpolate.js";
import type { Secret } from "./secret.js";

/** The runtime config: parsed once, checked completely, frozen. Durations are milliseconds here. */
export interface BrokerConfig {
  readonly listen: {
    readonly host: string;
    readonly port: number;
    readonly headersTimeoutMs: number;
    readonly requestTimeoutMs: number;
  };
  /** Keyed-hash secret for token storage; generated per process for the memory store if unset. */
  readonly secret: Secret | undefined;
  /** Where grants live: nothing (the in-memory store), one Redis, a Cluster, or Sentinel. URLs may hold passwords. */
  readonly store: {
    readonly redis: RedisTarget | undefined;
    readonly prefix: string;
    readonly commandTimeoutMs: number;
    readonly connectTimeoutMs: number;
    readonly nodeLeaseMs: number;
    readonly nodeLocal: boolean;
    /** Replicas a revocation must reach (WAIT) before its call answers; 0: none. */
    readonly waitReplicas: number;
    readonly waitTimeoutMs: number;
  };
  readonly limits: {
    readonly defaultTtl: number;
    readonly maxTtl: number;
    readonly maxLifetime: number;
    readonly maxDepth: number;
    readonly maxChildren: number;
  };
  readonly proxy: {
    readonly maxBodyBytes: number;
    readonly bufferBytes: number;
    readonly bodyIdleMs: number;
  };
  readonly upstreams: ReadonlyMap<string, UpstreamConfig>;
  readonly scopes: ReadonlyMap<string, ScopeConfig>;
  /** Scopes grouped by upstream, in config order: the proxy's first lookup. */
  readonly scopesByUpstream: ReadonlyMap<string, readonly ScopeConfig[]>;
  readonly issuers: readonly IssuerConfig[];
  readonly admins: readonly AdminConfig[];
  /** Prices by upstream name, in file order (first match wins). */
  readonly prices: ReadonlyMap<string, readonly Price[]>;
  readonly budgets: { readonly leaseMs: number };
  /** The broker's URL as clients call it, without a trailing slash (DPoP `htu`); undefined: the request's own. */
  readonly publicUrl: string | undefined;
  readonly dpop: { readonly skewMs: number };
  readonly audit: {
    readonly streamMaxLen: number;
    readonly file: string | undefined;
    readonly buffer: number;
    readonly anonymousPerSecond: number;
  };
  /** OpenTelemetry traces (undefined: off). Header values may hold a collector's key. */
  readonly traces:
    | {
        readonly endpoint: string;
        readonly headers: ReadonlyMap<string, Secret>;
        readonly sampleRatio: number;
        readonly serviceName: string;
      }
    | undefined;
  readonly log: { readonly level: "fatal" | "error" | "warn" | "info" | "debug" | "silent" };
}

export type RedisTarget =
  | { readonly kind: "single"; readonly url: Secret }
  | { readonly kind: "cluster"; readonly urls: readonly Secret[] }
  | {
      readonly kind: "sentinel";
      readonly nodes: readonly Secret[];
      readonly name: string;
      readonly password: Secret | undefined;
    };

export interface UpstreamConfig {
  readonly name: string;
  /** `mcp`: a Model Context Protocol server; its POSTs are checked message by message. */
  readonly kind: "http" | "mcp";
  /** `https://api.openai.com` */
  readonly origin: string;
  /** Path prefix of base_url without a trailing slash (`""` for none). */
  readonly basePath: string;
  readonly auth:
    | {
        readonly header: string;
        readonly value: Secret;
        /** Set when the value reads a file (`${file:…}`): re-read when it changes (key rotation). */
        readonly source: Rereadable | undefined;
      }
    | undefined;
  /** Extra headers set on every forwarded request (lower-cased names). */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** Re-routing or account headers a client may send to this upstream after all (lower-cased). */
  readonly forwardHeaders: ReadonlySet<string>;
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
  /** Allows WebSocket upgrades. */
  readonly websocket: boolean;
  /** How long a stream or answer this scope allowed may stay open (ms), when bounded. */
  readonly maxConnectionMs: number | undefined;
  /** On an MCP upstream: what its messages may do (undefined: anything). */
  readonly mcp: McpConstraints | undefined;
  /** Grants holding it must be DPoP-bound. */
  readonly requireDpop: boolean;
}

/** What every issuer (key or OIDC) may grant, in milliseconds. */
export interface IssuerLimits {
  readonly name: string;
  /** The most this issuer may grant. */
  readonly scopes: ReadonlySet<string>;
  readonly defaultTtl: number;
  readonly maxTtl: number;
  readonly maxLifetime: number;
  /** The largest budget a root grant of this issuer may hold (filled in when a request names none). */
  readonly maxBudget: BudgetLimits | undefined;
  /** Its grants must be DPoP-bound. */
  readonly requireDpop: boolean;
  /** Its grants are made only by token exchange with an actor_token. */
  readonly requireActor: boolean;
}

export interface KeyIssuerConfig extends IssuerLimits {
  readonly kind: "key";
  readonly key: Secret;
}

/** One claims rule of an OIDC issuer: when every claim matches, it may grant these scopes with these limits. */
export interface ClaimRule {
  /** Claim name → the globs one of which its value must match. */
  readonly claims: ReadonlyArray<readonly [string, readonly RegExp[]]>;
  readonly description: string;
  readonly scopes: ReadonlySet<string>;
  readonly maxTtl: number;
  readonly maxLifetime: number;
}

export interface OidcIssuerConfig extends IssuerLimits {
  readonly kind: "oidc";
  /** The `iss` its tokens carry. */
  readonly issuer: string;
  readonly audience: string | readonly string[];
  readonly jwksUri: string | undefined;
  readonly algorithms: readonly string[];
  readonly clockSkewSeconds: number;
  readonly maxTokenAgeSeconds: number | undefined;
  readonly jwksCooldownMs: number;
  readonly jwksMaxFetchesPerMinute: number;
  readonly jwksCacheMs: number;
  readonly agentClaim: string;
  /** The claim that names who the workload acts for, when configured. */
  readonly onBehalfOfClaim: string | undefined;
  /** Empty: any valid token may ask for the issuer's scopes. */
  readonly rules: readonly ClaimRule[];
}

export type IssuerConfig = KeyIssuerConfig | OidcIssuerConfig;

export interface AdminConfig {
  readonly name: string;
  readonly key: Secret;
}
