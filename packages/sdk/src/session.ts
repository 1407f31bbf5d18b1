import type { TokenResponse } from "@perishable/protocol";
import { EventEmitter } from "eventemitter3";
import { dpopKeyOf } from "./dpop.js";
import { isPerishableError, PerishableError } from "./errors.js";
import {
  type BudgetLeft,
  type GrantInfo,
  grantFromResponse,
  grantFromSelf,
  heldFromResponse,
  heldFromSelf,
  parseBudgetLeft,
  type SessionEvents,
} from "./grant-info.js";
import {
  type AnthropicOptions,
  anthropicOptions,
  type ClientOptions,
  openaiOptions,
} from "./integrations/clients.js";
import {
  type ConnectOptions,
  checkCredential,
  checkToken,
  type DelegateOptions,
  issueRequest,
  type ResolvedSessionOptions,
  resolveSessionOptions,
  type SessionOptions,
  withDpop,
} from "./options.js";
import { BUDGET_LEFT_HEADER, localError, peekDenial, replayable, withToken } from "./proxied-request.js";
import { type HeldToken, type KeeperState, TokenKeeper } from "./refresh/keeper.js";
import { type BrokerClient, clientFor } from "./transport/broker-client.js";

interface SessionInit {
  readonly options: ResolvedSessionOptions;
  readonly client: BrokerClient;
  readonly held: HeldToken;
  readonly grant: Omit<GrantInfo, "expiresAt">;
}

/**
 * An agent's hold on one grant: the current token (refreshed at half its lifetime, with jitter),
 * a fetch that carries it, options for the OpenAI and Anthropic clients, and delegation to
 * sub-agents. Create one with `connect()` or `fromToken()`.
 */
export class Session extends EventEmitter<SessionEvents> {
  readonly #o: ResolvedSessionOptions;
  readonly #client: BrokerClient;
  readonly #keeper: TokenKeeper;
  readonly #grant: Omit<GrantInfo, "expiresAt">;
  #budgetLeft: BudgetLeft | undefined;
  readonly #warned = new Set<"usd" | "tokens">();
  readonly #children = new Set<Session>();

  /** @internal Use `connect()`, `fromToken()` or `session.delegate()`. */
  constructor(init: SessionInit) {
    super();
    this.#o = init.options;
    this.#client = init.client;
    this.#grant = Object.freeze({ ...init.grant, scopes: Object.freeze([...init.grant.scopes]) });
    this.#keeper = new TokenKeeper({
      initial: init.held,
      refresh: async (current, signal) => {
        const sentAt = this.#o.now();
        return heldFromResponse(await this.#client.refresh(current.token, signal), sentAt);
      },
      now: this.#o.now,
      random: this.#o.random,
      refreshAt: this.#o.refreshAt,
      jitter: this.#o.jitter,
      backoff: this.#o.backoff,
      hooks: {
        refreshed: (next, previous) =>
          this.emit("refreshed", {
            token: next.token,
            tokenId: next.tokenId,
            expiresAt: next.expiresAtIso,
            grant: this.grant,
            previous: { token: previous.token, tokenId: previous.tokenId, expiresAt: previous.expiresAtIso },
          }),
        expired: (last, reason) => this.emit("expired", { tokenId: last.tokenId, grant: this.grant, reason }),
        revoked: (last, error) =>
          this.emit("revoked", {
            tokenId: last.tokenId,
            grant: this.grant,
            by: error ? "broker" : "self",
            error,
          }),
        error: (error, willRetry, attempt) => this.emit("error", { error, willRetry, attempt }),
      },
    });
  }

  /** The current token. It changes on refresh: read it when you need it, do not keep it. */
  get token(): string {
    return this.#keeper.current.token;
  }

  get tokenId(): string {
    return this.#keeper.current.tokenId;
  }

  get grant(): GrantInfo {
    return Object.freeze({ ...this.#grant, expiresAt: this.#keeper.current.expiresAtIso });
  }

  /** What the lineage had left after the last proxied answer that said (budgeted lineages only). */
  get budgetLeft(): BudgetLeft | undefined {
    return this.#budgetLeft;
  }

  /** `live`, or why not: `expired`, `revoked`, `closed`. */
  get state(): KeeperState {
    return this.#keeper.state;
  }

  get broker(): URL {
    return new URL(this.#o.broker.href);
  }

  /** The thumbprint of the DPoP key this session signs with (its grant's `cnf.jkt`), if bound. */
  get dpopJkt(): string | undefined {
    return this.#o.dpop?.jkt;
  }

  /** Refreshes now (shares a refresh already in flight). */
  async refresh(): Promise<void> {
    await this.#keeper.refresh();
  }

  /**
   * fetch with the session's current token. A path (`/proxy/openai/v1/…`) resolves against the
   * broker; any other origin is refused, so the token never leaves for somewhere else. On
   * `token_expired` it refreshes once and retries, when the body can be sent again. When the
   * session can no longer get a valid token it answers at once with the broker's 401 envelope
   * (`token_expired`, `token_revoked`), as the broker would, instead of calling anything.
   */
  readonly fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const { url, request } = this.#resolve(input, init);
    const held = this.#keeper.usable();
    if (held instanceof PerishableError) return localError(held);
    let response = await this.#o.fetch(url, withToken(request, held.token));
    this.#noteBudget(response);
    if (response.status !== 401) return response;
    const denial = await peekDenial(response);
    if (denial?.code === "token_revoked") {
      this.#revokeTree(denial);
      return response;
    }
    if (denial?.code === "token_expired" && this.#keeper.canRefresh && replayable(request.body)) {
      let fresh: HeldToken;
      try {
        fresh = await this.#keeper.refresh();
      } catch {
        return response;
      }
      response = await this.#o.fetch(url, withToken(request, fresh.token));
    }
    return response;
  };

  /**
   * What an MCP client's Streamable HTTP transport needs to reach an MCP upstream through the broker:
   * `new StreamableHTTPClientTransport(mcp.url, { fetch: mcp.fetch })`. Every message carries the
   * session's current token, so the client keeps working across refreshes; the MCP server gets the
   * upstream's own credential and never the token.
   */
  mcp(upstream: string): { readonly url: URL; readonly fetch: typeof fetch } {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(upstream)) throw new TypeError("not an upstream name");
    return { url: new URL(`proxy/${upstream}/`, this.#o.broker), fetch: this.fetch as typeof fetch };
  }

  /**
   * What a realtime WebSocket client needs to reach `/v1/realtime` through the broker: the URL (ws
   * or wss, as the broker is reached), the `Authorization` header with the current token, and for
   * browsers (which cannot set headers) the subprotocols carrying it instead. The token is checked
   * when the socket opens; the socket then lives until it closes, is revoked or its grant ends.
   */
  realtime(options: { readonly model: string; readonly upstream?: string }): {
    readonly url: string;
    readonly headers: Readonly<Record<string, string>>;
    readonly protocols: readonly string[];
  } {
    const upstream = options.upstream ?? "openai";
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(upstream)) throw new TypeError("not an upstream name");
    if (typeof options.model !== "string" || options.model === "")
      throw new TypeError("model must be a non-empty string");
    const url = new URL(`proxy/${upstream}/v1/realtime`, this.#o.broker);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("model", options.model);
    const { token } = this;
    return {
      url: url.href,
      headers: { Authorization: `Bearer ${token}` },
      protocols: ["realtime", `openai-insecure-api-key.${token}`],
    };
  }

  /** Options for `new OpenAI(...)`, `createOpenAI(...)` (Vercel AI SDK), LangChain's `configuration`. */
  openai(options: { upstream?: string } = {}): ClientOptions {
    return openaiOptions(this.#o.broker, options.upstream ?? "openai", this.token, this.fetch);
  }

  /**
   * Options for `new Anthropic(...)` and LangChain's ChatAnthropic; with `{ for: "ai-sdk" }`, for
   * the Vercel AI SDK's `createAnthropic(...)` (whose baseURL includes the API version).
   */
  anthropic(options: AnthropicOptions = {}): ClientOptions {
    return anthropicOptions(this.#o.broker, options, this.token, this.fetch);
  }

  /** A sub-agent's session on a child grant: fewer scopes, a shorter life; closed with this one. */
  async delegate(options: DelegateOptions): Promise<Session> {
    this.#assertOpen();
    if (options.dpop && options.dpopJkt !== undefined) throw new TypeError("pass dpop or dpopJkt, not both");
    const childKey = await dpopKeyOf(options.dpop);
    const body = issueRequest(childKey ? { ...options, dpopJkt: childKey.jkt } : options);
    const held = this.#keeper.usable();
    if (held instanceof PerishableError) throw held;
    const sentAt = this.#o.now();
    let response: TokenResponse;
    try {
      response = await this.#client.issue(held.token, body);
    } catch (error) {
      if (isPerishableError(error, "token_revoked")) this.#revokeTree(error);
      throw error;
    }
    // Bound to its own key: it signs with it (one bound by dpopJkt is for the sub-agent to open).
    const childOptions = childKey ? withDpop(this.#o, childKey) : this.#o;
    const child = new Session({
      options: childOptions,
      client: childKey ? clientFor(childOptions) : this.#client,
      held: heldFromResponse(response, sentAt),
      grant: grantFromResponse(response),
    });
    this.#children.add(child);
    return child;
  }

  /**
   * Revokes this session's grant and every grant below it (at the broker, for every holder);
   * `connections`: the streams and WebSockets of them the broker cut, on every node.
   */
  async revoke(): Promise<{ revoked: number; connections?: number }> {
    this.#assertOpen();
    const held = this.#keeper.usable();
    if (held instanceof PerishableError) throw held;
    const result = await this.#client.revokeSelf(held.token);
    this.#revokeTree(undefined);
    return result;
  }

  /** Stops refreshing, here and in every session delegated from this one. Leaves no timer behind. */
  close(): void {
    for (const child of this.#children) child.close();
    this.#children.clear();
    this.#keeper.close();
    this.removeAllListeners();
  }

  /** Reads x-perishable-budget-left and emits `budget` when a unit falls below the warning fraction. */
  #noteBudget(response: Response): void {
    const left = parseBudgetLeft(response.headers.get(BUDGET_LEFT_HEADER));
    if (!left) return;
    this.#budgetLeft = left;
    for (const unit of ["usd", "tokens"] as const) {
      const u = left[unit];
      if (!u || u.limit <= 0) continue;
      const fraction = u.left / u.limit;
      const below = fraction < this.#o.budgetWarning;
      if (below && !this.#warned.has(unit))
        this.emit("budget", { grant: this.grant, unit, left: u.left, limit: u.limit, fraction });
      if (below) this.#warned.add(unit);
      else this.#warned.delete(unit);
    }
  }

  #revokeTree(error: PerishableError | undefined): void {
    this.#keeper.markRevoked(error);
    for (const child of this.#children) child.#revokeTree(error);
  }

  /** Using a session after close() is a bug in the caller: the same TypeError from every method. */
  #assertOpen(): void {
    if (this.#keeper.state === "closed") throw new TypeError("this session is closed");
  }

  #resolve(input: string | URL | Request, init: RequestInit | undefined): { url: URL; request: RequestInit } {
    this.#assertOpen();
    let url: URL;
    let request: RequestInit = init ?? {};
    if (typeof input === "string" && input.startsWith("/")) url = new URL(input.slice(1), this.#o.broker);
    else if (input instanceof Request) {
      url = new URL(input.url);
      request = {
        method: input.method,
        headers: input.headers,
        body: input.body,
        signal: input.signal,
        ...(input.body ? { duplex: "half" } : {}),
        ...init,
      } as RequestInit;
    } else url = new URL(String(input));
    if (url.origin !== this.#o.broker.origin) {
      throw new TypeError(
        `session.fetch only calls the broker (${this.#o.broker.origin}), not ${url.origin}`,
      );
    }
    return { url, request };
  }
}

/** Issues a root grant (or, with a `prs_` credential, a child grant) and returns its session. */
export const connect = async (options: ConnectOptions): Promise<Session> => {
  const resolved = withDpop(resolveSessionOptions(options), await dpopKeyOf(options.dpop ?? options.dpopKey));
  const credential = checkCredential(options.credential);
  const body = issueRequest(options);
  const client = clientFor(resolved);
  const secret = typeof credential === "function" ? await credential() : credential;
  if (typeof secret !== "string" || secret.trim() === "") {
    throw new PerishableError("unauthenticated", "the credential function returned no credential");
  }
  const sentAt = resolved.now();
  const response = await client.issue(secret.trim(), body);
  return new Session({
    options: resolved,
    client,
    held: heldFromResponse(response, sentAt),
    grant: grantFromResponse(response),
  });
};

/** A session for a token handed over by another process (a sub-agent's side of a delegation). */
export const fromToken = async (token: string, options: SessionOptions): Promise<Session> => {
  checkToken(token);
  const resolved = withDpop(resolveSessionOptions(options), await dpopKeyOf(options.dpopKey));
  const client = clientFor(resolved);
  const sentAt = resolved.now();
  const self = await client.self(token);
  return new Session({
    options: resolved,
    client,
    held: heldFromSelf(token, self, sentAt),
    grant: grantFromSelf(self),
  });
};
