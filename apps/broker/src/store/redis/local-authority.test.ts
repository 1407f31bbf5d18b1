import { describe, expect, it } from "vitest";
import type { Candidate } from "../types.js";
import { LocalAuthority, type LocalEntry } from "./local-authority.js";

const now = 1_000_000;
const entry = (over: Partial<LocalEntry> = {}): LocalEntry => ({
  subject: {
    grantId: "g2",
    tokenId: "t2",
    rootGrantId: "g0",
    parentGrantId: "g1",
    agent: "a",
    issuedAt: now - 1,
  },
  tokenId: "t2",
  grants: ["g2", "g0", "g1"],
  scopes: new Set(["models:read", "llm:embed"]),
  expiresAt: now + 60_000,
  notAfter: now + 120_000,
  subjects: [{ agent: "a", scopes: ["models:read"], rootId: "g0", createdAt: now - 5 }],
  uses: false,
  spend: false,
  ...over,
});
const candidate = (scope: string, over: Partial<Candidate> = {}): Candidate => ({
  scope,
  pass: true,
  limit: 0,
  windowMs: 60_000,
  worst: null,
  ...over,
});
const never = () => false;

describe("LocalAuthority", () => {
  it("answers a kept token itself: its first held candidate that passes", () => {
    const local = new LocalAuthority();
    local.put("h", entry());
    expect(local.authorize("h", now, [candidate("files:rw"), candidate("models:read")], never)).toEqual({
      ok: true,
      subject: entry().subject,
      scope: "models:read",
      flight: null,
      notAfter: now + 120_000,
    });
  });

  it("leaves to the script what it cannot decide alone", () => {
    const local = new LocalAuthority();
    local.put("h", entry());
    const ask = (candidates: Candidate[], at = now, ruled = never) =>
      local.authorize("h", at, candidates, ruled);
    expect(local.authorize("unknown", now, [candidate("models:read")], never)).toBeUndefined();
    expect(ask([candidate("models:read", { limit: 10 })])).toBeUndefined(); // a rate limit counts in Redis
    expect(ask([candidate("models:read", { pass: false })])).toBeUndefined(); // a denial is worded there
    expect(ask([candidate("files:rw")])).toBeUndefined(); // not held: scope_denied, from the script
    expect(ask([candidate("models:read")], now + 60_000)).toBeUndefined(); // the token expired
    expect(ask([candidate("models:read")], now, () => true)).toBeUndefined(); // a rule may select it
  });

  it("forgets a token when its grant, an ancestor or the token is cut, and moves its epoch", () => {
    const local = new LocalAuthority();
    for (const [cut, kept] of [
      [{ grants: ["g1"], tokens: [] }, false],
      [{ grants: [], tokens: ["t2"] }, false],
      [{ grants: ["elsewhere"], tokens: ["t9"] }, true],
    ] as const) {
      local.put("h", entry());
      const before = local.epoch;
      local.cut(cut);
      expect(local.epoch).not.toBe(before);
      expect(local.has("h")).toBe(kept);
    }
    local.clear();
    expect(local.size).toBe(0);
  });
});
