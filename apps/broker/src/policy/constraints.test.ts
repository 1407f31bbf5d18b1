import { describe, expect, it } from "vitest";
import { checkBodyConstraints } from "./constraints.js";
import { compileGlob } from "./pattern.js";

const models = (...globs: string[]) => ({ models: globs.map(compileGlob), modelGlobs: globs });

describe("body constraints", () => {
  it("allows models matching a glob and refuses the rest", () => {
    const c = models("gpt-4o-mini", "gpt-4.1-*");
    expect(checkBodyConstraints({ model: "gpt-4o-mini" }, c)).toBeUndefined();
    expect(checkBodyConstraints({ model: "gpt-4.1-nano" }, c)).toBeUndefined();
    expect(checkBodyConstraints({ model: "gpt-4.1" }, c)).toMatch(/not allowed/);
    expect(checkBodyConstraints({ model: "gpt-4o-mini-2" }, c)).toMatch(/not allowed/);
    expect(checkBodyConstraints({ model: "gpt-4o" }, c)).toMatch(/not allowed/);
    expect(checkBodyConstraints({}, c)).toMatch(/must name a model/);
    expect(checkBodyConstraints({ model: ["gpt-4o-mini"] }, c)).toMatch(/must name a model/);
  });

  it("treats glob characters other than * literally", () => {
    const c = models("gpt-4.1");
    expect(checkBodyConstraints({ model: "gpt-4x1" }, c)).toMatch(/not allowed/);
  });

  it("holds every output-token field to the ceiling and requires one", () => {
    const c = { maxTokens: 100 };
    expect(checkBodyConstraints({ max_tokens: 100 }, c)).toBeUndefined();
    expect(checkBodyConstraints({ max_completion_tokens: 50 }, c)).toBeUndefined();
    expect(checkBodyConstraints({ max_output_tokens: 100 }, c)).toBeUndefined();
    expect(checkBodyConstraints({ max_tokens: 101 }, c)).toMatch(/above the ceiling/);
    expect(checkBodyConstraints({ max_tokens: 10, max_completion_tokens: 1000 }, c)).toMatch(
      /max_completion_tokens 1000/,
    );
    expect(checkBodyConstraints({ max_tokens: "10" }, c)).toMatch(/whole number/);
    expect(checkBodyConstraints({ max_tokens: 1.5 }, c)).toMatch(/whole number/);
    expect(checkBodyConstraints({ max_tokens: -1 }, c)).toMatch(/whole number/);
    expect(checkBodyConstraints({}, c)).toMatch(/must set max_tokens/);
  });

  it("refuses bodies that are not JSON objects", () => {
    for (const body of [null, [], "x", 3])
      expect(checkBodyConstraints(body, { maxTokens: 1 })).toMatch(/JSON object/);
  });
});

describe("constraint reasons are safe to log", () => {
  it("masks a credential sent as the model name", () => {
    const c = models("gpt-4o-mini");
    const reason = checkBodyConstraints({ model: `prs_0123456789_${"x".repeat(43)}` }, c);
    expect(reason).toContain("prs_0123456789_[redacted]");
    expect(reason).not.toContain("x".repeat(43));
  });
});
