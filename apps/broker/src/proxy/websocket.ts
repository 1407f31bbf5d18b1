import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { redact, tokenTree } from "@perishable/protocol";
import { type RawData, WebSocket, WebSocketServer } from "ws";
import { credentialProblem, presentedCredential } from "../auth/credentials.js";
import { requestKey } from "../auth/dpop.js";
import type { ScopeConfig, UpstreamConfig } from "../config/types.js";
import { refusal as asRefusal, BrokerError } from "../errors.js";
import { endSocketWithError } from "../http/error-response.js";
import type { ProxyDeps } from "../http/proxy-handler.js";
import { checkProxyPath } from "../policy/path.js";
import { matchScopes } from "../policy/scopes.js";
import type { AuthorizeResult, Candidate, Subject } from "../store/types.js";
import { withPresented } from "../tokens/context.js";
import { proxyDenial } from "./denials.js";
import { forwardRequestHeaders } from "./headers.js";
import { type Plan, parseTarget } from "./plan.js";

/** A browser client's way to send its key: the subprotocol `openai-insecure-api-key.<token>`. */
const INSECURE_KEY = "openai-insecure-api-key.";
/** Pause a side when the other has this much unsent: no buffering beyond the sockets' own. */
const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;

/**
 * WebSocket proxying (`websocket: true` scopes, e.g. OpenAI Realtime): the upgrade is checked as a
 * GET of its path (token from Authorization, x-api-key or the insecure-api-key subprotocol; the
 * scope's `models` against the `model` query parameter) in the same store call as any request;
 * a refusal is an HTTP error with the envelope, and the upstream never sees a handshake. Allowed:
 * the broker opens the upstream socket with the upstream's own credential (the token in no
 * header, query or subprotocol), then completes the client's handshake and relays frames both
 * ways as they come, with backpressure, close codes and reasons passed on. The socket is a live
 * connection: revocation, the grant's end or max_connection_seconds close it with 1008.
 */
export const createUpgradeHandler = (deps: ProxyDeps) => new Upgrades(deps);

/** One upgrade on its way: the request, its socket, and what the checks found. */
interface Upgrade {
  readonly req: IncomingMessage;
  readonly socket: Duplex;
  readonly head: Buffer;
  readonly requestId: string;
  readonly target: ReturnType<typeof parseTarget>;
  readonly offered: Set<string>;
}

type Allowed = Extract<AuthorizeResult, { ok: true }> & {
  readonly upstream: UpstreamConfig;
  readonly maxMs: number | undefined;
  /** Gives the flight back (a socket costs a slot, never a budget). */
  readonly release: () => void;
};

class Upgrades {
  readonly #deps: ProxyDeps;
  // The client's handshake answers with the subprotocol the upstream chose for it.
  readonly #chosen = new WeakMap<IncomingMessage, string>();
  readonly #wss: WebSocketServer;
  readonly #open = new Set<WebSocket>();

  constructor(deps: ProxyDeps) {
    this.#deps = deps;
    this.#wss = new WebSocketServer({
      noServer: true,
      handleProtocols: (_p, request) => this.#chosen.get(request) ?? false,
    });
  }

  handle(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const requestId = this.#deps.requestId();
    const u: Upgrade = {
      req,
      socket,
      head,
      requestId,
      target: parseTarget(req.url ?? ""),
      offered: protocolsOf(req),
    };
    this.#authorize(u).then(
      (allowed) => allowed && this.#connect(u, allowed),
      (error: unknown) => {
        this.#deps.logError(error, requestId);
        endSocketWithError(
          socket as never,
          new BrokerError("store_unavailable", "the broker cannot reach its store"),
          requestId,
        );
      },
    );
  }

  /** The broker is shutting down: every socket is closed with 1001 (going away). */
  closeAll(): void {
    for (const client of this.#open) client.close(1001, "the broker is shutting down");
  }

  /** The same checks as any request, in one store call; a refusal answers the upgrade in HTTP. */
  async #authorize(u: Upgrade): Promise<Allowed | undefined> {
    const deps = this.#deps;
    if (deps.closing())
      return this.#refuse(u, new BrokerError("store_unavailable", "the broker is shutting down"), null, null);
    const presented = tokenOf(u.req, u.offered);
    if ("error" in presented) return this.#refuse(u, presented.error, null, null);
    const { candidates, refusal, upstream, scopes, reasons } = plan(deps, u.target);
    const jkt = await requestKey(deps.dpop, deps.config.publicUrl, u.req, presented).catch(asRefusal);
    if (jkt instanceof BrokerError) return this.#refuse(u, jkt, null, null);
    const now = deps.now();
    const lease = deps.flights.lease(now);
    const result = await withPresented(deps.hasher, { ...presented, jkt }, (ref) =>
      deps.store.authorize(ref, now, candidates, lease),
    );
    if (!result.ok) {
      const check = {
        reasons,
        fills: new Map(),
        checked: undefined,
        raw: Buffer.alloc(0),
        bytes: 0,
        problem: undefined,
      };
      const shim: Plan = { candidates, refusal, upstream, check, body: null, costings: new Map() };
      const { error, rule } = proxyDenial({ denied: result, plan: shim, target: u.target, method: "GET" });
      return this.#refuse(u, error, result.subject, rule);
    }
    const { flight } = result;
    if (flight) deps.flights.open(flight);
    const release = () => {
      if (flight) deps.flights.close(flight, { usd: 0, tokens: 0 });
    };
    const maxMs = scopes.find((s) => s.name === result.scope)?.maxConnectionMs;
    return { ...result, upstream: upstream!, maxMs, release };
  }

  /** Opens the upstream socket with its own credential; then completes the client's handshake. */
  #connect(u: Upgrade, allowed: Allowed): void {
    const { upstream } = allowed;
    const headers: Record<string, string> = {};
    const flat = forwardRequestHeaders(
      u.req.rawHeaders,
      upstream,
      this.#deps.keys.value(upstream.name),
      true,
    );
    for (let i = 0; i < flat.length; i += 2) {
      const name = flat[i]!.toLowerCase();
      if (name.startsWith("sec-websocket-") || name === "host" || name === "content-length") continue;
      headers[name] = flat[i + 1]!;
    }
    const url = `${upstream.origin.replace(/^http/, "ws")}${upstream.basePath}${u.target.rest}${u.target.query}`;
    const protocols = [...u.offered].filter((p) => !p.startsWith(INSECURE_KEY));
    const remote = new WebSocket(url, protocols, { headers, handshakeTimeout: upstream.timeouts.headersMs });
    let opened = false;
    const failed = (message: string) => {
      if (opened || u.socket.destroyed) return;
      opened = true;
      allowed.release();
      this.#refuse(u, new BrokerError("upstream_error", message), allowed.subject, null);
    };
    remote.once("unexpected-response", (_request, response) =>
      failed(`upstream ${upstream.name} refused the WebSocket (${response.statusCode})`),
    );
    remote.once("error", () => failed(`upstream ${upstream.name} could not be reached`));
    remote.once("open", () => {
      opened = true;
      // What the upstream says before the client's handshake is done waits in its socket.
      remote.pause();
      if (remote.protocol) this.#chosen.set(u.req, remote.protocol);
      this.#wss.handleUpgrade(u.req, u.socket, u.head, (client) => this.#bridge(u, allowed, client, remote));
    });
  }

  /** Both sockets open: frames relayed, closes passed on, the socket live until it ends. */
  #bridge(u: Upgrade, allowed: Allowed, client: WebSocket, remote: WebSocket): void {
    const deps = this.#deps;
    const { subject } = allowed;
    const started = performance.now();
    const counts = { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 };
    relay(client, remote, (n) => {
      counts.messagesIn += 1;
      counts.bytesIn += n;
    });
    relay(remote, client, (n) => {
      counts.messagesOut += 1;
      counts.bytesOut += n;
    });
    remote.resume();
    this.#open.add(client);
    const cut = (error: { code: string }) => {
      client.close(1008, error.code);
      remote.close(1000, "the client's authority ended");
    };
    const what = {
      kind: "websocket",
      subject,
      upstream: u.target.upstreamName,
      path: u.target.rest,
    } as const;
    const done = deps.live.open(what, allowed.notAfter, deps.now(), cut, allowed.maxMs);
    let ended = false;
    const end = (code: number) => {
      if (ended) return;
      ended = true;
      this.#open.delete(client);
      done();
      allowed.release();
      deps.audit.record("used", subject, u.requestId, deps.now(), {
        upstream: u.target.upstreamName,
        method: "GET",
        path: u.target.rest,
        scope: allowed.scope,
        status: 101,
        upstreamMs: 0,
        totalMs: Math.round((performance.now() - started) * 100) / 100,
        websocket: { ...counts, closeCode: code },
      });
    };
    client.on("close", (code, reason) => {
      if (remote.readyState === WebSocket.OPEN) remote.close(sendable(code), reason);
      end(code);
    });
    remote.on("close", (code, reason) => {
      if (client.readyState === WebSocket.OPEN) client.close(sendable(code), reason);
      end(code);
    });
    client.on("error", () => remote.terminate());
    remote.on("error", () => client.terminate());
  }

  #refuse(u: Upgrade, error: BrokerError, subject: Subject | null, rule: string | null): undefined {
    this.#deps.metrics.denial(error.code);
    this.#deps.audit.record("denied", subject, u.requestId, this.#deps.now(), {
      code: error.code,
      rule: rule ?? error.message,
      method: "GET",
      path: u.target.rest,
    });
    endSocketWithError(u.socket as never, error, u.requestId);
    return undefined;
  }
}

/** Frames from one side to the other as they come; the source pauses while the sink is full. */
const relay = (from: WebSocket, to: WebSocket, count: (bytes: number) => void): void => {
  from.on("message", (data: RawData, isBinary: boolean) => {
    if (to.readyState !== WebSocket.OPEN) return;
    const bytes = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : (data as Buffer).byteLength;
    count(bytes);
    to.send(data, { binary: isBinary }, () => {
      if (from.isPaused && to.bufferedAmount < LOW_WATER) from.resume();
    });
    if (to.bufferedAmount > HIGH_WATER) from.pause();
  });
};

/** Codes a close frame may carry: the reserved ones (1005, 1006, 1015) become 1000 or 1011. */
const sendable = (code: number): number =>
  code === 1005 ? 1000 : code === 1006 || code === 1015 || code < 1000 || code >= 5000 ? 1011 : code;

const protocolsOf = (req: IncomingMessage): Set<string> => {
  const header = req.headers["sec-websocket-protocol"];
  return new Set(
    (typeof header === "string" ? header : "")
      .split(",")
      .map((p) => p.trim())
      .filter(Boolean),
  );
};

/** The token from the headers, or from the insecure-api-key subprotocol (never both, never a key). */
const tokenOf = (
  req: IncomingMessage,
  offered: ReadonlySet<string>,
): { token: string; tree: string; dpop?: boolean } | { error: BrokerError } => {
  const fromProtocol = [...offered]
    .filter((p) => p.startsWith(INSECURE_KEY))
    .map((p) => p.slice(INSECURE_KEY.length));
  const presented = presentedCredential(req.rawHeaders);
  if (fromProtocol.length > 0) {
    if (presented.kind !== "none" || fromProtocol.length > 1)
      return { error: new BrokerError("unauthenticated", "more than one credential on the upgrade") };
    const tree = tokenTree(fromProtocol[0]!);
    return tree
      ? { token: fromProtocol[0]!, tree }
      : { error: new BrokerError("token_invalid", "not a perishable token") };
  }
  const problem =
    credentialProblem(presented) ??
    (presented.kind === "key"
      ? new BrokerError("token_invalid", "the proxy takes a prs_ token, not a key")
      : undefined);
  if (problem || presented.kind !== "token") return { error: problem! };
  return { token: presented.token, tree: presented.tree, dpop: presented.dpop };
};

/** The candidate scopes of an upgrade: websocket scopes of its path, `models` on the model query parameter. */
const plan = (deps: ProxyDeps, target: ReturnType<typeof parseTarget>) => {
  const upstream = deps.config.upstreams.get(target.upstreamName);
  const reasons = new Map<string, string>();
  const none = (refusal: BrokerError) => ({
    candidates: [] as Candidate[],
    refusal,
    upstream,
    scopes: [] as ScopeConfig[],
    reasons,
  });
  if (!upstream)
    return none(new BrokerError("upstream_unknown", `no upstream named ${target.upstreamName.slice(0, 64)}`));
  const path = checkProxyPath(target.rest);
  if (!path.ok) return none(new BrokerError("bad_request", `unusable path: ${path.reason}`));
  const scopes = matchScopes(
    deps.config.scopesByUpstream.get(target.upstreamName) ?? [],
    "GET",
    path.path,
  ).filter((s) => s.websocket);
  if (scopes.length === 0)
    return none(
      new BrokerError(
        "scope_denied",
        `no scope of this token allows a WebSocket to ${target.rest || "/"} on upstream ${target.upstreamName}`,
      ),
    );
  const model = new URLSearchParams(target.query.slice(1)).get("model");
  const candidates = scopes.map((s): Candidate => {
    const models = s.constraints.models;
    const pass = !models || (model !== null && models.some((re) => re.test(model)));
    if (!pass) {
      const shown = JSON.stringify(redact((model ?? "").slice(0, 100)));
      reasons.set(s.name, `model ${shown} is not allowed (allowed: ${s.constraints.modelGlobs?.join(", ")})`);
    }
    return {
      scope: s.name,
      pass,
      limit: s.rate?.limit ?? 0,
      windowMs: s.rate?.windowMs ?? 0,
      worst: { usd: 0, tokens: 0 },
    };
  });
  return { candidates, refusal: undefined, upstream, scopes, reasons };
};
