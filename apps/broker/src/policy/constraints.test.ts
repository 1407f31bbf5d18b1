import { describe, expect, it } from "vitest";
import { type BodyConstraints, checkBodyConstraints, outputFieldOf } from "./constraints.js";
import { compileGlob } from "./pattern.js";

const models = (...globs: string[]) => ({ models: globs.map(compileGlob), modelGlobs: globs });
const CHAT = "max_completion_tokens" as const;

/** The reason a body is refused, or undefined when it passes. */
const reason = (body: unknown, c: BodyConstraints, path = "/v1/chat/completions") => {
  const verdict = checkBodyConstraints(body, c, outputFieldOf(path));
  return verdict.ok ? undefined : verdict.reason;
};
const fill = (body: unknown, c: BodyConstraints, path: string) => {
  const verdict = checkBodyConstraints(body, c, outputFieldOf(path));
  if (!verdict.ok) throw new Error(verdict.reason);
  return verdict.fill;
};

describe("body constraints", () => {
  it("allows models matching a glob and refuses the rest", () => {
    const c = models("gpt-4o-mini", "gpt-4.1-*");
    expect(reason({ model: "gpt-4o-mini" }, c)).toBeUndefined();
    expect(reason({ model: "gpt-4.1-nano" }, c)).toBeUndefined();
    expect(reason({ model: "gpt-4.1" }, c)).toMatch(/not allowed/);
    expect(reason({ model: "gpt-4o-mini-2" }, c)).toMatch(/not allowed/);
    expect(reason({ model: "gpt-4o" }, c)).toMatch(/not allowed/);
    expect(reason({}, c)).toMatch(/must name a model/);
    expect(reason({ model: ["gpt-4o-mini"] }, c)).toMatch(/must name a model/);
  });

  it("treats glob characters other than * literally", () => {
    const c = models("gpt-4.1");
    expect(reason({ model: "gpt-4x1" }, c)).toMatch(/not allowed/);
  });

  it("holds every output-token field to the ceiling", () => {
    const c = { maxTokens: 100 };
    expect(reason({ max_tokens: 100 }, c)).toBeUndefined();
    expect(reason({ max_completion_tokens: 50 }, c)).toBeUndefined();
    expect(reason({ max_output_tokens: 100 }, c)).toBeUndefined();
    expect(reason({ max_tokens: 101 }, c)).toMatch(/above the ceiling/);
    expect(reason({ max_tokens: 10, max_completion_tokens: 1000 }, c)).toMatch(/max_completion_tokens 1000/);
    expect(reason({ max_tokens: "10" }, c)).toMatch(/whole number/);
    expect(reason({ max_tokens: 1.5 }, c)).toMatch(/whole number/);
    expect(reason({ max_tokens: -1 }, c)).toMatch(/whole number/);
  });

  it("fills the ceiling into the field each endpoint reads when the body states no limit", () => {
    const c = { maxTokens: 100 };
    expect(fill({}, c, "/v1/chat/completions")).toEqual({ field: CHAT, value: 100 });
    expect(fill({}, c, "/openai/deployments/d/chat/completions")).toEqual({ field: CHAT, value: 100 });
    expect(fill({}, c, "/v1/completions")).toEqual({ field: "max_tokens", value: 100 });
    expect(fill({}, c, "/v1/responses")).toEqual({ field: "max_output_tokens", value: 100 });
    expect(fill({}, c, "/v1/messages")).toEqual({ field: "max_tokens", value: 100 });
    expect(fill({ max_tokens: null }, c, "/v1/messages")).toEqual({ field: "max_tokens", value: 100 });
    expect(fill({ max_tokens: 20 }, c, "/v1/chat/completions")).toBeUndefined();
  });

  it("lets endpoints without output through and asks for a limit where the field is unknown", () => {
    const c = { maxTokens: 100 };
    expect(fill({}, c, "/v1/messages/count_tokens")).toBeUndefined();
    expect(reason({}, c, "/v1/embeddings")).toMatch(/must set max_tokens \(at most 100\)/);
    expect(reason({ max_tokens: 200 }, c, "/v1/messages/count_tokens")).toMatch(/above/);
  });

  it("bounds the product of choices and limit, unless the scope allows more choices", () => {
    const c = { maxTokens: 100 };
    expect(reason({ n: 4, max_tokens: 100 }, c)).toMatch(/4 choices × max_tokens 100/);
    expect(reason({ n: 4, max_tokens: 25 }, c)).toBeUndefined();
    expect(reason({ best_of: 3, n: 1, max_tokens: 34 }, c)).toMatch(/3 choices/);
    expect(fill({ n: 4 }, c, "/v1/chat/completions")).toEqual({ field: CHAT, value: 25 });
    expect(reason({ n: 101 }, c)).toMatch(/101 choices are more than the ceiling/);
    for (const n of [0, -1, 1.5, "2", true]) expect(reason({ n }, c)).toMatch(/n must be a positive/);
    const four = { maxTokens: 100, maxChoices: 4 };
    expect(reason({ n: 4, max_tokens: 100 }, four)).toBeUndefined();
    expect(reason({ n: 5, max_tokens: 100 }, four)).toMatch(/5 choices/);
    expect(fill({ n: 2 }, four, "/v1/chat/completions")).toEqual({ field: CHAT, value: 100 });
    expect(fill({ n: 8 }, four, "/v1/chat/completions")).toEqual({ field: CHAT, value: 50 });
  });

  it("refuses bodies that are not JSON objects", () => {
    for (const body of [null, [], "x", 3]) expect(reason(body, { maxTokens: 1 })).toMatch(/JSON object/);
  });
});

describe("constraint reasons are safe to log", () => {
  it("masks a credential sent as the model name", () => {
    const c = models("gpt-4o-mini");
    const text = reason({ model: `prs_0123456789_${"x".repeat(43)}` }, c);
    expect(text).toContain("prs_0123456789_[redacted]");
    expect(text).not.toContain("x".repeat(43));
  });
});
