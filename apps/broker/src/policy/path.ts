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
    if (segment.includes("%")) {
      const problem = decodedProblem(segment);
      if (problem) return { ok: false, reason: problem };
    }
  }
  // A token pasted into the URL would reach the upstream and every log on the way.
  if (raw.includes("prs_") && TOKEN_IN_TEXT.test(raw)) return { ok: false, reason: TOKEN_IN_URL };
  return { ok: true, path: raw };
};

/** A `prs_` token inside a path or query (the shape only: no look-up). */
const TOKEN_IN_TEXT = /prs_[0-9a-z]{10}_[A-Za-z0-9_-]{20,}/;
const TOKEN_IN_URL = "the URL holds a prs_ token: send it in the Authorization header, never in the URL";

/**
 * What a lenient upstream could make of a segment's escapes: bytes that are not UTF-8 (overlong
 * `%C0%AE` for `.`, stray continuation bytes, `%FF`) are decoded by some servers into `.` or `/`,
 * and Unicode compatibility forms (fullwidth `．`, `／`, the one-dot leader `․`) become them
 * under NFKC. Either is refused; the path itself is still forwarded as sent.
 */
const decodedProblem = (segment: string): string | undefined => {
  let decoded: string;
  try {
    decoded = decodeURIComponent(segment);
  } catch {
    return "percent-escapes in the path that are not UTF-8";
  }
  const normalized = decoded.normalize("NFKC");
  if (normalized === "." || normalized === ".." || /[/\\%?#;]/.test(normalized)) {
    return "percent-escapes in the path that decode to a separator or dot segment";
  }
  return undefined;
};

/** Query parameters some servers and frameworks read as the request's method (`?_method=DELETE`). */
const METHOD_OVERRIDES = new Set([
  "_method",
  "__method",
  "_httpmethod",
  "x-http-method-override",
  "x-http-method",
  "x-method-override",
]);

/**
 * Why a query string cannot be forwarded: a method override (when the scopes restrict methods,
 * the method they checked must be the one the upstream runs) or a token in it.
 */
export const queryProblem = (query: string, methodsRestricted: boolean): string | undefined => {
  if (query.includes("prs_") && TOKEN_IN_TEXT.test(query)) return TOKEN_IN_URL;
  if (!methodsRestricted) return undefined;
  for (const pair of query.split("&")) {
    const eq = pair.indexOf("=");
    let name = eq === -1 ? pair : pair.slice(0, eq);
    try {
      name = decodeURIComponent(name.replaceAll("+", " "));
    } catch {
      // An undecodable name is compared as sent.
    }
    if (METHOD_OVERRIDES.has(name.trim().toLowerCase())) {
      return `the query parameter ${name.slice(0, 32)} would override the method the scope checked`;
    }
  }
  return undefined;
};
