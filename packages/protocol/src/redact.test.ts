import { describe, expect, it } from "vitest";
import { redact } from "./redact.js";

const token = `prs_0123456789_${"Ab3_-".repeat(8)}xyz`;

describe("redact", () => {
  it.each([
    [`Authorization: Bearer ${token}`, "Authorization: Bearer prs_0123456789_[redacted]"],
    [`token=${token}&x=1`, "token=prs_0123456789_[redacted]&x=1"],
    ["prs_short_but_secretish", "prs_[redacted]"],
    ["key sk-proj-AbCdEfGhIjKlMnOpQrStUvWx1234", "key sk-[redacted]"],
    ["sk-AbCdEfGhIjKlMnOpQrStUvWx", "sk-[redacted]"],
    ["x-api-key: sk-ant-api03-AbCdEfGhIjKlMnOp-qrstu", "x-api-key: sk-ant-[redacted]"],
    ["ghp_0123456789abcdefghijABCDEFGHIJ", "ghp_[redacted]"],
    ["github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "github_pat_[redacted]"],
    ["AKIAIOSFODNN7EXAMPLE", "AKIA[redacted]"],
    ["ASIAIOSFODNN7EXAMPLE.", "ASIA[redacted]."],
    ["AIzaSyA-0123456789abcdefghijABCDEFGHIJ", "AIza[redacted]"],
    ["xoxb-123456789012-abcdefghij", "xoxb-[redacted]"],
    ["issuer pik_AbCdEfGhIjKlMnOpQrStUv", "issuer pik_[redacted]"],
    ["admin pak_AbCdEfGhIjKlMnOpQrStUv", "admin pak_[redacted]"],
    ["authorization: bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "authorization: bearer [redacted]"],
  ])("masks %s", (input, expected) => {
    expect(redact(input)).toBe(expected);
  });

  it.each([
    "tokenId tk_0123456789abcdefghjkmnpq and grant gr_0123456789abcdefghjkmnpq",
    "the task-ask-for-it and a sketchy skiing trip",
    "Bearer short",
    "AKIA is an AWS prefix",
    "x".repeat(1000),
  ])("leaves ordinary text alone: %s", (text) => {
    expect(redact(text)).toBe(text);
  });

  it("is idempotent", () => {
    const once = redact(`a ${token} b sk-proj-AbCdEfGhIjKlMnOpQrStUvWx c Bearer ${token}`);
    expect(redact(once)).toBe(once);
    expect(once).not.toContain(token.slice(15));
  });
});
