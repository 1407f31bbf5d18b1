import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Writable } from "node:stream";
import { REQUEST_ID_HEADER } from "@perishable/protocol";
import type { FastifyInstance } from "fastify";
import type { AdminContext } from "./admin/context.js";
import { AuditLog } from "./audit/audit-log.js";
import { ExpiryWatcher } from "./audit/expiry-watcher.js";
import { DpopVerifier } from "./auth/dpop.js";
import { OidcVerifier } from "./auth/oidc.js";
import { KeyMatcher, TokenHasher } from "./auth/secrets.js";
import { DEFAULTS } from "./config/defaults.js";
import { LiveConfig, type ReloadResult } from "./config/reload.js";
import { Secret } from "./config/secret.js";
import type { BrokerConfig } from "./config/types.js";
import { BrokerError } from "./errors.js";
import { registerAdminRoutes } from "./http/admin-routes.js";
import { createApp } from "./http/app.js";
import { registerConsoleRoutes } from "./http/console-routes.js";
import { endSocketWithError } from "./http/error-response.js";
import { installErrorHandling } from "./http/errors-plugin.js";
import { registerOAuthRoutes } from "./http/oauth-routes.js";
import { registerOpsRoutes } from "./http/ops-routes.js";
import { createProxyHandler, isProxyTarget, type ProxyDeps } from "./http/proxy-handler.js";
import { registerTokenRoutes } from "./http/token-routes.js";
import { Metrics } from "./metrics/metrics.js";
import { FlightLedger } from "./proxy/flight-ledger.js";
import { LiveConnections } from "./proxy/live.js";
import { NodeWorker } from "./proxy/node-work.js";
import { UpstreamKeys } from "./proxy/upstream-keys.js";
import { UpstreamPools } from "./proxy/upstreams.js";
import { createUpgradeHandler } from "./proxy/websocket.js";
import type { Store } from "./store/types.js";
import { Tracing } from "./telemetry/tracing.js";
import type { TokenContext } from "./tokens/context.js";

export interface BuildServerOptions {
  readonly config: BrokerConfig;
  /** Opened by the caller, who also closes it. */
  readonly store: Store;
  /** Where log lines go (JSON, one per line); stdout by default. */
  readonly logStream?: Writable;
  readonly now?: () => number;
  /** How long after a bulk revocation's walk new grants are still caught (DEFAULTS.revocationCutoffMarginMs). */
  readonly cutoffMarginMs?: number;
}

export interface BrokerServer {
  readonly app: FastifyInstance;
  readonly audit: AuditLog;
  readonly metrics: Metrics;
  readonly expiry: ExpiryWatcher;
  /** The upstreams' keys: `reload()` reads file-backed ones again (SIGHUP). */
  readonly keys: UpstreamKeys;
  /** Serves a new file's scopes and prices from now on, if they fit (SIGHUP); see config/reload.ts. */
  applyConfig(next: BrokerConfig): ReloadResult;
  /** Stops accepting, lets in-flight requests (streams included) finish, then closes what it opened. */
  close(): Promise<void>;
}

/**
 * The broker as a fastify app. It never listens by itself (tests inject or listen on port 0;
 * `startBroker` listens on the configured address). Everything it opens it closes in `close()`.
 */
export const buildServer = async (options: BuildServerOptions): Promise<BrokerServer> => {
  const { config, store } = options;
  const now = options.now ?? Date.now;
  const nextRequestId = requestIds();
  // The proxy is served straight from node:http (it is the hot path); it is built below, once the
  // store, audit trail and pools exist, and reached through this binding.
  let proxy: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  let closing = false;
  const app = createApp({
    config,
    ...(options.logStream ? { logStream: options.logStream } : {}),
    requestId: nextRequestId,
    proxy: (req, res) => {
      if (!proxy || !isProxyTarget(req.url)) return false;
      proxy(req, res);
      return true;
    },
  });

  const warn = (message: string, error: unknown) => app.log.warn({ err: summary(error) }, message);
  const { audit, metrics, expiry, flights, live, stopCuts } = backgroundWork(config, store, now, warn);
  const pools = new UpstreamPools(config.upstreams.values());
  const hasher = new TokenHasher(config.secret ?? new Secret(randomBytes(32).toString("base64url")));
  const dpop = new DpopVerifier({ skewMs: config.dpop.skewMs, ids: store, now });
  const keys = new UpstreamKeys(config.upstreams.values(), (event) => {
    metrics.keyRotations.inc({ upstream: event.upstream, result: event.kind });
    if (event.kind === "refused") {
      app.log.error(
        { upstream: event.upstream, why: event.why },
        "upstream key not rotated: the old key is kept",
      );
      return;
    }
    app.log.info({ upstream: event.upstream }, "upstream key rotated: new requests use the new key");
    audit.record("upstream_key_rotated", null, null, now(), { upstream: event.upstream });
  });
  keys.start();
  const tracing = config.traces ? new Tracing(config.traces, config.upstreams) : undefined;
  // Every use reads the config served now: SIGHUP may have replaced its scopes and prices.
  const served = new LiveConfig(config);
  const ctx: TokenContext = {
    get config() {
      return served.current;
    },
    store,
    hasher,
    audit,
    metrics,
    now,
    dpop,
  };

  await registerApi(app, {
    ctx,
    keys,
    tracing,
    admin: {
      get config() {
        return served.current;
      },
      store,
      audit,
      metrics,
      now,
      cutoffMarginMs: options.cutoffMarginMs ?? DEFAULTS.revocationCutoffMarginMs,
    },
  });
  const proxyDeps: ProxyDeps = {
    get config() {
      return served.current;
    },
    store,
    hasher,
    audit,
    pools,
    metrics,
    now,
    requestId: nextRequestId,
    logError: (error, requestId) => app.log.error({ err: summary(error), requestId }, "unexpected error"),
    closing: () => closing,
    flights,
    live,
    dpop,
    keys,
    tracing,
  };
  proxy = createProxyHandler(proxyDeps);
  const upgrade = createUpgradeHandler(proxyDeps);
  app.server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
    if (isProxyTarget(req.url)) upgrade.handle(req, socket, head);
    else
      endSocketWithError(
        socket,
        new BrokerError("bad_request", "WebSocket upgrades are served on /proxy only"),
        nextRequestId(),
      );
  });
  await app.ready();

  return {
    app,
    audit,
    metrics,
    expiry,
    keys,
    applyConfig: (next) => {
      const result = served.apply(next);
      if (!result.applied)
        app.log.error({ problems: result.problems }, "config not reloaded: the old one keeps serving");
      else app.log.info({ needRestart: result.ignored }, "config reloaded: scopes and prices applied");
      return result;
    },
    close: async () => {
      closing = true;
      keys.stop();
      await tracing?.close();
      upgrade.closeAll();
      await app.close();
      stopCuts();
      await expiry.stop();
      await flights.stop();
      await pools.close();
      await audit.close();
    },
  };
};

/** What runs beside the requests: the audit trail, metrics, the expiry watcher, the flight ledger. */
const backgroundWork = (
  config: BrokerConfig,
  store: Store,
  now: () => number,
  warn: (message: string, error: unknown) => void,
) => {
  const audit = new AuditLog({
    store,
    file: config.audit.file,
    maxBuffer: config.audit.buffer,
    anonymousPerSecond: config.audit.anonymousPerSecond,
    onError: warn,
  });
  const metrics = new Metrics({
    auditBacklog: () => audit.stats.pending,
    auditDropped: () => audit.stats.dropped,
    auditSuppressed: () => audit.stats.suppressed,
    liveGrants: () => store.countLiveGrants(now()),
  });
  const expiry = new ExpiryWatcher({ store, audit, now });
  const flights = new FlightLedger({ store, leaseMs: config.budgets.leaseMs, now, onError: warn });
  const live = new LiveConnections((reason) => metrics.connectionCut(reason));
  metrics.liveConnections = () => live.list(store.nodeId);
  const worker = new NodeWorker(live, store, now);
  const unsubscribe = store.serve(worker);
  // A node that may have missed revocations checks what is live itself, or cuts it (fail closed).
  const deafness = setInterval(() => void worker.watch(), 200);
  deafness.unref();
  const stopCuts = () => {
    clearInterval(deafness);
    unsubscribe();
  };
  return { audit, metrics, expiry, flights, live, stopCuts };
};

/** The API routes that get a span: tokens (issuance, exchange, refresh, self), grants, revocations. */
const TRACED_ROUTES = /^\/v1\/(tokens|oauth|grants|revocations)/;

/** The fastify routes: ops, console, tokens and admin, with the request id and denial hooks. */
const registerApi = async (
  app: FastifyInstance,
  deps: {
    readonly ctx: TokenContext;
    readonly admin: AdminContext;
    readonly keys: UpstreamKeys;
    readonly tracing: Tracing | undefined;
  },
): Promise<void> => {
  const { config, store, audit, metrics, now } = deps.ctx;
  installErrorHandling(app);
  await app.register(async (api) => {
    api.addHook("onRequest", async (request, reply) => {
      reply.header(REQUEST_ID_HEADER, request.id);
    });
    // A refused request on the API is a security event: count it and audit it, then answer.
    api.addHook("onError", async (request, _reply, error) => {
      if (!(error instanceof BrokerError)) return;
      metrics.denial(error.code);
      audit.record("denied", error.subject ?? null, request.id, now(), {
        code: error.code,
        rule: error.message,
        method: request.method,
        path: request.routeOptions.url ?? "",
      });
    });
    registerOpsRoutes(api, store, metrics, () => deps.keys);
    const { tracing } = deps;
    // Spans for the token and revocation API (the proxy makes its own).
    if (tracing)
      api.addHook("onResponse", async (request, reply) => {
        const route = request.routeOptions.url;
        if (route && TRACED_ROUTES.test(route))
          tracing.api(route, request.method, reply.statusCode, reply.elapsedTime, request.headers);
      });
    registerConsoleRoutes(api);
    const oidc = new OidcVerifier(
      config.issuers.flatMap((issuer) => (issuer.kind === "oidc" ? [issuer] : [])),
    );
    registerTokenRoutes(api, {
      ctx: deps.ctx,
      issuers: new KeyMatcher(
        config.issuers.flatMap((issuer) => (issuer.kind === "key" ? [[issuer.key, issuer] as const] : [])),
      ),
      oidc,
    });
    await registerOAuthRoutes(api, { ctx: deps.ctx, oidc });
    registerAdminRoutes(api, {
      ctx: deps.admin,
      admins: new KeyMatcher(config.admins.map((admin) => [admin.key, admin] as const)),
    });
  });
};

/** `req_` + a per-process random part + a counter: unique, cheap, and no clock in it. */
const requestIds = () => {
  const prefix = `req_${randomBytes(6).toString("base64url")}`;
  let counter = 0;
  return () => `${prefix}${(counter++).toString(36)}`;
};

/** An error for the log: its name, code and message, never a stack of request data. */
export const summary = (error: unknown): Record<string, unknown> => {
  if (!(error instanceof Error)) return { message: String(error) };
  const cause = error.cause instanceof Error ? error.cause.message : undefined;
  return { name: error.name, code: (error as { code?: unknown }).code, message: error.message, cause };
};
