/**
 * Endpoint patterns as written in a scope: literal segments, `*` for exactly one segment,
 * `**` (only as a whole segment) for any number of segments, including none.
 *
 *   /v1/chat/completions       that path only
 *   /v1/files/*                /v1/files/abc, not /v1/files/abc/content
 *   /v1/files/**               /v1/files, /v1/files/abc, /v1/files/abc/content
 *
 * Patterns are matched against the raw (still percent-encoded) path after the proxy has
 * refused every ambiguous form, so what is matched is byte for byte what is forwarded.
 */
export const compileEndpointPattern = (pattern: string): RegExp => {
  if (!pattern.startsWith("/")) throw new TypeError(`endpoint pattern must start with "/": ${pattern}`);
  if (pattern === "/") return /^\/$/;
  let source = "^";
  for (const segment of pattern.split("/").slice(1)) {
    if (segment === "") throw new TypeError(`endpoint pattern has an empty segment: ${pattern}`);
    if (segment === "**") {
      source += "(?:/[^/]+)*"; // zero or more whole segments
    } else if (segment.includes("**")) {
      throw new TypeError(`"**" must be a whole segment: ${pattern}`);
    } else {
      source += `/${segment.split("*").map(escapeRegExp).join("[^/]+")}`;
    }
  }
  return new RegExp(`${source}$`);
};

/** Model globs: `*` matches any run of characters, everything else is literal. */
export const compileGlob = (glob: string): RegExp =>
  new RegExp(`^${glob.split("*").map(escapeRegExp).join(".*")}$`, "s");

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
