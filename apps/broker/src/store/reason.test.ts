import { describe, expect, it } from "vitest";
import { describeReason, type Reason, reasonFromWire } from "./reason.js";

// What the audit trail's `rule` has always read, per reason; the scripts send the wire form.
const CASES: ReadonlyArray<[Reason, string, [string, string, string]]> = [
  [{ kind: "token", id: "tk_1" }, "token tk_1", ["token", "tk_1", ""]],
  [{ kind: "grant", id: "gr_1" }, "grant gr_1", ["grant", "gr_1", ""]],
  [{ kind: "ancestor", id: "gr_0" }, "ancestor gr_0", ["ancestor", "gr_0", ""]],
  [{ kind: "rule", id: "rv_1" }, "rule rv_1", ["rule", "rv_1", ""]],
  [{ kind: "rule", id: "rv_1", ancestor: "gr_0" }, "rule rv_1 (ancestor gr_0)", ["rule", "rv_1", "gr_0"]],
  [{ kind: "purged" }, "purged", ["purged", "", ""]],
  [{ kind: "expired", what: "grant" }, "grant notAfter", ["expired", "grant", ""]],
  [{ kind: "expired", what: "token" }, "token", ["expired", "token", ""]],
  [{ kind: "constraint", scope: "llm:complete" }, "llm:complete", ["constraint", "llm:complete", ""]],
  [{ kind: "rate", scope: "llm:complete" }, "llm:complete", ["rate", "llm:complete", ""]],
  [
    { kind: "rate", scope: "llm:complete", ancestor: "gr_0" },
    "llm:complete (ancestor gr_0)",
    ["rate", "llm:complete", "gr_0"],
  ],
  [{ kind: "uses", limit: 3 }, "maxUses 3", ["uses", "3", ""]],
  [{ kind: "uses", limit: 3, ancestor: "gr_0" }, "maxUses 3 of ancestor gr_0", ["uses", "3", "gr_0"]],
  [{ kind: "children", limit: 2 }, "max_children 2", ["children", "2", ""]],
  [{ kind: "max_ttl" }, "max_ttl", ["max_ttl", "", ""]],
  [{ kind: "budget", unit: "usd", limit: 5e9 }, "budget $5", ["budget", "usd:5000000000", ""]],
  [
    { kind: "budget", unit: "tokens", limit: 1000, ancestor: "gr_0" },
    "budget 1000 tokens (ancestor gr_0)",
    ["budget", "tokens:1000", "gr_0"],
  ],
  [{ kind: "concurrency", limit: 2 }, "maxConcurrent 2", ["concurrency", "2", ""]],
  [{ kind: "unbudgeted", scope: "llm:complete" }, "llm:complete", ["unbudgeted", "llm:complete", ""]],
  [{ kind: "parent_mismatch" }, "parent mismatch", ["parent_mismatch", "", ""]],
];

describe("denial reasons", () => {
  it.each(CASES)("%o reads %s and comes back from the wire", (reason, words, wire) => {
    expect(describeReason(reason)).toBe(words);
    expect(reasonFromWire(...wire)).toEqual(reason);
  });

  it("reads a kind no script sends as no reason rather than inventing one", () => {
    expect(reasonFromWire("", "", "")).toBeNull();
    expect(reasonFromWire("bogus", "x", "")).toBeNull();
  });
});
