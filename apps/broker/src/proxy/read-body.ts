import type { IncomingMessage } from "node:http";
import { Readable } from "node:stream";
import { BrokerError } from "../errors.js";

/**
 * Reads a request body into memory, up to `limit` bytes, for the scopes whose body constraints
 * must be checked before anything is forwarded. A declared or actual length above the limit is
 * a 413 before more than the limit is held.
 */
export const readBody = async (req: IncomingMessage, limit: number): Promise<Buffer> => {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit) throw tooLarge(limit);
  const { body, complete } = await readUpTo(req, limit + 1);
  if (complete) return body;
  req.resume(); // discard the rest; the answer closes the connection
  throw tooLarge(limit);
};

const tooLarge = (limit: number) =>
  new BrokerError(
    "payload_too_large",
    `the request body is larger than ${limit} bytes (proxy.max_body_bytes)`,
    {
      connection: "close",
    },
  );

/**
 * Reads a body until it ends or `limit` bytes have come, whichever is first: a body of at most
 * `limit` bytes is then in memory before any upstream connection is lent to it, so an agent that
 * trickles its body holds nothing but its own socket (until listen.request_timeout). A longer one
 * is returned with `complete: false` and its socket paused, to be streamed on.
 */
export const readUpTo = (req: IncomingMessage, limit: number): Promise<{ body: Buffer; complete: boolean }> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (complete: boolean) => {
      cleanup();
      resolve({ body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size), complete });
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= limit) {
        req.pause();
        finish(false);
      }
    };
    const onEnd = () => finish(true);
    const onError = (error: Error) => {
      cleanup();
      reject(
        new BrokerError("bad_request", `the request body could not be read (${error.message.slice(0, 60)})`),
      );
    };
    const onAborted = () => onError(new Error("aborted"));
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("aborted", onAborted);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("aborted", onAborted);
  });

/**
 * The rest of a long body after its first part, as one stream for undici, cut when the client
 * sends nothing for `idleMs`: a stalled upload gives its upstream connection back.
 */
export const streamOn = (head: Buffer, req: IncomingMessage, idleMs: number): Readable => {
  const socket = req.socket;
  socket.setTimeout(idleMs, () => req.destroy(new Error("the request body stalled")));
  req.once("end", () => socket.setTimeout(0));
  req.once("close", () => socket.setTimeout(0));
  return Readable.from(
    (async function* () {
      yield head;
      for await (const chunk of req) yield chunk as Buffer;
    })(),
    { objectMode: false },
  );
};
