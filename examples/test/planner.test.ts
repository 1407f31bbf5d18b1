import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const script = fileURLToPath(new URL("../planner/run.mjs", import.meta.url));

describe("examples/planner", () => {
  it("runs end to end against its own dev broker and shows lineage and audit trail", async () => {
    const child = spawn(process.execPath, [script], { env: { PATH: process.env.PATH ?? "" } });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d));
    child.stderr.on("data", (d: Buffer) => (err += d));
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
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
