import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { extract, UsageSniffer } from "./usage.js";

describe("usage extraction", () => {
  it("reads model and usage from an OpenAI answer, ignoring look-alikes inside strings", () => {
    const body = JSON.stringify({
      id: "x",
      model: "gpt-4o-mini",
      choices: [{ message: { content: 'say "model": "evil" and "usage": {"total_tokens": 999999}' } }],
      usage: {
        prompt_tokens: 9,
        completion_tokens: 6,
        total_tokens: 15,
        prompt_tokens_details: { cached_tokens: 2 },
      },
    });
    expect(extract(body)).toEqual({
      model: "gpt-4o-mini",
      usage: {
        prompt_tokens: 9,
        completion_tokens: 6,
        total_tokens: 15,
        "prompt_tokens_details.cached_tokens": 2,
      },
    });
  });

  it("merges Anthropic's message_start and message_delta usage from a stream", () => {
    const sniffer = UsageSniffer.for("text/event-stream", undefined)!;
    sniffer.feed(
      Buffer.from(
        'event: message_start\ndata: {"type":"message_start","message":{"model":"claude-x","usage":{"input_tokens":9,"output_tokens":0}}}\n\n',
      ),
    );
    sniffer.feed(
      Buffer.from('event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":6}}\n\n'),
    );
    expect(sniffer.result()).toEqual({ model: "claude-x", usage: { input_tokens: 9, output_tokens: 6 } });
  });

  it("ignores compressed, unknown and oversized answers", () => {
    expect(UsageSniffer.for("application/json", "gzip")).toBeUndefined();
    expect(UsageSniffer.for("text/html", undefined)).toBeUndefined();
    const sniffer = UsageSniffer.for("application/json", undefined)!;
    sniffer.feed(Buffer.alloc(2 * 1024 * 1024, 0x20));
    sniffer.feed(Buffer.from('{"model":"m"}'));
    expect(sniffer.result()).toBeUndefined();
    expect(extract('{"usage": null, "model": "m"}')).toEqual({ model: "m" });
  });
});

describe("usage extraction, property", () => {
  const counter = fc.nat({ max: 1_000_000 });
  const answer = fc.record({
    // Short names of any characters, and ASCII ones around the 200-character limit.
    model: fc.oneof(
      fc.string({ unit: "grapheme", maxLength: 30 }),
      fc.string({ unit: "grapheme-ascii", minLength: 195, maxLength: 205 }),
    ),
    content: fc.string({ unit: "grapheme" }),
    usage: fc.dictionary(
      fc.stringMatching(/^[a-z_]{1,20}$/),
      fc.oneof(counter, fc.dictionary(fc.stringMatching(/^[a-z_]{1,20}$/), counter), fc.constant(null)),
    ),
  });

  it("reads what JSON.parse reads from any OpenAI-shaped answer", () => {
    fc.assert(
      fc.property(answer, ({ model, content, usage }) => {
        const body = JSON.stringify({
          id: "x",
          model,
          choices: [{ message: { content: `${content} "model": "evil" "usage": {"total_tokens": 1}` } }],
          usage,
        });
        // The scanner takes the model's text as written: a value JSON had to escape is skipped.
        const written = JSON.stringify(model).slice(1, -1);
        const expectedModel =
          written === model && model.length >= 1 && model.length <= 200 ? model : undefined;
        const expectedUsage: Record<string, number> = {};
        for (const [key, value] of Object.entries(usage)) {
          if (typeof value === "number") expectedUsage[key] = value;
          else if (value !== null)
            for (const [inner, n] of Object.entries(value)) expectedUsage[`${key}.${inner}`] = n;
        }
        const found = extract(body);
        expect(found?.model).toBe(expectedModel);
        expect(found?.usage).toEqual(expectedUsage);
      }),
      { numRuns: 500 },
    );
  });
});
