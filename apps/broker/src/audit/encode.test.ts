import type { AuditDetails } from "@perishable/protocol";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Subject } from "../store/types.js";
import { auditEvent, encodeAudit, encodeEvent } from "./encode.js";

const subject = (over: Partial<Subject> = {}): Subject =>
  ({
    grantId: "grt_01JAAAAAAAAAAAAAAAAAAAAAAA",
    tokenId: "tok_01JAAAAAAAAAAAAAAAAAAAAAAA",
    rootGrantId: "grt_01JROOTAAAAAAAAAAAAAAAAAAA",
    parentGrantId: null,
    agent: "planner",
    issuedAt: 0,
    ...over,
  }) as Subject;

/** Strings as callers send them: plain words, unicode, quotes and controls, and credentials. */
const text = fc.oneof(
  fc.string(),
  fc.constantFrom("/v1/chat/completions", "gpt-4o-mini", 'a "quoted"\nline\u2028', "\u0000\u001f", "é😀"),
  fc.constantFrom(
    "Bearer prs_live_abcdefghijklmnopqrstuvwx",
    "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
    "x".repeat(300),
  ),
  fc.string().map((s) => `${s}prs_${"a".repeat(24)}`),
);
const value = fc.oneof(
  text,
  fc.double(),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer(), fc.constant(null))),
  fc.array(fc.string()),
);
const details = fc.dictionary(
  fc.constantFrom(
    "upstream",
    "method",
    "path",
    "scope",
    "status",
    "model",
    "usage",
    "cost",
    "rule",
    "code",
    "count",
    "extra",
  ),
  value,
);

describe("encodeAudit", () => {
  it("writes the same JSON text as the event object, for any details", () => {
    fc.assert(
      fc.property(
        details,
        fc.option(text, { nil: null }),
        fc.integer({ min: 0, max: 4_102_444_800_000 }),
        fc.boolean(),
        (d, requestId, at, withSubject) => {
          const s = withSubject ? subject() : null;
          const fast = encodeAudit("used", s, requestId, at, d as unknown as AuditDetails<"used">);
          expect(fast).toBe(
            encodeEvent(auditEvent("used", s, requestId, at, d as unknown as AuditDetails<"used">)),
          );
          expect(fast).not.toContain("\n");
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it("never lets a credential in any string through, repeated or not", () => {
    const secret = "prs_live_abcdefghijklmnopqrstuvwxyz";
    for (let i = 0; i < 3; i++) {
      const line = encodeAudit("used", subject(), null, 0, { path: `/v1/${secret}`, model: secret } as never);
      expect(line).not.toContain(secret);
    }
  });

  it("keeps one subject's part per subject object, and details that name a base field cannot shadow it", () => {
    const s = subject();
    const a = JSON.parse(encodeAudit("used", s, "r1", 1, { upstream: "x" } as never));
    const b = JSON.parse(
      encodeAudit("used", subject({ agent: "other" }), "r2", 2, { upstream: "y" } as never),
    );
    expect([a.agent, b.agent]).toEqual(["planner", "other"]);
    const shadow = encodeAudit("used", s, "r3", 3, { agent: "forged", grantId: "grt_forged" } as never);
    expect(shadow).toBe(
      encodeEvent(auditEvent("used", s, "r3", 3, { agent: "forged", grantId: "grt_forged" } as never)),
    );
    expect(shadow.match(/"agent"/g)).toHaveLength(1);
  });
});
