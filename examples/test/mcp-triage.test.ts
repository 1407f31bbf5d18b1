import { describe, expect, it } from "vitest";
import { runExample } from "./run-example.js";

describe("examples/mcp-triage", () => {
  it("gives a triage sub-agent two tools on acme/api-* of an MCP server, and nothing else", async () => {
    const { code, out, err } = await runExample("mcp-triage");
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(out).toContain("triage   │ sees the tools get_issue, add_issue_comment (the server has three)");
    expect(out).toContain("add_issue_comment → commented on acme/api-gateway#42");
    expect(out).toContain(
      'delete_repo(acme/api-gateway) → refused by the broker: scope github:triage: tool "delete_repo" is not allowed',
    );
    expect(out).toContain('argument owner "someone-else" of "get_issue" is not allowed');
    expect(out).toContain("saw only the broker's own GitHub credential — never a prs_ token");
    expect(out).not.toMatch(/prs_[0-9a-z]{10}_/);
  });
});
