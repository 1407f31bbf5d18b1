import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { FAULTS, fault } from "./mock-faults.js";
import { sendJson, sleep, startSse } from "./mock-http.js";

/** One request as it reached the mock: what a test asserts on. */
export interface RecordedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
}

export interface MockUpstreamOptions {
  /** Chunks in a streamed answer (content deltas). */
  readonly chunks?: number;
  /** Pause between streamed chunks (ms). */
  readonly chunkDelayMs?: number;
  /**
   * Called after the first streamed chunk has been written; the rest waits for it. A test that
   * releases the gate only when its client has seen the first chunk proves nothing buffers it.
   */
  readonly streamGate?: () => Promise<void>;
  readonly host?: string;
  readonly port?: number;
  /** Keep a record of every request (default true; benchmarks turn it off). */
  readonly record?: boolean;
}

export interface MockUpstream {
  readonly url: string;
  readonly requests: RecordedRequest[];
  /** Responses the client side closed before the mock finished them. */
  readonly aborted: () => number;
  /** When the mock wrote the last chunk of its most recent stream (performance.now()). */
  readonly lastStreamEnd: () => number | undefined;
  close(): Promise<void>;
}

/**
 * A local stand-in for the OpenAI and Anthropic APIs: chat completions, messages, embeddings and
 * models, as JSON or as SSE streams, responses and count_tokens as JSON, plus an echo for any
 * other path. It records every request.
 * `perishable dev` uses it when no real API key is set; the tests and benchmarks use it always.
 */
export const startMockUpstream = async (options: MockUpstreamOptions = {}): Promise<MockUpstream> => {
  const requests: RecordedRequest[] = [];
  let lastStreamEnd: number | undefined;
  let aborted = 0;
  const chunks = options.chunks ?? 5;
  const delay = options.chunkDelayMs ?? 0;

  const server: Server = createServer((req, res) => {
    res.once("close", () => {
      if (!res.writableFinished) aborted += 1;
    });
    const parts: Buffer[] = [];
    req.on("data", (chunk: Buffer) => parts.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(parts).toString("utf8");
      if (options.record !== false)
        requests.push({ method: req.method ?? "", url: req.url ?? "", headers: { ...req.headers }, body });
      void route(req, res, body, { chunks, delay, gate: options.streamGate }).then(
        (ended) => {
          if (ended !== undefined) lastStreamEnd = ended;
        },
        () => res.destroy(),
      );
    });
  });

  await new Promise<void>((resolve) =>
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", resolve),
  );
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? "127.0.0.1"}:${port}`,
    requests,
    aborted: () => aborted,
    lastStreamEnd: () => lastStreamEnd,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
};

interface Streaming {
  readonly chunks: number;
  readonly delay: number;
  readonly gate: MockUpstreamOptions["streamGate"];
}

/** Answers one request; resolves to when its stream ended, if it streamed. */
const route = async (
  req: IncomingMessage,
  res: ServerResponse,
  raw: string,
  streaming: Streaming,
): Promise<number | undefined> => {
  const path = (req.url ?? "/").split("?")[0] ?? "/";
  if (FAULTS.some((fault) => path.includes(fault))) return fault(req, res, path);
  const json = parse(raw);
  const { chunks, delay, gate } = streaming;
  if (req.method === "POST" && path.endsWith("/chat/completions")) {
    return json.stream === true
      ? streamChat(res, json, chunks, delay, gate)
      : sendJson(res, 200, chatCompletion(json));
  }
  if (req.method === "POST" && path.endsWith("/responses")) return sendJson(res, 200, response(json));
  if (req.method === "POST" && path.endsWith("/messages/count_tokens")) {
    return sendJson(res, 200, { input_tokens: 9 });
  }
  if (req.method === "POST" && path.endsWith("/messages")) {
    return json.stream === true
      ? streamMessages(res, json, chunks, delay, gate)
      : sendJson(res, 200, message(json));
  }
  if (req.method === "POST" && path.endsWith("/embeddings")) {
    const vector = [0.1, 0.2, 0.3];
    const embedding =
      json.encoding_format === "base64"
        ? Buffer.from(new Float32Array(vector).buffer).toString("base64")
        : vector;
    return sendJson(res, 200, {
      object: "list",
      data: [{ object: "embedding", index: 0, embedding }],
      model: json.model ?? "text-embedding-3-small",
      usage: { prompt_tokens: 3, total_tokens: 3 },
    });
  }
  if (req.method === "GET" && path.endsWith("/models")) {
    return sendJson(res, 200, {
      object: "list",
      data: [{ id: "gpt-4o-mini", object: "model", owned_by: "mock" }],
    });
  }
  return sendJson(res, 200, { mock: true, method: req.method, path: req.url });
};

type Json = Record<string, unknown>;

const parse = (raw: string): Json => {
  try {
    const value: unknown = JSON.parse(raw);
    return value && typeof value === "object" ? (value as Json) : {};
  } catch {
    return {};
  }
};

const created = () => Math.floor(Date.now() / 1000);

const chatCompletion = (req: Json) => ({
  id: "chatcmpl-mock",
  object: "chat.completion",
  created: created(),
  model: req.model ?? "gpt-4o-mini",
  choices: [
    {
      index: 0,
      message: { role: "assistant", content: "Hello from the mock upstream." },
      finish_reason: "stop",
    },
  ],
  usage: { prompt_tokens: 9, completion_tokens: 6, total_tokens: 15 },
});

/** A Responses API answer (`POST /v1/responses`), with one output message. */
const response = (req: Json) => ({
  id: "resp_mock",
  object: "response",
  created_at: created(),
  status: "completed",
  model: req.model ?? "gpt-4o-mini",
  output: [
    {
      type: "message",
      id: "msg_mock",
      status: "completed",
      role: "assistant",
      content: [{ type: "output_text", text: "Hello from the mock upstream.", annotations: [] }],
    },
  ],
  usage: {
    input_tokens: 9,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: 6,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: 15,
  },
});

const message = (req: Json) => ({
  id: "msg_mock",
  type: "message",
  role: "assistant",
  model: req.model ?? "claude-sonnet-4-5",
  content: [{ type: "text", text: "Hello from the mock upstream." }],
  stop_reason: "end_turn",
  stop_sequence: null,
  usage: { input_tokens: 9, output_tokens: 6 },
});

const streamChat = async (
  res: ServerResponse,
  req: Json,
  chunks: number,
  delay: number,
  gate: (() => Promise<void>) | undefined,
): Promise<number> => {
  startSse(res);
  const model = req.model ?? "gpt-4o-mini";
  const event = (delta: Json, finish: string | null) =>
    `data: ${JSON.stringify({ id: "chatcmpl-mock", object: "chat.completion.chunk", created: created(), model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  for (let i = 0; i < chunks; i++) {
    res.write(
      event(i === 0 ? { role: "assistant", content: `chunk ${i} ` } : { content: `chunk ${i} ` }, null),
    );
    if (i === 0 && gate) await gate();
    if (delay > 0) await sleep(delay);
  }
  res.write(event({}, "stop"));
  const withUsage = (req.stream_options as Json | undefined)?.include_usage === true;
  if (withUsage) {
    res.write(
      `data: ${JSON.stringify({ id: "chatcmpl-mock", object: "chat.completion.chunk", created: created(), model, choices: [], usage: { prompt_tokens: 9, completion_tokens: chunks, total_tokens: 9 + chunks } })}\n\n`,
    );
  }
  const end = performance.now();
  res.end("data: [DONE]\n\n");
  return end;
};

const streamMessages = async (
  res: ServerResponse,
  req: Json,
  chunks: number,
  delay: number,
  gate: (() => Promise<void>) | undefined,
): Promise<number> => {
  startSse(res);
  const send = (type: string, data: Json) =>
    res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
  send("message_start", {
    message: {
      ...message(req),
      content: [],
      stop_reason: null,
      usage: { input_tokens: 9, output_tokens: 0 },
    },
  });
  send("content_block_start", { index: 0, content_block: { type: "text", text: "" } });
  for (let i = 0; i < chunks; i++) {
    send("content_block_delta", { index: 0, delta: { type: "text_delta", text: `chunk ${i} ` } });
    if (i === 0 && gate) await gate();
    if (delay > 0) await sleep(delay);
  }
  send("content_block_stop", { index: 0 });
  send("message_delta", {
    delta: { stop_reason: "end_turn", stop_sequence: null },
    usage: { output_tokens: chunks },
  });
  const end = performance.now();
  send("message_stop", {});
  res.end();
  return end;
};
