import type { ServerResponse } from "node:http";
import { errorEnvelope, REQUEST_ID_HEADER } from "@perishable/protocol";
import type { BrokerError } from "../errors.js";

/** The error envelope on a raw response (the proxy's path does not go through fastify). */
export const writeError = (res: ServerResponse, error: BrokerError, requestId: string): void => {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(errorEnvelope(error.code, error.message, requestId));
  res.writeHead(error.status, {
    ...error.headers,
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    [REQUEST_ID_HEADER]: requestId,
  });
  res.end(body);
};
