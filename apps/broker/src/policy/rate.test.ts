import { describe, expect, it } from "vitest";
import { parseRateLimit } from "./rate.js";

describe("parseRateLimit", () => {
  it.each([
    ["100/minute", 100, 60_000],
    ["10/s", 10, 1_000],
    ["5000/1h", 5000, 3_600_000],
    ["20/10m", 20, 600_000],
    [" 7 / day ", 7, 86_400_000],
    ["1/second", 1, 1_000],
  ])("%s → %i per %i ms", (text, limit, windowMs) => {
    expect(parseRateLimit(text)).toEqual({ limit, windowMs });
  });

  it.each(["", "100", "0/minute", "10/0m", "-1/m", "10/fortnight", "1e3/m", "ten/m", "10/m/s"])(
    "refuses %j",
    (text) => {
      expect(parseRateLimit(text)).toBeUndefined();
    },
  );
});
