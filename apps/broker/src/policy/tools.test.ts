import { describe, expect, it } from "vitest";
import { compileGlob } from "./pattern.js";
import vectors from "./tool-vectors.json" with { type: "json" };
import { disallowedTool, toolNames } from "./tools.js";

const allowed = vectors.allowed.map(compileGlob);

describe("tool scopes: every vector of tool-vectors.json", () => {
  it.each(vectors.cases)("$name", ({ body, expect: want }) => {
    const names = toolNames(body as Record<string, unknown>);
    if (want === "malformed") {
      expect(names.ok).toBe(false);
      return;
    }
    if (!names.ok) throw new Error(`unexpectedly malformed: ${names.malformed}`);
    const refused = disallowedTool(names, allowed);
    if (want === "pass") expect(refused).toBeUndefined();
    else {
      expect(refused).toContain(want.slice("deny:".length));
      // A name that looks like a credential is masked before it reaches an error or the trail.
      expect(refused).not.toMatch(/sk-proj-[A-Za-z0-9]{20,}/);
    }
  });
});
