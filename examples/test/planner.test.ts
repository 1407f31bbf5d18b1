import { describe, expect, it } from "vitest";
import { runExample } from "./run-example.js";

describe("examples/planner", () => {
  it("runs end to end against its own dev broker and shows lineage and audit trail", async () => {
    const { code, out, err } = await runExample("planner");
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(out).toContain("researcher │ asks for models:read too → delegation_denied");
    expect(out).toContain("summarizer │ embedded the facts: 3 dimensions");
    expect(out).toContain("summarizer │ tries a chat completion → 403 scope_denied");
    expect(out).toContain("planner    │ revoked its grant: 3 grants ended");
    expect(out).toContain("researcher │ next call → token_revoked");
    expect(out).toMatch(/^├── gr_\S+ {2}researcher {2}\[llm:complete\] {2}revoked$/m);
    expect(out).toMatch(/^└── gr_\S+ {2}summarizer {2}\[llm:embed\] {2}revoked$/m);
    for (const type of ["issued", "delegated", "used", "denied", "revoked"])
      expect(out).toMatch(new RegExp(`\\s${type}\\s`));
    expect(out).not.toMatch(/prs_[0-9a-z]{10}_/);
  });
});
