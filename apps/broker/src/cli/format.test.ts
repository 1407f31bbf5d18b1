import type { AdminGrantView, AuditEvent, AuditEventOf } from "@perishable/protocol";
import { describe, expect, it } from "vitest";
import { auditLine, drawTree, table } from "./format.js";

// Whatever the API returns — an old event, a field an agent named — reaches the terminal inert.
const HOSTILE = "x\u001b[2J\u001b[31m\rFAKE\nline\u202e";
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const UNSEEN = /[\u0000-\u001f\u007f-\u009f\u202e]/;

const event = (extra: Partial<AuditEventOf<"denied">>): AuditEvent => ({
  at: "2026-12-01T08:00:00.000Z",
  type: "denied",
  code: "bad_request",
  rule: "",
  requestId: "req_1",
  grantId: "gr_1",
  tokenId: null,
  rootGrantId: null,
  parentGrantId: null,
  agent: "planner",
  ...extra,
});

const grant = (over: Partial<AdminGrantView>): AdminGrantView =>
  ({
    grantId: "gr_0123456789abc",
    parentGrantId: null,
    rootGrantId: "gr_0123456789abc",
    agent: "planner",
    scopes: ["llm:complete"],
    depth: 0,
    status: "live",
    tokenExpiresAt: null,
    notAfter: "2026-12-01T09:00:00.000Z",
    identity: null,
    ...over,
  }) as AdminGrantView;

describe("what the CLI prints", () => {
  it("shows control, separator and bidi characters in audit lines as escapes", () => {
    const line = auditLine(
      event({ code: "bad_request", rule: HOSTILE, path: `/v1/${HOSTILE}`, upstream: HOSTILE }),
    );
    expect(line).not.toMatch(UNSEEN);
    expect(line).toContain("\\u001b[2J");
    expect(line.split("\n")).toHaveLength(1);
  });

  it("neutralizes table cells and tree lines", () => {
    const printed = table(["A", "B"], [[HOSTILE, "ok"]]).split("\n");
    expect(printed).toHaveLength(2);
    for (const line of printed) expect(line).not.toMatch(UNSEEN);
    const root = grant({ identity: { issuer: "https://idp", subject: HOSTILE } });
    const tree = drawTree(
      root,
      [grant({ grantId: "gr_0123456789abd", parentGrantId: root.grantId, agent: HOSTILE, depth: 1 })],
      root.grantId,
    );
    expect(tree.split("\n")).toHaveLength(2);
    for (const line of tree.split("\n")) expect(line).not.toMatch(UNSEEN);
  });
});
