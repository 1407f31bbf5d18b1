import { GRANT_ID_RE, grantTree, TOKEN_ID_RE, TOKEN_RE, tokenTree } from "@perishable/protocol";
import { describe, expect, it } from "vitest";
import { Secret } from "../config/secret.js";
import { KeyMatcher, newGrantId, newRootGrantId, newToken, newTokenId, TokenHasher } from "./secrets.js";

describe("ids and tokens", () => {
  it("keeps every id of a lineage in its root's tree", () => {
    const root = newRootGrantId();
    const tree = grantTree(root)!;
    expect(root).toMatch(GRANT_ID_RE);
    expect(grantTree(newGrantId(tree))).toBe(tree);
    expect(newTokenId(tree)).toMatch(TOKEN_ID_RE);
    const token = newToken(tree);
    expect(token).toMatch(TOKEN_RE);
    expect(tokenTree(token)).toBe(tree);
  });

  it("makes tokens with 256 random bits", () => {
    const secrets = new Set(Array.from({ length: 1000 }, () => newToken("0123456789").slice(15)));
    expect(secrets.size).toBe(1000);
    expect(Buffer.from([...secrets][0]!, "base64url")).toHaveLength(32);
  });

  it("hashes with the broker secret, so another secret gives another hash", () => {
    const token = newToken("0123456789");
    const a = new TokenHasher(new Secret("a".repeat(32)));
    const b = new TokenHasher(new Secret("b".repeat(32)));
    expect(a.hash(token)).toBe(a.hash(token));
    expect(a.hash(token)).not.toBe(b.hash(token));
    expect(a.hash(token)).not.toContain(token.slice(15));
  });
});

describe("KeyMatcher", () => {
  const matcher = new KeyMatcher([
    [new Secret("issuer-key-one-0123456789abcdef"), "one"],
    [new Secret("issuer-key-two-0123456789abcdef"), "two"],
  ]);

  it("finds the configured key and nothing else", () => {
    expect(matcher.match("issuer-key-one-0123456789abcdef")).toBe("one");
    expect(matcher.match("issuer-key-two-0123456789abcdef")).toBe("two");
    expect(matcher.match("issuer-key-two-0123456789abcde")).toBeUndefined();
    expect(matcher.match("issuer-key-two-0123456789abcdeff")).toBeUndefined();
    expect(matcher.match("")).toBeUndefined();
  });
});

describe("Secret", () => {
  it("never shows its value by accident", () => {
    const secret = new Secret("sk-live-very-secret");
    expect(String(secret)).toBe("[secret]");
    expect(JSON.stringify({ secret })).toBe('{"secret":"[secret]"}');
    expect(`${secret}`).not.toContain("very");
    expect(secret.reveal()).toBe("sk-live-very-secret");
  });
});
