import { describe, expect, it } from "vitest";
import { buckets, parseMetrics, quantile, sum } from "../src/lib/metrics.js";
import { duration, shortId } from "../src/lib/time.js";

const exposition = `# HELP perishable_proxy_requests_total Proxied requests
# TYPE perishable_proxy_requests_total counter
perishable_proxy_requests_total{upstream="openai",status="200"} 40
perishable_proxy_requests_total{upstream="anthropic",status="200"} 2
perishable_denials_total{code="token_revoked"} 3
perishable_overhead_seconds_bucket{le="0.001",upstream="a"} 5
perishable_overhead_seconds_bucket{le="0.001",upstream="b"} 1
perishable_overhead_seconds_bucket{le="0.005",upstream="a"} 9
perishable_overhead_seconds_bucket{le="0.005",upstream="b"} 1
perishable_overhead_seconds_bucket{le="+Inf",upstream="a"} 10
perishable_overhead_seconds_bucket{le="+Inf",upstream="b"} 2
perishable_live_grants 7
`;

describe("the console's reading of /metrics", () => {
  const samples = parseMetrics(exposition);

  it("reads samples with their labels and sums them", () => {
    expect(sum(samples, "perishable_proxy_requests_total")).toBe(42);
    expect(sum(samples, "perishable_proxy_requests_total", (l) => l.upstream === "anthropic")).toBe(2);
    expect(sum(samples, "perishable_live_grants")).toBe(7);
    expect(samples.find((s) => s.name === "perishable_denials_total")?.labels).toEqual({
      code: "token_revoked",
    });
  });

  it("turns cumulative buckets of several label sets into per-bucket counts and quantiles", () => {
    expect(buckets(samples, "perishable_overhead_seconds")).toEqual([
      { le: "0.001", count: 6 },
      { le: "0.005", count: 4 },
      { le: "+Inf", count: 2 },
    ]);
    expect(quantile(samples, "perishable_overhead_seconds", 0.5)).toBe(0.001);
    expect(quantile(samples, "perishable_overhead_seconds", 0.8)).toBe(0.005);
    expect(quantile(samples, "perishable_overhead_seconds", 0.99)).toBe(Number.POSITIVE_INFINITY);
    expect(quantile(samples, "perishable_nothing", 0.5)).toBeUndefined();
  });
});

describe("durations and ids as the console shows them", () => {
  it("never shows 60 minutes in an hour", () => {
    expect(duration(42_000)).toBe("42 s");
    expect(duration(3 * 60_000)).toBe("3 min");
    expect(duration(2 * 3_600_000 + 5 * 60_000)).toBe("2 h 5 min");
    expect(duration(24 * 3_600_000 - 1_000)).toBe("24 h 0 min");
    expect(duration(5 * 86_400_000)).toBe("5 d");
    expect(duration(-5)).toBe("0 s");
  });

  it("shortens ids to their prefix and tail", () => {
    expect(shortId("gr_v3zdnp8wpwzvrzqc4bg1wys2sn")).toBe("gr_…wys2sn");
    expect(shortId(null)).toBe("-");
  });
});
