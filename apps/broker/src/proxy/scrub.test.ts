import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Secrets } from "./scrub.js";

const KEY = "sk-test-UPSTREAM-SECRET-0123456789";
const secrets = new Secrets([`Bearer ${KEY}`, KEY]);

/** Runs a body through a scrubber in the given chunks. */
const through = (chunks: readonly Buffer[]): Buffer => {
  const scrubber = secrets.stream();
  const out = chunks.map((c) => scrubber.push(c));
  const rest = scrubber.end();
  return Buffer.concat(rest ? [...out, rest] : out);
};

describe("the upstream-secret scrubber", () => {
  it("masks every occurrence with a mask of the same length", () => {
    const body = Buffer.from(`{"a":"${KEY}","b":"Bearer ${KEY}"}`);
    const out = through([body]);
    expect(out.length).toBe(body.length);
    expect(out.toString()).not.toContain(KEY);
    expect(out.toString()).toContain("[redacted]");
  });

  it("masks a key split across chunks, at every split point", () => {
    const body = Buffer.from(`data: {"content":"the key is ${KEY}"}\n\n`);
    for (let cut = 1; cut < body.length; cut++) {
      const out = through([body.subarray(0, cut), body.subarray(cut)]);
      expect(out.toString(), `cut at ${cut}`).not.toContain(KEY);
      expect(out.length).toBe(body.length);
    }
  });

  it("holds nothing back at the end of an SSE event", () => {
    const scrubber = secrets.stream();
    const event = Buffer.from('data: {"choices":[{"delta":{"content":"hi"}}]}\n\n');
    expect(scrubber.push(event).length).toBe(event.length);
    expect(scrubber.end()).toBeUndefined();
  });

  it("never lets a key through, however the body is chunked (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constant(KEY), fc.constant("sk-"), fc.string({ maxLength: 20 })), {
          maxLength: 8,
        }),
        fc.array(fc.nat(), { maxLength: 6 }),
        (parts, cuts) => {
          const body = Buffer.from(parts.join(""));
          const points = [...new Set(cuts.map((c) => c % (body.length + 1)))].sort((a, b) => a - b);
          const chunks: Buffer[] = [];
          let from = 0;
          for (const p of points) {
            chunks.push(body.subarray(from, p));
            from = p;
          }
          chunks.push(body.subarray(from));
          const out = through(chunks);
          expect(out.length).toBe(body.length);
          expect(out.toString()).not.toContain(KEY);
        },
      ),
    );
  });

  it("masks header values and keeps the rest as they are", () => {
    expect(secrets.header(`Bearer realm="x", error_description="bad ${KEY}"`)).not.toContain(KEY);
    expect(secrets.header("application/json")).toBe("application/json");
  });
});
