import type { IncomingMessage, ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import { ERROR_CATALOG, type ErrorCode, errorEnvelope, REQUEST_ID_HEADER } from "@perishable/protocol";
import type { Dispatcher, Pool } from "undici";
import { forwardResponseHeaders } from "./headers.js";
import { type Usage, UsageSniffer } from "./usage.js";

export interface ForwardOutcome {
  /** The status the client saw: the upstream's, ours on failure, 499 when the client left. */
  readonly status: number;
  /** From dispatch to the end of the upstream response (ms). */
  readonly upstreamMs: number;
  readonly error?: "upstream_timeout" | "upstream_error" | "client_closed";
  /** Model and token usage, when the response said. */
  readonly usage?: Usage | undefined;
}

export interface ForwardRequest {
  readonly pool: Pool;
  readonly upstreamName: string;
  readonly method: Dispatcher.HttpMethod;
  /** Path and query on the upstream, exactly as it will be sent. */
  readonly path: string;
  readonly headers: string[];
  readonly body: Buffer | Readable | null;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly requestId: string;
  /** The upstream's secrets: an error body that echoes one has it replaced before the client sees it. */
  readonly secrets: readonly Buffer[];
  readonly onDone: (outcome: ForwardOutcome) => void;
}

/** Error bodies are held (up to this size) so a secret echoed in them can be scrubbed. */
const MAX_HELD_ERROR_BODY = 1024 * 1024;

const TIMEOUTS = new Set(["UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT", "UND_ERR_CONNECT_TIMEOUT"]);

/**
 * Streams one request to the upstream and its response back, with no buffering: each chunk the
 * upstream sends is written to the client as it arrives (SSE events reach the agent one by
 * one), backpressure pauses the upstream when the client reads slowly, and a client that goes
 * away aborts the upstream request. This is undici's dispatch API directly: no stream pipeline,
 * no AbortController, one small object per request.
 */
export const forward = (request: ForwardRequest): void => {
  const handler = new ForwardHandler(request);
  request.pool.dispatch(
    { path: request.path, method: request.method, headers: request.headers, body: request.body },
    handler as unknown as Dispatcher.DispatchHandler,
  );
};

/**
 * undici's raw (legacy) handler interface: headers arrive as the raw Buffer pairs the parser saw,
 * so nothing is converted to an object that would be converted back; returning false from
 * onData pauses the upstream until the client drains.
 */
class ForwardHandler {
  readonly #r: ForwardRequest;
  readonly #start = performance.now();
  #abort: ((reason?: Error) => void) | undefined;
  #resume: (() => void) | undefined;
  #status = 0;
  #finished = false;
  #clientGone = false;
  #sniffer: UsageSniffer | undefined;
  /** An error answer held for scrubbing: its headers and body so far. */
  #held: { headers: string[]; chunks: Buffer[]; size: number } | undefined;

  constructor(request: ForwardRequest) {
    this.#r = request;
    request.res.once("close", () => {
      if (this.#finished) return;
      this.#clientGone = true;
      this.#abort?.(new Error("client closed the connection"));
    });
  }

  onConnect(abort: (reason?: Error) => void): void {
    this.#abort = abort;
    if (this.#clientGone) abort(new Error("client closed the connection"));
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true; // 1xx: the final answer follows
    this.#status = statusCode;
    this.#resume = resume;
    const { headers, contentType, contentEncoding } = forwardResponseHeaders(
      rawHeaders,
      REQUEST_ID_HEADER,
      this.#r.requestId,
    );
    this.#sniffer = UsageSniffer.for(contentType, contentEncoding);
    if (statusCode >= 400 && this.#r.secrets.length > 0 && !contentEncoding) {
      // Errors are small and not streamed: hold the body, scrub it, then send it with its new length.
      this.#held = { headers: dropHeader(headers, "content-length"), chunks: [], size: 0 };
      return true;
    }
    try {
      this.#r.res.writeHead(statusCode, headers);
    } catch (error) {
      this.#abort?.(error as Error);
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.#sniffer?.feed(chunk);
    const held = this.#held;
    if (held) {
      held.chunks.push(chunk);
      held.size += chunk.length;
      if (held.size > MAX_HELD_ERROR_BODY) this.#abort?.(new Error("upstream error body too large to scrub"));
      return true;
    }
    const { res } = this.#r;
    if (res.write(chunk)) return true;
    res.once("drain", () => this.#resume?.());
    return false;
  }

  onComplete(): void {
    const held = this.#held;
    if (held) {
      const body = scrub(Buffer.concat(held.chunks, held.size), this.#r.secrets);
      this.#r.res.writeHead(this.#status, [...held.headers, "content-length", String(body.length)]);
      this.#r.res.end(body);
    } else {
      this.#r.res.end();
    }
    this.#finish({
      status: this.#status,
      upstreamMs: performance.now() - this.#start,
      usage: this.#sniffer?.result(),
    });
  }

  onError(error: Error): void {
    const upstreamMs = performance.now() - this.#start;
    const { res } = this.#r;
    if (this.#clientGone) {
      this.#finish({ status: 499, upstreamMs, error: "client_closed" });
      return;
    }
    const code: ErrorCode = TIMEOUTS.has((error as { code?: string }).code ?? "")
      ? "upstream_timeout"
      : "upstream_error";
    if (res.headersSent) {
      // Mid-stream: the status line is gone; cutting the connection is the only honest signal.
      res.destroy();
      this.#finish({ status: this.#status, upstreamMs, error: code });
      return;
    }
    const message =
      code === "upstream_timeout"
        ? `upstream ${this.#r.upstreamName} did not answer in time`
        : `upstream ${this.#r.upstreamName} failed (${describe(error)})`;
    const status = ERROR_CATALOG[code].status;
    res.writeHead(status, {
      "content-type": "application/json; charset=utf-8",
      [REQUEST_ID_HEADER]: this.#r.requestId,
    });
    res.end(JSON.stringify(errorEnvelope(code, message, this.#r.requestId)));
    this.#finish({ status, upstreamMs, error: code });
  }

  onUpgrade(): void {
    this.onError(new Error("the upstream switched protocols"));
  }

  #finish(outcome: ForwardOutcome): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#r.onDone(outcome);
  }
}

/** A short, safe description of a transport error: its code, never its message or a URL. */
const describe = (error: Error): string => {
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && /^[A-Z0-9_]{2,40}$/.test(code) ? code : "connection error";
};

const dropHeader = (flat: string[], name: string): string[] => {
  const out: string[] = [];
  for (let i = 0; i < flat.length; i += 2)
    if (flat[i]!.toLowerCase() !== name) out.push(flat[i]!, flat[i + 1]!);
  return out;
};

const REDACTED = Buffer.from("[redacted by perishable]");

/** Every occurrence of every secret replaced. */
export const scrub = (body: Buffer, secrets: readonly Buffer[]): Buffer => {
  let out = body;
  for (const secret of secrets) {
    if (secret.length === 0 || out.indexOf(secret) === -1) continue;
    const parts: Buffer[] = [];
    let from = 0;
    for (let at = out.indexOf(secret); at !== -1; at = out.indexOf(secret, from)) {
      parts.push(out.subarray(from, at), REDACTED);
      from = at + secret.length;
    }
    parts.push(out.subarray(from));
    out = Buffer.concat(parts);
  }
  return out;
};
