import type { IncomingMessage, ServerResponse } from "node:http";
import type { Readable, Transform } from "node:stream";
import { createBrotliDecompress, createGunzip, createInflate } from "node:zlib";
import { ERROR_CATALOG, type ErrorCode, errorEnvelope, REQUEST_ID_HEADER } from "@perishable/protocol";
import type { Dispatcher, Pool } from "undici";
import { forwardResponseHeaders } from "./headers.js";
import type { BodyRewriter } from "./mcp-rewrite.js";
import type { Scrubber, Secrets } from "./scrub.js";
import { type Usage, UsageSniffer } from "./usage.js";

export interface ForwardOutcome {
  /** The status the client saw: the upstream's, ours on failure, 499 when the client left. */
  readonly status: number;
  /** From dispatch to the end of the upstream response (ms). */
  readonly upstreamMs: number;
  readonly error?: "upstream_timeout" | "upstream_error" | "client_closed" | "cut";
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
  /** The upstream's secrets: masked in every response header and body before the client sees them. */
  readonly secrets: Secrets;
  readonly onDone: (outcome: ForwardOutcome) => void;
  /** Headers of the broker's own to add to the upstream's answer (name, value, …). */
  readonly addHeaders?: readonly string[];
  /** Changes the answer's headers (an MCP session id sealed for the lineage). */
  readonly mapResponseHeaders?: (headers: string[]) => string[];
  /** Rewrites the answer's body (MCP tool lists), chosen by its content type. */
  readonly rewrite?: (contentType: string | undefined) => BodyRewriter | undefined;
}

const TIMEOUTS = new Set(["UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT", "UND_ERR_CONNECT_TIMEOUT"]);

/** Encodings the broker can read (to scrub them); the broker asks for none, so these are rare. */
const DECODERS: Readonly<Record<string, () => Transform>> = {
  gzip: () => createGunzip(),
  "x-gzip": () => createGunzip(),
  deflate: () => createInflate(),
  br: () => createBrotliDecompress(),
};

/**
 * Streams one request to the upstream and its response back, with no buffering: each chunk the
 * upstream sends is written to the client as it arrives (SSE events reach the agent one by
 * one), backpressure pauses the upstream when the client reads slowly, and a client that goes
 * away aborts the upstream request. This is undici's dispatch API directly: no stream pipeline,
 * no AbortController, one small object per request.
 */
export const forward = (request: ForwardRequest): ((error: CutError) => void) => {
  const handler = new ForwardHandler(request);
  request.pool.dispatch(
    { path: request.path, method: request.method, headers: request.headers, body: request.body },
    handler as unknown as Dispatcher.DispatchHandler,
  );
  return (error) => handler.cut(error);
};

/** Why a live answer is cut: the broker's code and message for the client. */
export interface CutError {
  readonly code: ErrorCode;
  readonly message: string;
}

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
  #cutBy: CutError | undefined;
  #contentType: string | undefined;
  #sniffer: UsageSniffer | undefined;
  #scrubber: Scrubber | undefined;
  #rewriter: BodyRewriter | undefined;
  /** A compressed answer is decoded (to be scrubbed and read) and sent on uncompressed. */
  #decoder: Transform | undefined;

  constructor(request: ForwardRequest) {
    this.#r = request;
    request.res.once("close", () => {
      if (this.#finished) return;
      this.#clientGone = true;
      this.#abort?.(new Error("client closed the connection"));
    });
  }

  /**
   * Ends the answer now (its authority was revoked or ended): the upstream request is aborted; the
   * client gets the refusal if nothing was sent yet, an SSE stream a last `event: error` with the
   * envelope, anything else a cut connection.
   */
  cut(error: CutError): void {
    if (this.#finished || this.#cutBy) return;
    this.#cutBy = error;
    this.#abort?.(new Error("cut by the broker"));
  }

  onConnect(abort: (reason?: Error) => void): void {
    this.#abort = abort;
    if (this.#cutBy) abort(new Error("cut by the broker"));
    if (this.#clientGone) abort(new Error("client closed the connection"));
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true; // 1xx: the final answer follows
    this.#status = statusCode;
    this.#resume = resume;
    const { secrets } = this.#r;
    const forwarded = forwardResponseHeaders(rawHeaders, REQUEST_ID_HEADER, this.#r.requestId, secrets);
    let headers = this.#r.mapResponseHeaders
      ? this.#r.mapResponseHeaders(forwarded.headers)
      : forwarded.headers;
    const encoding = forwarded.contentEncoding?.trim().toLowerCase();
    if (encoding && encoding !== "identity") {
      const decoder = DECODERS[encoding];
      if (!decoder) {
        this.#abort?.(new UnreadableAnswer(encoding));
        return false;
      }
      this.#decoder = this.#decode(decoder());
      headers = dropHeaders(headers, ["content-encoding", "content-length"]);
    }
    this.#sniffer = UsageSniffer.for(forwarded.contentType, undefined);
    this.#contentType = forwarded.contentType;
    this.#rewriter = this.#r.rewrite?.(forwarded.contentType);
    if (this.#rewriter) headers = dropHeaders(headers, ["content-length"]);
    if (!secrets.empty) this.#scrubber = secrets.stream();
    if (this.#r.addHeaders) headers = [...headers, ...this.#r.addHeaders];
    try {
      this.#r.res.writeHead(statusCode, headers);
      // An event stream may stay quiet for long (an MCP session's GET stream): its headers go now.
      if (forwarded.contentType?.startsWith("text/event-stream")) this.#r.res.flushHeaders();
    } catch (error) {
      this.#abort?.(error as Error);
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.#decoder) {
      if (this.#decoder.write(chunk)) return true;
      this.#decoder.once("drain", () => this.#resume?.());
      return false;
    }
    return this.#send(chunk);
  }

  onComplete(): void {
    if (this.#decoder) {
      this.#decoder.end();
      return; // the decoder's end completes the answer
    }
    this.#complete();
  }

  /** Writes one chunk of the (decoded) body: usage read, secrets masked. False: the client is full. */
  #send(chunk: Buffer): boolean {
    this.#sniffer?.feed(chunk);
    const rewritten = this.#rewriter ? this.#rewriter.push(chunk) : chunk;
    const out = this.#scrubber ? this.#scrubber.push(rewritten) : rewritten;
    const { res } = this.#r;
    if (out.length === 0 || res.write(out)) return true;
    res.once("drain", () => (this.#decoder ? this.#decoder.resume() : this.#resume?.()));
    return false;
  }

  #complete(): void {
    const rewritten = this.#rewriter?.end();
    const last =
      rewritten && rewritten.length > 0
        ? this.#scrubber
          ? this.#scrubber.push(rewritten)
          : rewritten
        : undefined;
    const rest = this.#scrubber?.end();
    const tail = last && rest ? Buffer.concat([last, rest]) : (last ?? rest);
    if (tail && tail.length > 0) this.#r.res.end(tail);
    else this.#r.res.end();
    this.#finish({
      status: this.#status,
      upstreamMs: performance.now() - this.#start,
      usage: this.#sniffer?.result(),
    });
  }

  #endCut(cut: CutError): void {
    const { res } = this.#r;
    const envelope = JSON.stringify(errorEnvelope(cut.code, cut.message, this.#r.requestId));
    if (!res.headersSent) {
      res.writeHead(ERROR_CATALOG[cut.code].status, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(envelope),
        [REQUEST_ID_HEADER]: this.#r.requestId,
      });
      res.end(envelope);
    } else if (this.#contentType?.startsWith("text/event-stream")) {
      res.end(`event: error\ndata: ${envelope}\n\n`);
    } else res.destroy();
  }

  #decode(decoder: Transform): Transform {
    decoder.on("data", (chunk: Buffer) => {
      if (!this.#send(chunk)) decoder.pause();
    });
    decoder.once("end", () => this.#complete());
    decoder.once("error", (error) => {
      this.#abort?.(error);
      this.onError(error);
    });
    return decoder;
  }

  onError(error: Error): void {
    const upstreamMs = performance.now() - this.#start;
    const { res } = this.#r;
    if (this.#clientGone) {
      this.#finish({ status: 499, upstreamMs, error: "client_closed" });
      return;
    }
    if (this.#cutBy) {
      this.#decoder?.destroy();
      this.#endCut(this.#cutBy);
      this.#finish({
        status: res.headersSent ? this.#status : ERROR_CATALOG[this.#cutBy.code].status,
        upstreamMs,
        error: "cut",
      });
      return;
    }
    this.#decoder?.destroy();
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
        : error instanceof UnreadableAnswer
          ? `upstream ${this.#r.upstreamName} answered with Content-Encoding ${error.encoding}, which the broker cannot check for its secrets`
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

const dropHeaders = (flat: string[], names: readonly string[]): string[] => {
  const out: string[] = [];
  for (let i = 0; i < flat.length; i += 2)
    if (!names.includes(flat[i]!.toLowerCase())) out.push(flat[i]!, flat[i + 1]!);
  return out;
};

/** An answer in an encoding the broker cannot decode, so cannot scrub: refused, never passed on. */
class UnreadableAnswer extends Error {
  constructor(readonly encoding: string) {
    super("unreadable content encoding");
  }
}
