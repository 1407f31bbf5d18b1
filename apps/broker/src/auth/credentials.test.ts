import { describe, expect, it } from "vitest";
import { presentedCredential } from "./credentials.js";

const token = `prs_0123456789_${"a".repeat(43)}`;

describe("presentedCredential", () => {
  it.each([
    [{ authorization: `Bearer ${token}` }, "token"],
    [{ authorization: `bearer ${token}` }, "token"],
    [{ "x-api-key": token }, "token"],
    [{ "api-key": token }, "token"],
    [{ authorization: `Bearer ${token}`, "x-api-key": token }, "token"],
    [{ authorization: "Bearer pik_somekey" }, "key"],
    [{}, "none"],
    [{ authorization: `Basic ${token}` }, "malformed"],
    [{ authorization: "Bearer" }, "malformed"],
    [{ authorization: `Bearer ${token} extra` }, "malformed"],
    [{ authorization: `Bearer ${token}`, "x-api-key": "sk-other" }, "conflict"],
    [{ "x-api-key": [token, token] }, "conflict"],
    [{ authorization: "Bearer prs_short" }, "bad-token"],
    [{ authorization: `Bearer prs_ABCDEFGHJK_${"a".repeat(43)}` }, "bad-token"],
  ])("%j is %s", (headers, kind) => {
    const raw = Object.entries(headers).flatMap(([name, value]) =>
      Array.isArray(value) ? value.flatMap((v) => [name, v]) : [name, value],
    );
    expect(presentedCredential(raw).kind).toBe(kind);
  });

  it.each([
    [["Authorization", `Bearer ${token}`, "Authorization", `Bearer ${token}`]],
    [["Authorization", `Bearer ${token}`, "authorization", "Bearer prs_other"]],
    [["x-api-key", token, "X-Api-Key", token]],
    [["Host", "a", "host", "b", "Authorization", `Bearer ${token}`]],
  ])("refuses repeated credential or Host headers, which Node would have collapsed: %j", (raw) => {
    expect(presentedCredential(raw).kind).toBe("conflict");
  });

  it("reads the tree from the token", () => {
    expect(presentedCredential(["Authorization", `Bearer ${token}`])).toEqual({
      kind: "token",
      token,
      tree: "0123456789",
      dpop: false,
    });
    expect(presentedCredential(["Authorization", `DPoP ${token}`])).toMatchObject({
      kind: "token",
      dpop: true,
    });
  });
});
