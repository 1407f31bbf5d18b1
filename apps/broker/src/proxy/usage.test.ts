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
