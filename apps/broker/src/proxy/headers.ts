import type { UpstreamConfig } from "../config/types.js";
import { REROUTING_HEADERS } from "../policy/headers.js";
import type { Secrets } from "./scrub.js";

/**
 * Request headers never forwarded: hop-by-hop headers (RFC 9110 §7.6.1), the client's
 * credentials (all three places a token can be), headers that would let the client speak for
 * the broker's network position or override the method after the scope check, and `expect`.
 */
const DROP_REQUEST = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "expect",
  // Upstream answers come uncompressed so the broker can read model and usage from them.
  "accept-encoding",
  "authorization",
  "x-api-key",
  "api-key",
  // A DPoP proof is for the broker (it names the broker's URL and the prs_ token's hash).
  "dpop",
  "cookie",
  "forwarded",
  "x-forwarded-for",
  "x-forwarded-host",
  "x-forwarded-proto",
  "x-forwarded-port",
  "x-forwarded-prefix",
  "x-real-ip",
  "x-http-method-override",
  "x-http-method",
  "x-method-override",
  // The broker's own request id is the broker's: a client's would forge the correlation.
  "x-perishable-request-id",
]);

/** Response headers never passed back: hop-by-hop, plus anything the broker sets itself. */
const DROP_RESPONSE = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/**
 * Builds the forwarded request headers as a flat [name, value, …] list (what undici takes
 * without copying). The upstream's own auth header and configured headers are set last, and a
 * client header of the same name is dropped, so the client cannot override either.
 */
export const forwardRequestHeaders = (
  rawHeaders: readonly string[],
  upstream: UpstreamConfig,
  authValue: string | undefined,
  keepContentLength: boolean,
  /** Set when the broker re-serialised the body: the client's Content-Type gives way to this. */
  contentType?: string,
): string[] => {
  const out: string[] = [];
  let connectionTokens: Set<string> | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.length === 10 && rawHeaders[i]!.toLowerCase() === "connection") {
      connectionTokens ??= new Set();
      for (const token of rawHeaders[i + 1]!.split(",")) connectionTokens.add(token.trim().toLowerCase());
    }
  }
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const lower = name.toLowerCase();
    if (DROP_REQUEST.has(lower) || connectionTokens?.has(lower)) continue;
    if (REROUTING_HEADERS.has(lower) && !upstream.forwardHeaders.has(lower)) continue;
    if (!keepContentLength && lower === "content-length") continue;
    if (contentType !== undefined && lower === "content-type") continue;
    if (upstream.reservedHeaders.has(lower)) continue;
    out.push(name, rawHeaders[i + 1]!);
  }
  if (contentType !== undefined) out.push("content-type", contentType);
  for (const [name, value] of upstream.headers) out.push(name, value);
  if (upstream.auth && authValue !== undefined) out.push(upstream.auth.header, authValue);
  return out;
};

/**
 * Upstream response headers (undici's raw Buffer pairs) → a flat list for `writeHead`, without
 * hop-by-hop headers or the upstream's own request id header, with the broker's request id added
 * and the upstream's secrets masked in every value; plus the two headers the usage reader looks at.
 */
export const forwardResponseHeaders = (
  rawHeaders: readonly Buffer[],
  requestIdHeader: string,
  requestId: string,
  secrets: Secrets,
): { headers: string[]; contentType: string | undefined; contentEncoding: string | undefined } => {
  const out: string[] = [];
  let connection: string | undefined;
  let contentType: string | undefined;
  let contentEncoding: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toString("latin1");
    const lower = name.toLowerCase();
    // An upstream may echo its credential in a header (a WWW-Authenticate description, debug headers).
    const value = secrets.header(rawHeaders[i + 1]!.toString("latin1"));
    if (lower === "connection") connection = value;
    if (DROP_RESPONSE.has(lower) || lower === requestIdHeader) continue;
    if (lower === "content-type") contentType = value;
    else if (lower === "content-encoding") contentEncoding = value;
    out.push(name, value);
  }
  if (connection) {
    // Headers the upstream named in Connection are hop-by-hop too (rare: a second pass only then).
    const named = new Set(connection.split(",").map((t) => t.trim().toLowerCase()));
    for (let i = out.length - 2; i >= 0; i -= 2) if (named.has(out[i]!.toLowerCase())) out.splice(i, 2);
  }
  out.push(requestIdHeader, requestId);
  return { headers: out, contentType, contentEncoding };
};
