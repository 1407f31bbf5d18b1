import { MAX_BUDGET_TOKENS, MAX_BUDGET_USD, SCOPE_NAME_RE } from "@perishable/protocol";
import { z } from "zod";
import { parseRateLimit } from "../policy/rate.js";
import { DEFAULTS } from "./defaults.js";
import { StoreSection } from "./store-schema.js";

/**
 * The YAML config file, exactly as an operator writes it (snake_case). Every object is strict:
 * an unknown or misspelt key is an error, never ignored. `resolve.ts` turns the parsed file into
 * the frozen runtime config.
 */
const Seconds = z.int("a whole number of seconds").positive("must be positive");
const Name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "letters, digits, . _ - (max 64)");
const HeaderName = z
  .string()
  .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, "a valid HTTP header name")
  .transform((h) => h.toLowerCase());
const HeaderValue = z.string().refine((v) => !/[\r\n\0]/.test(v), "a header value without CR, LF or NUL");
const KeyString = z.string().min(24, "at least 24 characters (generate one with `openssl rand -base64 32`)");
export const HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;

const Upstream = z.strictObject({
  /** `mcp`: a Model Context Protocol server (Streamable HTTP); its POSTs are checked message by message. */
  kind: z.enum(["http", "mcp"]).default("http"),
  base_url: z.url({ protocol: /^https?$/, error: "an http(s) URL" }),
  auth: z
    .strictObject({ header: HeaderName, value: HeaderValue.pipe(z.string().min(1, "must not be empty")) })
    .optional(),
  headers: z.record(HeaderName, HeaderValue).prefault({}),
  /** Re-routing or account headers (OpenAI-Project, True-Client-IP, …) clients may send; dropped otherwise. */
  forward_headers: z.array(HeaderName).prefault([]),
  timeout: z
    .strictObject({ connect: Seconds.default(10), headers: Seconds.default(300), body: Seconds.default(300) })
    .prefault({}),
  connections: z.int().positive().max(10_000).default(128),
});

const Scope = z.strictObject({
  upstream: Name,
  endpoints: z.array(z.string().startsWith("/", "must start with /")).min(1, "at least one endpoint"),
  methods: z
    .array(
      z
        .string()
        .transform((m) => m.toUpperCase())
        .pipe(z.enum(HTTP_METHODS)),
    )
    .min(1, "at least one method"),
  rate_limit: z
    .string()
    .refine((r) => parseRateLimit(r) !== undefined, "a rate like 100/minute, 10/s or 5000/1h")
    .optional(),
  models: z.array(z.string().min(1)).min(1).optional(),
  max_tokens: z.int().positive().optional(),
  /** How many choices (`n`, `best_of`) may each use the whole ceiling; needs max_tokens. */
  max_choices: z.int().positive().max(128).optional(),
  /** Tools (function names, built-in tool types; globs) a body may declare or force. */
  tools: z.array(z.string().min(1).max(200)).min(1).optional(),
  /** Allows a WebSocket upgrade (method GET) to the scope's endpoints, e.g. OpenAI Realtime. */
  websocket: z.boolean().default(false),
  /** A stream or answer this scope allowed is ended after this many seconds (its grant's end comes first if sooner). */
  max_connection_seconds: z.int().positive().max(86_400).optional(),
  /** Grants holding this scope must be bound to a key (DPoP, RFC 9449): issuance without a proof is refused. */
  require_dpop: z.boolean().default(false),
  /** On an MCP upstream: the tools tools/call may call, string arguments that must match, the resources. */
  mcp: z
    .strictObject({
      tools: z.array(z.string().min(1).max(200)).min(1).optional(),
      arguments: z
        .record(z.string().min(1).max(100), z.union([z.string(), z.array(z.string()).min(1)]))
        .optional(),
      resources: z.array(z.string().min(1).max(500)).min(1).optional(),
    })
    .optional(),
});

/** USD per million tokens: finite, not negative, below any real price. */
const UsdPerMillion = z.number().min(0).max(100_000);

/** One `prices.<upstream>.<model glob>` entry. */
const Price = z.strictObject({
  input: UsdPerMillion,
  output: UsdPerMillion,
  /** Cached input tokens; default: the input price. */
  cached_input: UsdPerMillion.optional(),
  /** Anthropic cache writes; default: 1.25 × input. */
  cache_write: UsdPerMillion.optional(),
  /** Output limit filled in for a budgeted request that states none and whose scope has no max_tokens. */
  max_output: z.int().positive().max(10_000_000).optional(),
  /** The model's context window: bounds input the body's size cannot (images or files by URL, earlier responses). */
  context: z.int().positive().max(100_000_000).optional(),
});

const BudgetLimit = z
  .strictObject({
    usd: z.number().min(0).max(MAX_BUDGET_USD).optional(),
    tokens: z.int().min(0).max(MAX_BUDGET_TOKENS).optional(),
  })
  .refine((b) => b.usd !== undefined || b.tokens !== undefined, "name usd, tokens or both");

const IssuerLimits = {
  scopes: z.array(z.string()).min(1, "at least one scope"),
  /** The most one root grant of this issuer may hold; filled in for a request that names none. */
  max_budget: BudgetLimit.optional(),
  /** Every grant of this issuer must be bound to a key (DPoP): issuance without a proof is refused. */
  require_dpop: z.boolean().default(false),
  /** Its grants are made only by token exchange with an actor_token (the workload asking is recorded). */
  require_actor: z.boolean().default(false),
  default_ttl: Seconds.optional(),
  max_ttl: Seconds.optional(),
  max_lifetime: Seconds.optional(),
};

export const KeyIssuer = z.strictObject({ name: Name, key: KeyString, ...IssuerLimits });

/** Signature algorithms an OIDC issuer may use: asymmetric only, so a public key can never act as an HMAC secret. */
export const ASYMMETRIC_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519",
] as const;

/** https, or http on the loopback interface only (a local identity provider, tests). */
const IdpUrl = z.url({ protocol: /^https?$/, error: "an http(s) URL" }).refine((value) => {
  const url = new URL(value);
  return url.protocol === "https:" || ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname);
}, "must be https (http only on 127.0.0.1 / localhost)");

const ClaimPattern = z.union([z.string(), z.array(z.string()).min(1)]);

export const OidcIssuer = z.strictObject({
  name: Name,
  oidc: z.strictObject({
    issuer: IdpUrl,
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    /** Without it, the JWKS address is read from the issuer's /.well-known/openid-configuration. */
    jwks_uri: IdpUrl.optional(),
    algorithms: z
      .array(
        z.enum(ASYMMETRIC_ALGORITHMS, { error: "an asymmetric JWS algorithm (HMAC and none are refused)" }),
      )
      .min(1)
      .optional(),
    clock_skew: z.int().min(0).max(300).default(30),
    /** Refuse identity tokens issued longer ago than this (seconds; needs `iat`). */
    max_token_age: Seconds.optional(),
    /** After a fetch, an unknown key id triggers another JWKS fetch only after this many seconds. */
    jwks_cooldown: z.int().min(0).max(3600).default(1),
    /** At most this many JWKS fetches caused by unknown key ids in any minute (a flood's cost). */
    jwks_max_fetches_per_minute: z.int().min(1).max(600).default(10),
    /** Keys are fetched again after this many seconds. */
    jwks_cache: z.int().min(1).max(86_400).default(600),
  }),
  /** The claim whose value names the agent (the grant's `agent`). */
  agent_claim: z.string().min(1).default("sub"),
  /** The claim naming who the workload acts for (a user's id): the root grant's onBehalfOf. */
  on_behalf_of_claim: z.string().min(1).optional(),
  ...IssuerLimits,
  /**
   * Who may get what. Without rules, every valid token of this issuer may ask for the issuer's
   * scopes. With rules, the first rule whose claims all match (globs; a list means any of them)
   * and that covers every requested scope decides, with its own limits.
   */
  rules: z
    .array(
      z.strictObject({
        claims: z
          .record(z.string().min(1), ClaimPattern)
          .refine((c) => Object.keys(c).length > 0, "at least one claim"),
        scopes: z.array(z.string()).min(1).optional(),
        max_ttl: Seconds.optional(),
        max_lifetime: Seconds.optional(),
      }),
    )
    .min(1)
    .optional(),
});

const Admin = z.strictObject({ name: Name, key: KeyString });

export const ConfigFile = z.strictObject({
  listen: z
    .strictObject({
      host: z.string().min(1).default("127.0.0.1"),
      port: z.int().min(0).max(65535).default(DEFAULTS.port),
      /** A client must finish sending its headers within this many seconds (slow-loris protection). */
      headers_timeout: z.int().min(1).max(600).default(20),
      /** …and its whole request (headers and body) within this many. */
      request_timeout: z.int().min(1).max(3600).default(300),
    })
    .prefault({}),
  /**
   * The broker's URL as its clients call it (scheme, host, port; a path prefix if a front proxy
   * adds one): DPoP proofs' `htu` is checked against it. Default: the URL a request came to.
   */
  public_url: z.url({ protocol: /^https?$/, error: "an http(s) URL" }).optional(),
  dpop: z
    .strictObject({
      /** Seconds a proof's `iat` may be off the broker's clock, either way; its `jti` is kept twice that. */
      skew: z.int().min(1).max(600).default(60),
    })
    .prefault({}),
  /** Secret for the keyed hash tokens are stored under. Required with Redis (every node needs the same one). */
  secret: z.string().min(32, "at least 32 characters").optional(),
  store: StoreSection,
  limits: z
    .strictObject({
      default_ttl: Seconds.default(300),
      max_ttl: Seconds.default(3600),
      max_lifetime: Seconds.default(86_400),
      max_depth: z.int().min(0).max(32).default(4),
      /** Child grants one grant may create in its life: one token cannot mint authority without end. */
      max_children: z.int().min(0).max(100_000).default(100),
    })
    .prefault({}),
  proxy: z
    .strictObject({
      /** Largest request body the broker reads to check body constraints (models, max_tokens). */
      max_body_bytes: z
        .int()
        .positive()
        .default(8 * 1024 * 1024),
      /**
       * Bodies up to this size are read whole before an upstream connection is used for them;
       * longer ones once this much has come, then streamed (so a trickled body holds no connection).
       */
      buffer_bytes: z
        .int()
        .positive()
        .default(1024 * 1024),
      /** A streamed body that sends nothing for this many seconds is cut (its upstream connection freed). */
      body_idle_timeout: z.int().positive().max(3600).default(10),
    })
    .prefault({}),
  upstreams: z.record(Name, Upstream).refine((u) => Object.keys(u).length > 0, "at least one upstream"),
  scopes: z.record(z.string().regex(SCOPE_NAME_RE, "a scope name: letters, digits and . _ : / -"), Scope),
  /** Each entry is a KeyIssuer (`key:`) or an OidcIssuer (`oidc:`); checked one by one in load.ts. */
  issuers: z
    .array(
      z.record(z.string(), z.unknown(), {
        error: "an issuer: a mapping with name and key, or name and oidc",
      }),
    )
    .default([]),
  admins: z.array(Admin).default([]),
  /** USD per million tokens, by upstream and model glob (first match wins, in file order). */
  prices: z.record(Name, z.record(z.string().min(1).max(200), Price)).default({}),
  budgets: z
    .strictObject({
      /**
       * Seconds a request's reservation and concurrency slot live unless its node renews them (it
       * does while the request is open): what a node that dies can hold, at most.
       */
      lease: z
        .int()
        .min(2)
        .max(3600)
        .default(DEFAULTS.budgets.leaseMs / 1000),
    })
    .prefault({}),
  audit: z
    .strictObject({
      stream_max_len: z.int().positive().default(1_000_000),
      file: z.string().min(1).optional(),
      /** Events held in memory while the store is slow; past this they are counted as dropped. */
      buffer: z.int().positive().default(100_000),
      /** Refusals of unknown callers written per second and node; the rest only counted (a metric). */
      anonymous_per_second: z.int().min(0).max(100_000).default(20),
    })
    .prefault({}),
  /** OpenTelemetry traces over OTLP/HTTP; off unless `traces` is set. */
  telemetry: z
    .strictObject({
      traces: z
        .strictObject({
          /** The collector's OTLP/HTTP traces URL, e.g. http://otel-collector:4318/v1/traces. */
          endpoint: z.url({ protocol: /^https?$/, error: "an http(s) URL" }),
          /** Headers for the collector (an API key: use ${VAR}); never logged. */
          headers: z.record(z.string().min(1).max(100), z.string()).default({}),
          /** Share of new traces recorded (a caller's sampled traceparent is always followed). */
          sample_ratio: z.number().min(0).max(1).default(1),
          service_name: z.string().min(1).max(100).default("perishable"),
        })
        .optional(),
    })
    .prefault({}),
  log: z
    .strictObject({ level: z.enum(["fatal", "error", "warn", "info", "debug", "silent"]).default("info") })
    .prefault({}),
});
export type ConfigFile = z.infer<typeof ConfigFile>;

/** The config document as written (before defaults): what `validateConfig` accepts. */
export type ConfigInput = z.input<typeof ConfigFile>;
