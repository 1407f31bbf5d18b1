import { IssueTokenRequest, TOKEN_RE } from "@perishable/protocol";
import { type DpopKey, type DpopKeyPair, dpopFetch } from "./dpop.js";

/** Every default of the SDK, in one place. */
export const DEFAULTS = Object.freeze({
  /** Per broker call. */
  timeoutMs: 10_000,
  /** Refresh at half the token's lifetime… */
  refreshAt: 0.5,
  /** …± 10 % of the lifetime, so a fleet of agents does not refresh in lockstep. */
  jitter: 0.1,
  backoff: Object.freeze({ minMs: 250, maxMs: 5_000 }),
  upstreams: Object.freeze({ openai: "openai", anthropic: "anthropic" }),
  /** The `budget` event fires when less than this fraction of a budget is left. */
  budgetWarning: 0.2,
});

/** A credential: a string, or a function that returns one (re-read on each use: rotating files). */
export type Credential = string | (() => string | Promise<string>);

/** Options shared by `connect` and `fromToken`. */
export interface SessionOptions {
  /** The broker's base URL, e.g. `http://127.0.0.1:8420`. */
  readonly broker: string | URL;
  /** fetch to use for broker calls and proxied calls (tests, custom agents). */
  readonly fetch?: typeof fetch;
  readonly timeoutMs?: number;
  readonly refreshAt?: number;
  readonly jitter?: number;
  readonly backoff?: { readonly minMs: number; readonly maxMs: number };
  /** The clock (epoch ms). */
  readonly now?: () => number;
  readonly random?: () => number;
  /** Emit `budget` when less than this fraction of a budget is left (default 0.2). */
  readonly budgetWarning?: number;
  /**
   * `fromToken`: the key pair (ECDSA P-256) the handed token is bound to (DPoP): every call is
   * signed with it. A sub-agent gets it from whoever made it, or makes it and sends its thumbprint
   * to the parent (`delegate({ dpopJkt })`).
   */
  readonly dpopKey?: DpopKeyPair;
}

export interface ConnectOptions extends SessionOptions {
  /** An issuer key, an OIDC token, or a `prs_` token (then the new grant is its child). */
  readonly credential: Credential;
  readonly scopes: readonly string[];
  /** Token lifetime in seconds; the broker's default when omitted. */
  readonly ttl?: number;
  readonly agent?: string;
  readonly task?: string;
  /** Seconds until the grant's end (notAfter). */
  readonly lifetime?: number;
  readonly maxUses?: number;
  /** What the grant and everything it delegates may spend: dollars, tokens, or both. */
  readonly budget?: { readonly usd?: number; readonly tokens?: number };
  /** Requests in flight at once (its sub-agents' included). */
  readonly maxConcurrent?: number;
  readonly metadata?: Readonly<Record<string, string>>;
  /** Who the agent acts for (`user:alice`): on every event of the lineage, and a revocation selector. */
  readonly onBehalfOf?: string;
  /**
   * Bind the grant to a key (DPoP, RFC 9449): `true` makes one with WebCrypto (its private half
   * cannot be exported), or pass a key pair. Every call is then signed; the token alone is useless.
   */
  readonly dpop?: boolean | DpopKeyPair;
}

export interface ResolvedSessionOptions {
  readonly broker: URL;
  readonly fetch: typeof fetch;
  readonly timeoutMs: number;
  readonly refreshAt: number;
  readonly jitter: number;
  readonly backoff: { readonly minMs: number; readonly maxMs: number };
  readonly now: () => number;
  readonly random: () => number;
  readonly budgetWarning: number;
  /** fetch as given, unsigned (a child session signs it with its own key). */
  readonly rawFetch: typeof fetch;
  /** The DPoP key `fetch` signs with, when the session is bound. */
  readonly dpop: DpopKey | undefined;
}

/** The options with `fetch` signing every broker call with `key`. */
export const withDpop = (options: ResolvedSessionOptions, key: DpopKey | undefined): ResolvedSessionOptions =>
  Object.freeze({
    ...options,
    dpop: key,
    fetch: key ? dpopFetch(options.rawFetch, key, options.broker, options.now) : options.rawFetch,
  });

/** Checks options once; misuse is a TypeError here, never a runtime failure later. */
export const resolveSessionOptions = (options: SessionOptions): ResolvedSessionOptions => {
  if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
  let broker: URL;
  try {
    broker = new URL(String(options.broker));
  } catch {
    throw new TypeError(`broker must be an http(s) URL, got ${JSON.stringify(String(options.broker))}`);
  }
  if (broker.protocol !== "http:" && broker.protocol !== "https:")
    throw new TypeError("broker must be an http(s) URL");
  if (!broker.pathname.endsWith("/")) broker.pathname += "/";
  const fetchImpl = options.fetch ?? globalThis.fetch;
  if (typeof fetchImpl !== "function") throw new TypeError("no fetch: pass options.fetch");
  const timeoutMs = options.timeoutMs ?? DEFAULTS.timeoutMs;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
    throw new TypeError("timeoutMs must be a positive number");
  const refreshAt = options.refreshAt ?? DEFAULTS.refreshAt;
  const jitter = options.jitter ?? DEFAULTS.jitter;
  if (!(refreshAt > 0 && refreshAt < 1)) throw new TypeError("refreshAt must be between 0 and 1");
  if (!(jitter >= 0 && refreshAt - jitter > 0 && refreshAt + jitter < 1)) {
    throw new TypeError("jitter must keep the refresh point strictly inside the token's lifetime");
  }
  const backoff = options.backoff ?? DEFAULTS.backoff;
  if (!(backoff.minMs > 0 && backoff.maxMs >= backoff.minMs))
    throw new TypeError("backoff needs 0 < minMs <= maxMs");
  const budgetWarning = options.budgetWarning ?? DEFAULTS.budgetWarning;
  if (!(budgetWarning >= 0 && budgetWarning <= 1))
    throw new TypeError("budgetWarning must be between 0 and 1");
  return Object.freeze({
    budgetWarning,
    broker,
    fetch: fetchImpl,
    rawFetch: fetchImpl,
    dpop: undefined,
    timeoutMs,
    refreshAt,
    jitter,
    backoff,
    now: options.now ?? Date.now,
    random: options.random ?? Math.random,
  });
};

/** The body of `POST /v1/tokens`, checked against the protocol schema: a bad ttl is a TypeError. */
export const issueRequest = (options: ConnectOptions | DelegateOptions): IssueTokenRequest => {
  const body = {
    scopes: options.scopes === undefined ? undefined : [...options.scopes],
    ttl: options.ttl,
    agent: options.agent,
    task: options.task,
    lifetime: options.lifetime,
    maxUses: options.maxUses,
    budget: options.budget === undefined ? undefined : { ...options.budget },
    maxConcurrent: options.maxConcurrent,
    metadata: options.metadata === undefined ? undefined : { ...options.metadata },
    dpopJkt: "dpopJkt" in options ? options.dpopJkt : undefined,
    onBehalfOf: "onBehalfOf" in options ? options.onBehalfOf : undefined,
  };
  const parsed = IssueTokenRequest.safeParse(
    Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined)),
  );
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new TypeError(`${issue.path.map(String).join(".") || "options"}: ${issue.message}`);
  }
  return parsed.data;
};

export const checkCredential = (credential: unknown): Credential => {
  if (typeof credential === "function") return credential as Credential;
  if (typeof credential === "string" && credential.trim() !== "") return credential;
  throw new TypeError("credential must be a non-empty string or a function that returns one");
};

export const checkToken = (token: unknown): string => {
  if (typeof token !== "string" || !TOKEN_RE.test(token))
    throw new TypeError("not a perishable token (prs_…)");
  return token;
};

/** What a session may hand a sub-agent: a subset of its scopes, a shorter life. */
export interface DelegateOptions {
  readonly scopes: readonly string[];
  readonly ttl?: number;
  readonly agent?: string;
  readonly task?: string;
  readonly lifetime?: number;
  readonly maxUses?: number;
  /** A slice of this session's budget: at most what its lineage has left. */
  readonly budget?: { readonly usd?: number; readonly tokens?: number };
  readonly maxConcurrent?: number;
  readonly metadata?: Readonly<Record<string, string>>;
  /** Bind the child to its own key, made here (`true`) or given: its session signs with it. */
  readonly dpop?: boolean | DpopKeyPair;
  /** Bind the child to a sub-agent's key, by its thumbprint (the sub-agent holds the key: `fromToken`). */
  readonly dpopJkt?: string;
}
