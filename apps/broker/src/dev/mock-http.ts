import type { ServerResponse } from "node:http";

/** What the mock upstream and its fault paths answer with. */
export const sendJson = (res: ServerResponse, status: number, body: unknown): undefined => {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
  return undefined;
};

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export const startSse = (res: ServerResponse) =>
  res.writeHead(200, {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    connection: "keep-alive",
  });
