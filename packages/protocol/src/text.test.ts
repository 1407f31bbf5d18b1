import { describe, expect, it } from "vitest";
import { callerText, isPrintable, neutralize } from "./text.js";

describe("neutralize", () => {
  it.each([
    ["\u001b[2J\u001b[31mFAKE", "\\u001b[2J\\u001b[31mFAKE"],
    ["line\r\nforged", "line\\u000d\\u000aforged"],
    ["bell\u0007 del\u007f c1\u009b", "bell\\u0007 del\\u007f c1\\u009b"],
    ["rtl \u202eevil\u202c iso \u2066x\u2069", "rtl \\u202eevil\\u202c iso \\u2066x\\u2069"],
    ["sep\u2028x\u2029", "sep\\u2028x\\u2029"],
  ])("shows %j as visible escapes", (input, expected) => {
    expect(neutralize(input)).toBe(expected);
    expect(isPrintable(input)).toBe(false);
  });

  it("leaves printable text, Unicode included, as it is", () => {
    for (const text of ["repo:acme/api:ref:refs/heads/main", "é ✓ 日本語", "tab-free"]) {
      expect(neutralize(text)).toBe(text);
      expect(isPrintable(text)).toBe(true);
    }
  });
});

describe("callerText", () => {
  it("masks a token, shows controls and bounds the length", () => {
    const token = `prs_0123456789_${"x".repeat(43)}`;
    expect(callerText(`scope ${token}\u001b[0m`)).toBe("scope prs_0123456789_[redacted]\\u001b[0m");
    expect(callerText("y".repeat(600))).toHaveLength(513);
  });
});
