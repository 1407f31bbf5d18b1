import { type ServerResponse, STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import { errorEnvelope, REQUEST_ID_HEADER } from "@perishable/protocol";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { BrokerError } from "../errors.js";

/**
 * The one way out for errors: every refusal becomes the envelope with the catalog's status, the
 * request id and the error's own headers, whether it leaves through a fastify route, a raw
 * node:http response (the proxy) or a socket the HTTP parser gave up on.
 */
export const errorResponse = (
  error: BrokerError,
  requestId: string,
): { status: number; headers: Record<string, string>; body: string } => {
  const body = JSON.stringify(errorEnvelope(error.code, error.message, requestId));
  return {
    status: error.status,
    headers: {
      ...error.headers,
      "content-type": "application/json; charset=utf-8",
      "content-length": String(Buffer.byteLength(body)),
      [REQUEST_ID_HEADER]: requestId,
    },
    body,
  };
};

/** On a fastify route. */
export const sendError = (request: FastifyRequest, reply: FastifyReply, error: BrokerError): FastifyReply => {
  const { status, headers, body } = errorResponse(error, request.id);
  return reply.code(status).headers(headers).send(body);
};

/** On a raw response (the proxy's path does not go through fastify); mid-answer, the connection is cut. */
export const writeError = (res: ServerResponse, error: BrokerError, requestId: string): void => {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const { status, headers, body } = errorResponse(error, requestId);
  res.writeHead(status, headers);
  res.end(body);
};

/** On a bare socket (before or instead of a request the parser could read): answer, then close. */
export const endSocketWithError = (socket: Socket, error: BrokerError, requestId = "none"): void => {
  const { status, headers, body } = errorResponse(error, requestId);
  const lines = Object.entries({ ...headers, connection: "close" }).map(
    ([name, value]) => `${name}: ${value}`,
  );
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${lines.join("\r\n")}\r\n\r\n${body}`, () =>
    socket.destroy(),
  );
};
