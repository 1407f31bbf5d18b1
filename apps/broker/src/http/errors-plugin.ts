import type { Socket } from "node:net";
import { ERROR_CATALOG, type ErrorCode } from "@perishable/protocol";
import type { FastifyError, FastifyInstance } from "fastify";
import { BrokerError } from "../errors.js";
import { StoreUnavailableError, UnreplicatedError } from "../store/types.js";
import { endSocketWithError, sendError } from "./error-response.js";

/** Fastify's own errors, as wire codes; anything else with a 4xx status is a bad request. */
const FASTIFY_CODES: Readonly<Record<string, readonly [ErrorCode, string]>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: ["payload_too_large", "the request body is too large"],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: ["bad_request", "the body must be application/json"],
  FST_ERR_CTP_EMPTY_JSON_BODY: ["bad_request", "the body is empty but content-type is application/json"],
  FST_ERR_CTP_INVALID_JSON_BODY: ["bad_request", "the body is not valid JSON"],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: ["bad_request", "content-length does not match the body"],
  FST_ERR_BAD_URL: ["bad_request", "the URL is malformed"],
};

/**
 * Every failure becomes the error envelope: BrokerErrors with their code, fastify's parser
 * errors as 4xx, store outages as 503, and anything unexpected as a 500 whose message says
 * nothing about internals (the details go to the log, which never holds request headers).
 */
export const installErrorHandling = (app: FastifyInstance): void => {
  app.setErrorHandler((error: FastifyError | Error, request, reply) => {
    if (error instanceof BrokerError) return sendError(request, reply, error);
    if (error instanceof StoreUnavailableError) {
      return sendError(
        request,
        reply,
        new BrokerError(
          "store_unavailable",
          error instanceof UnreplicatedError ? error.message : "the broker cannot reach its store",
        ),
      );
    }
    const fastifyCode = (error as FastifyError).code;
    const known = fastifyCode ? FASTIFY_CODES[fastifyCode] : undefined;
    if (known) return sendError(request, reply, new BrokerError(known[0], known[1]));
    const status = (error as FastifyError).statusCode;
    if (error instanceof SyntaxError || (status !== undefined && status >= 400 && status < 500)) {
      const code: ErrorCode = status === 413 ? "payload_too_large" : "bad_request";
      return sendError(
        request,
        reply,
        new BrokerError(
          code,
          error instanceof SyntaxError ? "the body is not valid JSON" : ERROR_CATALOG[code].summary,
        ),
      );
    }
    request.log.error({ err: error, requestId: request.id }, "unexpected error");
    return sendError(request, reply, new BrokerError("internal_error", "internal error"));
  });

  app.setNotFoundHandler((request, reply) =>
    sendError(
      request,
      reply,
      new BrokerError("not_found", `no route for ${request.method} ${routeOf(request.url)}`),
    ),
  );
};

/** The path of a URL for an error message: no query string (it may carry anything). */
const routeOf = (url: string): string => {
  const path = url.split("?", 1)[0]!;
  return path.length > 200 ? `${path.slice(0, 200)}…` : path;
};

/**
 * Requests Node's HTTP parser rejects never reach fastify: answer them with the envelope too,
 * and close the connection (after a parse error, the stream position is unknown).
 */
export const clientErrorHandler = (error: Error & { code?: string }, socket: Socket): void => {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const refusal =
    error.code === "ERR_HTTP_REQUEST_TIMEOUT"
      ? new BrokerError("bad_request", "the request took too long to arrive")
      : error.code === "HPE_HEADER_OVERFLOW"
        ? new BrokerError("headers_too_large", "the request headers are too large")
        : new BrokerError("bad_request", "malformed HTTP request");
  // A slow client may keep writing: the socket is closed once the answer is out.
  endSocketWithError(socket, refusal);
};
