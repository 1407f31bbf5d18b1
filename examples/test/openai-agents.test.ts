import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const script = fileURLToPath(new URL("../openai-agents/run.mjs", import.meta.url));

describe("examples/openai-agents", () => {
  it("runs an Agents SDK agent through the broker on a DPoP-bound session, the token going nowhere else", async () => {
    const child = spawn(process.execPath, [script], { env: { PATH: process.env.PATH ?? "" } });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d));
    child.stderr.on("data", (d: Buffer) => (err += d));
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(out).toContain("(DPoP): the token alone opens nothing");
    expect(out).toContain("answered: Hello from the mock upstream.");
    expect(out).toMatch(/with the token, all to the broker: true/);
    expect(out).not.toMatch(/prs_[0-9a-z]{10}_/);
  });
});
