import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ERROR_CATALOG, ERROR_CODES, ErrorEnvelopeSchema, errorEnvelope, isErrorCode } from "../src/index.js";

const docs = readFileSync(new URL("../../../docs/errors.md", import.meta.url), "utf8");
const documented = new Map(
  [...docs.matchAll(/^\|\s*`([a-z_]+)`\s*\|\s*(\d{3})\s*\|\s*(yes|no)\s*\|/gm)].map((m) => [
    m[1],
    { status: Number(m[2]), retryable: m[3] === "yes" },
  ]),
);

describe("error catalog", () => {
  it("documents every code with its status and retryability", () => {
    for (const code of ERROR_CODES) {
      expect(documented.get(code), `docs/errors.md is missing ${code}`).toEqual({
        status: ERROR_CATALOG[code].status,
        retryable: ERROR_CATALOG[code].retryable,
      });
    }
  });

  it("documents no code that does not exist", () => {
    for (const code of documented.keys())
      expect(isErrorCode(code), `${code} is documented but unknown`).toBe(true);
  });

  it("uses error statuses only, and 500 only for internal_error", () => {
    for (const code of ERROR_CODES) expect(ERROR_CATALOG[code].status).toBeGreaterThanOrEqual(400);
    expect(ERROR_CODES.filter((c) => ERROR_CATALOG[c].status === 500)).toEqual(["internal_error"]);
  });

  it("builds envelopes that the schema accepts", () => {
    const envelope = errorEnvelope("scope_denied", "no", "req_1");
    expect(ErrorEnvelopeSchema.parse(envelope)).toEqual(envelope);
    expect(isErrorCode("toString")).toBe(false);
  });
});
