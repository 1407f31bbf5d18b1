import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Writable } from "node:stream";
import { REQUEST_ID_HEADER } from "@perishable/protocol";
import Fastify, { type FastifyInstance, LogController } from "fastify";
import { AuditLog, auditEvent } from "./audit/audit-log.js";
import { ExpiryWatcher } from "./audit/expiry-watcher.js";
import { OidcVerifier } from "./auth/oidc.js";
import { KeyMatcher, TokenHasher } from "./auth/secrets.js";
import { DEFAULTS } from "./config/defaults.js";
import { Secret } from "./config/secret.js";
import type { BrokerConfig } from "./config/types.js";
import { BrokerError } from "./errors.js";
import { registerAdminRoutes } from "./http/admin-routes.js";
import { registerConsoleRoutes } from "./http/console-routes.js";
import { endSocketWithError, sendError, writeError } from "./http/error-response.js";
import { clientErrorHandler, installErrorHandling } from "./http/errors-plugin.js";
import { registerOpsRoutes } from "./http/ops-routes.js";
import { createProxyHandler, isProxyTarget } from "./http/proxy-handler.js";
import { registerTokenRoutes } from "./http/token-routes.js";
import { Metrics } from "./metrics/metrics.js";
import { UpstreamPools } from "./proxy/upstreams.js";
import type { Store } from "./store/types.js";
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
  /** Stops accepting, lets in-flight requests (streams included) finish, then closes what it opened. */
  close(): Promise<void>;
}

/** Largest JSON body on the /v1 API; proxied bodies have their own limit. */
const API_BODY_LIMIT = 64 * 1024;

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
  const app = Fastify({
    logger: {
      level: config.log.level,
      ...(options.logStream ? { stream: options.logStream } : {}),
      // Nothing logs request headers; this is the second lock on the door.
      redact: ["req.headers.authorization", 'req.headers["x-api-key"]', 'req.headers["api-key"]'],
    },
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: "requestId" }),
    genReqId: () => nextRequestId(),
    requestIdHeader: false,
    bodyLimit: API_BODY_LIMIT,
    return503OnClosing: true,
    clientErrorHandler,
    // Router-level failures (a malformed %-escape) skip the error handler: answer them here.
    frameworkErrors: (error, request, reply) =>
      sendError(
        request,
        reply,
        new BrokerError(
          "bad_request",
          error.code === "FST_ERR_BAD_URL" ? "the URL is malformed" : "bad request",
        ),
      ),
    // Node checks header and request timeouts only every connectionsCheckingInterval (30 s by
    // default): a slow client would hold a connection far past the configured limits.
    serverFactory: (handler) =>
      createServer(
        {
          headersTimeout: config.listen.headersTimeoutMs,
          requestTimeout: config.listen.requestTimeoutMs,
          keepAliveTimeout: 72_000,
          connectionsCheckingInterval: 500,
          noDelay: true,
          // Node answers these two with an empty body of its own; the broker answers them with
          // the envelope, like every other refusal (see missingHost and checkExpectation below).
          requireHostHeader: false,
        },
        (req, res) => {
          if (missingHost(req)) {
            res.setHeader("connection", "close");
            writeError(
              res,
              new BrokerError("bad_request", "an HTTP/1.1 request needs a Host header"),
              nextRequestId(),
            );
            return;
          }
          return proxy && isProxyTarget(req.url) ? proxy(req, res) : handler(req, res);
        },
      ),
  });

  // An Expect other than 100-continue: node would answer an empty 417.
  app.server.on("checkExpectation", (req: IncomingMessage, res: ServerResponse) => {
    res.setHeader("connection", "close");
    const expectation = String(req.headers.expect ?? "").slice(0, 64);
    writeError(
      res,
      new BrokerError("bad_request", `Expect: ${expectation} is not supported (only 100-continue)`),
      nextRequestId(),
    );
  });

  // CONNECT (authority-form) never reaches a route: answer it rather than drop the socket.
  app.server.on("connect", (_request, socket: Socket) => {
    endSocketWithError(socket, new BrokerError("bad_request", "CONNECT is not supported"));
  });

  const audit = new AuditLog({
    store,
    file: config.audit.file,
    maxBuffer: config.audit.buffer,
    anonymousPerSecond: config.audit.anonymousPerSecond,
    onError: (message, error) => app.log.warn({ err: summary(error) }, message),
  });
  const metrics = new Metrics({
    auditBacklog: () => audit.stats.pending,
    auditDropped: () => audit.stats.dropped,
    auditSuppressed: () => audit.stats.suppressed,
    liveGrants: () => store.countLiveGrants(now()),
  });
  const expiry = new ExpiryWatcher({ store, audit, now });
  const pools = new UpstreamPools(config.upstreams.values());
  const hasher = new TokenHasher(config.secret ?? new Secret(randomBytes(32).toString("base64url")));
  const ctx: TokenContext = { config, store, hasher, audit, metrics, now };

  installErrorHandling(app);
  await app.register(async (api) => {
    api.addHook("onRequest", async (request, reply) => {
      reply.header(REQUEST_ID_HEADER, request.id);
    });
    // A refused request on the API is a security event: count it and audit it, then answer.
    api.addHook("onError", async (request, _reply, error) => {
      if (!(error instanceof BrokerError)) return;
      metrics.denial(error.code);
      audit.emit(
        auditEvent("denied", error.subject ?? null, request.id, now(), {
          code: error.code,
          rule: error.message,
          method: request.method,
          path: request.routeOptions.url ?? "",
        }),
      );
    });
    registerOpsRoutes(api, store, metrics);
    registerConsoleRoutes(api);
    registerTokenRoutes(api, {
      ctx,
      issuers: new KeyMatcher(
        config.issuers.flatMap((issuer) => (issuer.kind === "key" ? [[issuer.key, issuer] as const] : [])),
      ),
      oidc: new OidcVerifier(config.issuers.flatMap((issuer) => (issuer.kind === "oidc" ? [issuer] : []))),
    });
    registerAdminRoutes(api, {
      ctx: {
        config,
        store,
        audit,
        metrics,
        now,
        cutoffMarginMs: options.cutoffMarginMs ?? DEFAULTS.revocationCutoffMarginMs,
      },
      admins: new KeyMatcher(config.admins.map((admin) => [admin.key, admin] as const)),
    });
  });
  proxy = createProxyHandler({
    config,
    store,
    hasher,
    audit,
    pools,
    metrics,
    now,
    requestId: nextRequestId,
    logError: (error, requestId) => app.log.error({ err: summary(error), requestId }, "unexpected error"),
    closing: () => closing,
  });
  await app.ready();

  return {
    app,
    audit,
    metrics,
    expiry,
    close: async () => {
      closing = true;
      await app.close();
      await expiry.stop();
      await pools.close();
      await audit.close();
    },
  };
};

/** HTTP/1.1 requires Host (RFC 9112 §3.2); HTTP/1.0 may omit it. */
const missingHost = (req: IncomingMessage): boolean =>
  req.headers.host === undefined && req.httpVersionMajor === 1 && req.httpVersionMinor >= 1;

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
