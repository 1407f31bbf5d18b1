import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Writable } from "node:stream";
import Fastify, { type FastifyInstance, LogController } from "fastify";
import type { BrokerConfig } from "../config/types.js";
import { BrokerError } from "../errors.js";
import { endSocketWithError, sendError, writeError } from "./error-response.js";
import { clientErrorHandler } from "./errors-plugin.js";

/** Largest JSON body on the /v1 API; proxied bodies have their own limit. */
const API_BODY_LIMIT = 64 * 1024;

export interface AppOptions {
  readonly config: BrokerConfig;
  readonly logStream?: Writable;
  readonly requestId: () => string;
  /** Serves a request off the framework (the proxy's hot path) and says so, or returns false. */
  readonly proxy: (req: IncomingMessage, res: ServerResponse) => boolean;
}

/**
 * The fastify instance on a node:http server tuned for the broker: its timeouts checked every
 * 500 ms, the proxy's requests taken before the router, and the refusals node would answer with
 * an empty body of its own (no Host, an unknown Expect, CONNECT) answered with the envelope.
 */
export const createApp = (options: AppOptions): FastifyInstance => {
  const { config } = options;
  const nextRequestId = options.requestId;
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
          if (!options.proxy(req, res)) handler(req, res);
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
  return app;
};

/** HTTP/1.1 requires Host (RFC 9112 §3.2); HTTP/1.0 may omit it. */
const missingHost = (req: IncomingMessage): boolean =>
  req.headers.host === undefined && req.httpVersionMajor === 1 && req.httpVersionMinor >= 1;
