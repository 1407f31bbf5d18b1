import type { IncomingMessage } from "node:http";
import { BrokerError } from "../errors.js";

/**
 * Reads a request body into memory, up to `limit` bytes, for the scopes whose body constraints
 * must be checked before anything is forwarded. A declared or actual length above the limit is
 * a 413 before more than the limit is held.
 */
export const readBody = (req: IncomingMessage, limit: number): Promise<Buffer> => {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit) {
    return Promise.reject(tooLarge(limit));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.resume(); // discard the rest; the answer closes the connection
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onError = (error: Error) => {
      cleanup();
      reject(
        new BrokerError("bad_request", `the request body could not be read (${error.message.slice(0, 60)})`),
      );
    };
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("aborted", onAborted);
    };
    const onAborted = () => onError(new Error("aborted"));
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("aborted", onAborted);
  });
};

const tooLarge = (limit: number) =>
  new BrokerError(
    "payload_too_large",
    `the request body is larger than ${limit} bytes (proxy.max_body_bytes)`,
    {
      connection: "close",
    },
  );
