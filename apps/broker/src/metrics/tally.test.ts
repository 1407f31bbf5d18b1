import fc from "fast-check";
import { Counter, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { TallyCounter, TallyHistogram } from "./tally.js";

const BUCKETS = [0.001, 0.01, 0.1, 1, 10];
const observation = fc.record({
  label: fc.constantFrom("openai", "anthropic", 'a"b\\c'),
  value: fc.oneof(fc.double({ min: 0, max: 100, noNaN: true }), fc.constantFrom(...BUCKETS)),
});

/** prom-client's own metrics and the tallies fed the same values print the same text. */
const printed = async (registry: Registry) => (await registry.metrics()).trim();

describe("tallies", () => {
  it("print what prom-client's Histogram and Counter print for the same observations", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(observation, { maxLength: 60 }), async (seen) => {
        const theirs = new Registry();
        const ours = new Registry();
        const h = new Histogram({
          name: "h",
          help: "x",
          labelNames: ["upstream"],
          buckets: BUCKETS,
          registers: [theirs],
        });
        const c = new Counter({ name: "c_total", help: "y", labelNames: ["upstream"], registers: [theirs] });
        const th = new TallyHistogram({
          name: "h",
          help: "x",
          labelNames: ["upstream"],
          buckets: BUCKETS,
          registry: ours,
        });
        const tc = new TallyCounter({ name: "c_total", help: "y", labelNames: ["upstream"], registry: ours });
        for (const { label, value } of seen) {
          h.labels(label).observe(value);
          th.labels(label).observe(value);
          c.labels(label).inc(value);
          tc.labels(label).inc(value);
        }
        expect(await printed(ours)).toBe(await printed(theirs));
      }),
      { numRuns: 200 },
    );
  });

  it("keeps a series object valid across a reset, and refuses a wrong number of labels", async () => {
    const registry = new Registry();
    const h = new TallyHistogram({ name: "plain", help: "p", buckets: [1], registry });
    h.observe(0.5);
    registry.resetMetrics();
    h.observe(2);
    expect(await printed(registry)).toContain('plain_bucket{le="1"} 0');
    expect(await printed(registry)).toContain("plain_count 1");
    expect(() => h.labels("extra")).toThrow(/label values/);
  });
});
