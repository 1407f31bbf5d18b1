import { describe, expect, it } from "vitest";
import { GRANT_ID_RE, grantTree, ID_ALPHABET, TOKEN_RE, tokenIdTree, tokenTree } from "../src/index.js";

describe("identifier formats", () => {
  it("reads the tree from tokens, grant ids and token ids", () => {
    const tree = "0123456789";
    const secret = `${"A".repeat(42)}_`;
    expect(tokenTree(`prs_${tree}_${secret}`)).toBe(tree);
    expect(grantTree(`gr_${tree}${"a".repeat(16)}`)).toBe(tree);
    expect(tokenIdTree(`tk_${tree}${"z".repeat(16)}`)).toBe(tree);
  });

  it.each([
    "prs_0123456789_short",
    `prs_0123456789_${"A".repeat(44)}`,
    `prs_012345678I_${"A".repeat(43)}`,
    `PRS_0123456789_${"A".repeat(43)}`,
    ` prs_0123456789_${"A".repeat(43)}`,
    `prs_0123456789_${"A".repeat(42)}=`,
    `prs_0123456789_${"A".repeat(43)}\n`,
  ])("refuses the malformed token %j", (token) => {
    expect(TOKEN_RE.test(token)).toBe(false);
    expect(tokenTree(token)).toBeUndefined();
  });

  it("uses an alphabet without look-alike letters, matched by the regexes", () => {
    expect(ID_ALPHABET).toHaveLength(32);
    expect(ID_ALPHABET).not.toMatch(/[ilou]/);
    expect(GRANT_ID_RE.test(`gr_${ID_ALPHABET.slice(0, 26)}`)).toBe(true);
    expect(GRANT_ID_RE.test(`gr_${"i".repeat(26)}`)).toBe(false);
  });
});
