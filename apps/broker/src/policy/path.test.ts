import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { checkProxyPath } from "./path.js";
import { compileEndpointPattern } from "./pattern.js";

/** Paths that must never pass, each a way some server or library reads a path differently. */
const HOSTILE_PATHS: ReadonlyArray<readonly [string, string]> = [
  ["/v1/../admin", "dot-dot segment"],
  ["/v1/./chat/completions", "dot segment"],
  ["/..", "dot-dot at the root"],
  ["/v1/chat/completions/..", "trailing dot-dot"],
  ["/v1//chat/completions", "empty segment"],
  ["//evil.example/v1", "protocol-relative"],
  ["/v1/%2e%2e/admin", "encoded dot-dot"],
  ["/v1/%2E%2E/admin", "encoded dot-dot, upper case"],
  ["/v1/.%2e/admin", "half-encoded dot-dot"],
  ["/v1/%2fadmin", "encoded slash"],
  ["/v1/%2Fadmin", "encoded slash, upper case"],
  ["/v1/%5cadmin", "encoded backslash"],
  ["/v1/\\admin", "backslash"],
  ["/v1/%252e%252e/admin", "double-encoded dot-dot"],
  ["/v1/%25", "encoded percent"],
  ["/v1/%", "truncated escape"],
  ["/v1/%2", "truncated escape"],
  ["/v1/%zz", "bad escape"],
  ["/v1/%00", "encoded NUL"],
  ["/v1/%0d%0aX-Injected:1", "encoded CRLF"],
  ["/v1/..;/admin", "path parameter dot-dot"],
  ["/v1/chat;x=1/completions", "path parameter"],
  ["/v1/%3b/x", "encoded semicolon"],
  ["/v1/%3f", "encoded question mark"],
  ["/v1/%23", "encoded hash"],
  ["v1/chat", "relative path"],
  ["/v1/chat completions", "space"],
  ["/v1/ch\u00e4t", "non-ASCII"],
  ["/v1/\u2025/admin", "two-dot leader"],
  [`/v1/${"a".repeat(2100)}`, "too long"],
];

describe("checkProxyPath", () => {
  it.each(HOSTILE_PATHS)("refuses %j (%s)", (path) => {
    expect(checkProxyPath(path).ok).toBe(false);
  });

  it.each([
    "/v1/chat/completions",
    "/v1/files/file-abc123/content",
    "/v1/models/gpt-4o-mini",
    "/v1/models/ft:gpt-4o:org:custom:id",
    "/v1/files/a%20b",
    "/v1/...",
    "/v1/a.b",
    "/",
  ])("accepts %j unchanged", (path) => {
    expect(checkProxyPath(path)).toEqual({ ok: true, path });
  });

  it("treats the empty rest as the root", () => {
    expect(checkProxyPath("")).toEqual({ ok: true, path: "/" });
  });

  it("lets nothing through that a URL parser would normalise into another path", () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom("v1", "..", ".", "", "%2e", "%2f", "a%2F", "%5C", "b", ";", "%25"), {
          maxLength: 6,
        }),
        (segments) => {
          const raw = `/${segments.join("/")}`;
          const checked = checkProxyPath(raw);
          if (!checked.ok) return;
          // What passes is already in normal form: WHATWG URL parsing leaves it as it is.
          expect(new URL(raw, "http://upstream.example").pathname).toBe(raw);
          expect(decodeURIComponent(raw).split("/")).not.toContain("..");
        },
      ),
    );
  });
});

describe("endpoint patterns", () => {
  const cases: ReadonlyArray<readonly [string, string, boolean]> = [
    ["/v1/chat/completions", "/v1/chat/completions", true],
    ["/v1/chat/completions", "/v1/chat/completions/", false],
    ["/v1/chat/completions", "/v1/chat/completionsX", false],
    ["/v1/chat/completions", "/V1/chat/completions", false],
    ["/v1/files/*", "/v1/files/abc", true],
    ["/v1/files/*", "/v1/files", false],
    ["/v1/files/*", "/v1/files/abc/content", false],
    ["/v1/files/**", "/v1/files", true],
    ["/v1/files/**", "/v1/files/abc/content", true],
    ["/v1/files/**", "/v1/filesX", false],
    ["/v1/*/content", "/v1/abc/content", true],
    ["/v1/models/gpt-*", "/v1/models/gpt-4o", true],
    ["/v1/models/gpt-*", "/v1/models/claude", false],
    ["/v1/a.b", "/v1/aXb", false],
    ["/", "/", true],
    ["/", "/x", false],
  ];
  it.each(cases)("%s matches %s: %s", (pattern, path, expected) => {
    expect(compileEndpointPattern(pattern).test(path)).toBe(expected);
  });

  it.each(["v1/x", "/v1//x", "/v1/a**"])("rejects the pattern %j", (pattern) => {
    expect(() => compileEndpointPattern(pattern)).toThrow(TypeError);
  });

  it("never matches a path the path check refuses, whatever the pattern", () => {
    const segment = fc.constantFrom("v1", "files", "*", "**", "chat", "completions");
    const rawSegment = fc.constantFrom(
      "v1",
      "files",
      "..",
      ".",
      "%2e%2e",
      "%2f",
      "chat",
      "completions",
      "",
      "x",
    );
    fc.assert(
      fc.property(
        fc.array(segment, { minLength: 1, maxLength: 4 }),
        fc.array(rawSegment, { minLength: 1, maxLength: 5 }),
        (p, r) => {
          const pattern = `/${p.join("/")}`;
          const raw = `/${r.join("/")}`;
          let matcher: RegExp;
          try {
            matcher = compileEndpointPattern(pattern);
          } catch {
            return;
          }
          if (matcher.test(raw)) {
            // A match is only ever acted on after checkProxyPath; but even on its own a pattern
            // can only match a dot segment if the path check stops it.
            if (r.includes("..") || r.includes(".") || r.includes("") || raw.includes("%2")) {
              expect(checkProxyPath(raw).ok).toBe(false);
            }
          }
        },
      ),
    );
  });
});
