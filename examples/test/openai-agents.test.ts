import { describe, expect, it } from "vitest";
import { runExample } from "./run-example.js";

describe("examples/openai-agents", () => {
  it("runs an Agents SDK agent through the broker on a DPoP-bound session, the token going nowhere else", async () => {
    const { code, out, err } = await runExample("openai-agents");
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(out).toContain("(DPoP): the token alone opens nothing");
    expect(out).toContain("answered: Hello from the mock upstream.");
    expect(out).toMatch(/with the token, all to the broker: true/);
    expect(out).not.toMatch(/prs_[0-9a-z]{10}_/);
  });
});
