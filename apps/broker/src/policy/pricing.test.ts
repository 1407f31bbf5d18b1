import { describe, expect, it } from "vitest";
import { compileGlob } from "./pattern.js";
import {
  budgetLimits,
  consumedOf,
  costOf,
  inputTokenBound,
  type Price,
  perToken,
  priceOf,
  worstCase,
} from "./pricing.js";

const price = (glob: string, input: number, output: number, extra: Partial<Price> = {}): Price => ({
  glob,
  matcher: compileGlob(glob),
  input: perToken(input),
  output: perToken(output),
  cachedInput: perToken(input),
  cacheWrite: perToken(input * 1.25),
  maxOutput: undefined,
  context: undefined,
  ...extra,
});

const PRICES = [
  price("gpt-4o-mini", 0.15, 0.6),
  price("gpt-4.1-*", 2, 8, { context: 1_000 }),
  price("*", 100, 100),
];
const chat = { kind: "generate", field: "max_completion_tokens" } as const;

describe("prices", () => {
  it("counts in nano-dollars: $0.15 per million tokens is 150 a token", () => {
    expect(perToken(0.15)).toBeCloseTo(150, 9);
    expect(budgetLimits({ usd: 5, tokens: 10 })).toEqual({ usd: 5_000_000_000, tokens: 10 });
    expect(budgetLimits({ usd: 0.000_000_000_9 })).toEqual({ usd: 0 }); // a limit rounds down
  });

  it("takes the first price whose glob matches, in config order", () => {
    expect(priceOf(PRICES, "gpt-4o-mini")?.glob).toBe("gpt-4o-mini");
    expect(priceOf(PRICES, "gpt-4.1-mini")?.glob).toBe("gpt-4.1-*");
    expect(priceOf(PRICES, "anything")?.glob).toBe("*");
    expect(priceOf(PRICES.slice(0, 2), "anything")).toBeUndefined();
  });
});

describe("the worst case of a request", () => {
  it("bounds input by the body's bytes plus the provider's framing, and output by the limit × choices", () => {
    const body = { model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }], n: 3 };
    const bytes = JSON.stringify(body).length;
    const bound = worstCase(body, bytes, chat, PRICES, "openai", 100);
    expect(bound).toEqual({
      ok: true,
      worst: {
        usd: Math.ceil((bytes + 2_048) * perToken(0.15) + 300 * perToken(0.6)),
        tokens: bytes + 2_048 + 300,
      },
    });
  });

  it("prices input at the cache-write price only where the body sets a cache breakpoint", () => {
    const cached = {
      model: "gpt-4o-mini",
      system: [{ type: "text", text: "s", cache_control: { type: "ephemeral" } }],
    };
    const bound = worstCase(cached, 100, chat, PRICES, "anthropic", 10);
    expect(bound).toMatchObject({
      ok: true,
      worst: { usd: Math.ceil(2_148 * perToken(0.15 * 1.25) + 10 * perToken(0.6)) },
    });
  });

  it("gives a built-in tool the allowance of its hidden definition", () => {
    const body = { tools: [{ type: "web_search" }, { type: "function", function: { name: "f" } }] };
    expect(inputTokenBound(body, 10)).toBe(10 + 2_048 + 2_048);
  });

  it("cannot bound content the provider fetches or expands, but a context window can", () => {
    for (const body of [
      {
        messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "https://x/y.png" } }] }],
      },
      { input: [{ role: "user", content: [{ type: "input_file", file_id: "file-1" }] }] },
      { previous_response_id: "resp_1", input: "go on" },
      {
        messages: [
          { role: "user", content: [{ type: "document", source: { type: "url", url: "https://x" } }] },
        ],
      },
    ])
      expect(inputTokenBound(body, 50)).toBeUndefined();
    const image = { model: "gpt-4.1-mini", input: [{ type: "input_image", image_url: "https://x" }] };
    expect(worstCase(image, 80, chat, PRICES, "openai", 10)).toMatchObject({
      ok: true,
      worst: { tokens: 1_010 },
    });
    // A huge base64 body is bounded by the context window too.
    expect(worstCase({ model: "gpt-4.1-x" }, 5_000_000, chat, PRICES, "openai", 10)).toMatchObject({
      worst: { tokens: 1_010 },
    });
    expect(worstCase({ ...image, model: "gpt-4o-mini" }, 80, chat, PRICES, "openai", 10)).toMatchObject({
      ok: false,
      why: expect.stringContaining('prices.openai."gpt-4o-mini".context'),
    });
  });

  it("refuses to guess: no model, no price, no output limit", () => {
    expect(worstCase({}, 2, chat, PRICES, "openai", 10)).toMatchObject({
      ok: false,
      why: expect.stringContaining("name its model"),
    });
    expect(worstCase({ model: "claude-x" }, 2, chat, PRICES.slice(0, 2), "openai", 10)).toMatchObject({
      ok: false,
      why: 'model "claude-x" has no price for upstream openai, so a budget cannot cover it',
    });
    expect(worstCase({ model: "gpt-4o-mini" }, 2, chat, PRICES, "openai", undefined)).toMatchObject({
      ok: false,
      why: expect.stringContaining("needs an output limit"),
    });
    expect(
      worstCase({ model: "gpt-4o-mini" }, 2, { kind: "embed" }, PRICES, "openai", undefined),
    ).toMatchObject({
      ok: true,
    });
  });
});

describe("what an answer cost", () => {
  const p = price("m", 1, 2, { cachedInput: perToken(0.5), cacheWrite: perToken(1.25) });

  it("reads OpenAI chat usage, cached tokens at their own price", () => {
    const consumed = consumedOf({
      prompt_tokens: 100,
      completion_tokens: 10,
      "prompt_tokens_details.cached_tokens": 40,
    });
    expect(consumed).toEqual({ input: 60, cachedInput: 40, cacheWrite: 0, output: 10 });
    expect(costOf(consumed!, p)).toEqual({ usd: 60_000 + 20_000 + 20_000, tokens: 110 });
  });

  it("reads Responses usage, and Anthropic's with cache reads and writes", () => {
    expect(
      consumedOf({ input_tokens: 50, output_tokens: 5, "input_tokens_details.cached_tokens": 10 }),
    ).toEqual({
      input: 40,
      cachedInput: 10,
      cacheWrite: 0,
      output: 5,
    });
    const anthropic = consumedOf({
      input_tokens: 9,
      output_tokens: 6,
      cache_read_input_tokens: 100,
      cache_creation_input_tokens: 20,
    });
    expect(anthropic).toEqual({ input: 9, cachedInput: 100, cacheWrite: 20, output: 6 });
    expect(costOf(anthropic!, p)).toEqual({ usd: 9_000 + 50_000 + 25_000 + 12_000, tokens: 135 });
  });

  it("finds nothing to count in an answer without usage, and never counts a negative", () => {
    expect(consumedOf(undefined)).toBeUndefined();
    expect(consumedOf({ total: 3 })).toBeUndefined();
    expect(consumedOf({ prompt_tokens: -5, completion_tokens: 2 })).toEqual({
      input: 0,
      cachedInput: 0,
      cacheWrite: 0,
      output: 2,
    });
  });
});
