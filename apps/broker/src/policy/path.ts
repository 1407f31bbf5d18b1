/**
 * The proxy forwards the request path byte for byte, so it must refuse every path that an
 * upstream (or a server in front of it) could read differently from the way the scope check
 * reads it: dot segments, empty segments, backslashes, encoded separators and dots, double
 * encoding, control characters and `;` path parameters (`..;/` on some servers). Refusing
 * instead of normalising means there is exactly one reading of every path that gets through.
 */
export type PathCheck =
  | { readonly ok: true; readonly path: string }
  | { readonly ok: false; readonly reason: string };

export const MAX_PATH_LENGTH = 2048;

// RFC 3986 pchar without ";" plus "/" and "%" (escapes are checked one by one below).
const ALLOWED = /^[A-Za-z0-9\-._~!$&'()*+,=:@/%]*$/;
const ESCAPE = /%([0-9A-Fa-f]{2})?/g;

const FORBIDDEN_ESCAPES = new Set([
  0x2e /* . */, 0x2f /* / */, 0x5c /* \ */, 0x25 /* % */, 0x3b /* ; */, 0x3f /* ? */, 0x23 /* # */,
]);

export const checkProxyPath = (raw: string): PathCheck => {
  if (raw === "") return { ok: true, path: "/" };
  if (raw.length > MAX_PATH_LENGTH) return { ok: false, reason: "path too long" };
  if (raw.charCodeAt(0) !== 0x2f) return { ok: false, reason: "path must start with /" };
  if (!ALLOWED.test(raw)) return { ok: false, reason: "path contains a character that is not allowed" };
  if (raw.includes("//")) return { ok: false, reason: "empty path segment" };
  if (raw.includes("%")) {
    for (const match of raw.matchAll(ESCAPE)) {
      if (match[1] === undefined) return { ok: false, reason: "malformed percent-encoding" };
      const byte = Number.parseInt(match[1], 16);
      if (byte < 0x20 || byte === 0x7f || FORBIDDEN_ESCAPES.has(byte)) {
        return { ok: false, reason: "encoded separator, dot or control character in path" };
      }
    }
  }
  for (const segment of raw.split("/")) {
    if (segment === "." || segment === "..") return { ok: false, reason: "dot segment in path" };
  }
  return { ok: true, path: raw };
};
