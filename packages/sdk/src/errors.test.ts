import { ERROR_CATALOG, ERROR_CODES } from "@perishable/protocol";
import { describe, expect, it } from "vitest";
import { PerishableError } from "./errors.js";

describe("PerishableError", () => {
  it("takes retryable from the catalog for every wire code", () => {
    for (const code of ERROR_CODES) {
      expect(new PerishableError(code, "x").retryable, code).toBe(ERROR_CATALOG[code].retryable);
    }
  });

  it("retries a broker it could not reach", () => {
    expect(new PerishableError("broker_unreachable", "x").retryable).toBe(true);
  });
});
