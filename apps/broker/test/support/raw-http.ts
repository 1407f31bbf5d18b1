import { request } from "node:http";

export interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/**
 * A request with exactly the headers given, which fetch refuses to send (Connection,
 * Keep-Alive, Transfer-Encoding, repeated headers…). Header values may be arrays.
 */
export const rawRequest = (
  url: string,
  options: {
    method?: string;
    headers?: Record<string, string | string[]>;
    body?: string | Buffer;
    path?: string;
  },
): Promise<RawResponse> =>
  new Promise((resolve, reject) => {
    const target = new URL(url);
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        method: options.method ?? "GET",
        path: options.path ?? `${target.pathname}${target.search}`,
        // Node's client sends a DELETE/OPTIONS body with no framing at all; frame it explicitly.
        headers:
          options.body !== undefined && !hasFraming(options.headers)
            ? { ...options.headers, "content-length": String(Buffer.byteLength(options.body)) }
            : options.headers,
        agent: false,
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on("data", (chunk: Buffer) => parts.push(chunk));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(parts).toString("utf8"),
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });

const hasFraming = (headers: Record<string, string | string[]> | undefined): boolean =>
  Object.keys(headers ?? {}).some((name) =>
    ["content-length", "transfer-encoding"].includes(name.toLowerCase()),
  );
