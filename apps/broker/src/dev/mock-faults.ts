import type { IncomingMessage, ServerResponse } from "node:http";
import { brotliCompressSync, gzipSync } from "node:zlib";
import { sendJson, sleep, startSse } from "./mock-http.js";

/** Fault paths for tests: never answer, drop the connection, answer garbage, or leak a key. */
export const FAULTS = ["/hang", "/reset", "/malformed", "/truncated", "/leak-key"];

export const fault = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<undefined> => {
  if (path.includes("/leak-key")) return leakKey(req, res, path);
  if (path.includes("/reset")) {
    req.socket.destroy();
    return undefined;
  }
  if (path.includes("/malformed")) {
    // Not HTTP at all, then gone.
    req.socket.end("HTTP/1.1 ???\r\nthis is not a header\r\n\r\n");
    return undefined;
  }
  if (path.includes("/truncated")) {
    // Promises 1,000 bytes of SSE, sends a few events, then drops the connection.
    res.writeHead(200, { "content-type": "text/event-stream", "content-length": "1000" });
    res.write('data: {"choices":[{"delta":{"content":"partial"}}]}\n\n');
    setTimeout(() => req.socket.destroy(), 50);
    return undefined;
  }
  return undefined; // "/hang": never answer
};

/**
 * An upstream that echoes the credential it was sent: in an error body (`/leak-key`), a 2xx body
 * (`/ok`), response headers (`/header`), a gzip or brotli body (`/gzip`, `/br`), an encoding
 * nobody can read (`/weird`), or an SSE stream that splits the key across two chunks (`/sse`).
 */
const leakKey = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<undefined> => {
  const presented = String(req.headers.authorization ?? req.headers["x-api-key"] ?? "");
  const key = presented.replace(/^Bearer\s+/i, "");
  const body = JSON.stringify({ error: { message: `Incorrect API key provided: ${presented}` } });
  const variant = path.slice(path.indexOf("/leak-key") + "/leak-key".length);
  switch (variant) {
    case "/ok":
      return sendJson(res, 200, { echoed: key, again: presented });
    case "/header":
      res.writeHead(200, {
        "content-type": "application/json",
        "www-authenticate": `Bearer realm="api", error_description="key ${key} is not allowed here"`,
        "x-debug-auth": presented,
      });
      res.end("{}");
      return undefined;
    case "/gzip":
    case "/br": {
      const packed = variant === "/gzip" ? gzipSync(body) : brotliCompressSync(body);
      res.writeHead(200, { "content-type": "application/json", "content-encoding": variant.slice(1) });
      res.end(packed);
      return undefined;
    }
    case "/weird":
      res.writeHead(200, { "content-type": "application/json", "content-encoding": "x-secret-sauce" });
      res.end(body);
      return undefined;
    case "/sse": {
      startSse(res);
      const event = `data: {"choices":[{"delta":{"content":"the key is ${key}"}}]}\n\n`;
      const cut = event.indexOf(key) + Math.floor(key.length / 2);
      res.write(event.slice(0, cut));
      await sleep(30);
      res.write(event.slice(cut));
      await sleep(30);
      res.end("data: [DONE]\n\n");
      return undefined;
    }
    default:
      return sendJson(res, 401, {
        error: { message: `Incorrect API key provided: ${presented}`, type: "invalid_request_error" },
      });
  }
};
