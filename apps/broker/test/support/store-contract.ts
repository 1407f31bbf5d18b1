import type { AuditEvent } from "@perishable/protocol";
import { describe, expect, it } from "vitest";
import { encodeEvent } from "../../src/audit/encode.js";
import type { RevocationRule } from "../../src/policy/revocation.js";
import { type Candidate, type Store, StoreUnavailableError } from "../../src/store/types.js";
import { describeBudgetContract } from "./budget-contract.js";
import { childGrant, nextToken, rootGrant } from "./records.js";

const allow = (scope: string, limit = 0, windowMs = 0): Candidate => ({
  scope,
  pass: true,
  limit,
  windowMs,
  worst: { usd: 0, tokens: 0 },
});
const fail = (scope: string): Candidate => ({ scope, pass: false, limit: 0, windowMs: 0, worst: null });
const rule = (
  id: string,
  selector: RevocationRule["selector"],
  now: number,
  cutoff: number | null = null,
): RevocationRule => ({
  id,
  selector,
  by: "test",
  createdAt: now,
  cutoff,
  expiresAt: now + 3_600_000,
});
// A store keeps events as it is given them (their shape is the broker's): only who and when count here.
const event = (type: AuditEvent["type"], agent: string, grantId: string | null = null): AuditEvent =>
  ({
    at: new Date().toISOString(),
    type,
    requestId: null,
    grantId,
    tokenId: null,
    rootGrantId: grantId,
    parentGrantId: null,
    agent,
  }) as AuditEvent;

/**
 * The one contract every Store implementation passes. Times are passed in explicitly and stay
 * within RECORD_GRACE_MS of the present, so checks are decided by stored fields (the same way
 * in Redis and in memory), not by whether a key has been evicted yet.
 */
export const describeStoreContract = (name: string, open: () => Promise<Store & AsyncDisposable>) => {
  describe(`Store contract: ${name}`, () => {
    it("authorises a fresh token and tells who it belongs to", async () => {
      await using store = await open();
      const now = Date.now();
      const root = rootGrant(now, { agent: "planner" });
      expect(await store.createGrant(root.grant, root.record)).toEqual({ ok: true });
      const result = await store.authorize(root.ref, now + 1, [allow("llm:complete")]);
      expect(result).toMatchObject({
        ok: true,
        scope: "llm:complete",
        subject: {
          grantId: root.grant.id,
          tokenId: root.record.tokenId,
          rootGrantId: root.grant.id,
          parentGrantId: null,
          agent: "planner",
          issuedAt: now,
        },
      });
    });

    it("refuses an unknown token with token_invalid", async () => {
      await using store = await open();
      const now = Date.now();
      const stranger = rootGrant(now);
      const result = await store.authorize(stranger.ref, now, [allow("llm:complete")]);
      expect(result).toMatchObject({ ok: false, code: "token_invalid", subject: { grantId: null } });
    });

    it("refuses a token past its expiry, and any token past the grant's notAfter, with token_expired", async () => {
      await using store = await open();
      const now = Date.now();
      const root = rootGrant(now, { ttlMs: 10_000, lifetimeMs: 20_000 });
      await store.createGrant(root.grant, root.record);
      expect(await store.authorize(root.ref, now + 9_999, [allow("llm:complete")])).toMatchObject({
        ok: true,
      });
      expect(await store.authorize(root.ref, now + 10_000, [allow("llm:complete")])).toMatchObject({
        ok: false,
        code: "token_expired",
        subject: { grantId: root.grant.id },
      });
      const refreshed = nextToken(root.grant.tree, 60_000);
      const result = await store.refresh(root.ref, now + 5_000, refreshed.input);
      expect(result).toMatchObject({ ok: true, token: { expiresAt: root.grant.notAfter } });
      const newRef = { tree: root.grant.tree, hash: refreshed.input.hash };
      expect(await store.authorize(newRef, now + 20_000, [allow("llm:complete")])).toMatchObject({
        ok: false,
        code: "token_expired",
        reason: { kind: "expired", what: "grant" },
      });
    });

    it("denies scopes the grant does not hold, and reports a failed constraint only for held scopes", async () => {
      await using store = await open();
      const now = Date.now();
      const root = rootGrant(now, { scopes: ["llm:complete", "llm:embed"] });
      await store.createGrant(root.grant, root.record);
      expect(await store.authorize(root.ref, now, [])).toMatchObject({ ok: false, code: "scope_denied" });
      expect(await store.authorize(root.ref, now, [allow("storage:read")])).toMatchObject({
        ok: false,
        code: "scope_denied",
      });
      expect(await store.authorize(root.ref, now, [fail("storage:read")])).toMatchObject({
        ok: false,
        code: "scope_denied",
      });
      expect(await store.authorize(root.ref, now, [fail("llm:complete")])).toMatchObject({
        ok: false,
        code: "constraint_denied",
        reason: { kind: "constraint", scope: "llm:complete" },
      });
      expect(
        await store.authorize(root.ref, now, [
          fail("llm:complete"),
          allow("storage:read"),
          allow("llm:embed"),
        ]),
      ).toMatchObject({
        ok: true,
        scope: "llm:embed",
      });
    });

    it("revokes a grant and its whole subtree, counts it once, and never re-enables it", async () => {
      await using store = await open();
      const now = Date.now();
      const root = rootGrant(now);
      const child = childGrant(now, root.grant);
      const grandchild = childGrant(now, child.grant);
      const sibling = childGrant(now, root.grant);
      for (const g of [root, child, grandchild, sibling]) {
        await store.createGrant(g.grant, g.record);
      }
      expect((await store.revokeGrant(child.grant.id, now)).grants).toBe(2);
      expect((await store.revokeGrant(child.grant.id, now)).grants).toBe(0);
      expect(await store.authorize(child.ref, now, [allow("llm:complete")])).toMatchObject({
        ok: false,
        code: "token_revoked",
        reason: { kind: "grant", id: child.grant.id },
      });
      expect(await store.authorize(grandchild.ref, now, [allow("llm:complete")])).toMatchObject({
        ok: false,
        code: "token_revoked",
        subject: { grantId: grandchild.grant.id, parentGrantId: child.grant.id, rootGrantId: root.grant.id },
      });
      expect(await store.authorize(root.ref, now, [allow("llm:complete")])).toMatchObject({ ok: true });
      expect(await store.authorize(sibling.ref, now, [allow("llm:complete")])).toMatchObject({ ok: true });
      // Terminal: a refresh or an inspect of a revoked grant is refused too.
      expect(await store.refresh(child.ref, now, nextToken(child.grant.tree).input)).toMatchObject({
        code: "token_revoked",
      });
      expect(await store.inspect(grandchild.ref, now)).toMatchObject({ code: "token_revoked" });
      expect((await store.revokeGrant(root.grant.id, now)).grants).toBe(2);
      expect(await store.authorize(sibling.ref, now, [allow("llm:complete")])).toMatchObject({
        code: "token_revoked",
      });
    });

    it("checks the parent token in the same step that creates a child", async () => {
      await using store = await open();
      const now = Date.now();
      const root = rootGrant(now);
      await store.createGrant(root.grant, root.record);
      await store.revokeGrant(root.grant.id, now);
      const child = childGrant(now, root.grant);
      expect(await store.createGrant(child.grant, child.record, root.ref, now)).toMatchObject({
        ok: false,
        code: "token_revoked",
      });
      expect(await store.authorize(child.ref, now, [allow("llm:complete")])).toMatchObject({
        code: "token_invalid",
      });
    });

    it("refuses a child past its parent's maxChildren, for the parent's whole life", async () => {
      await using store = await open();
      const now = Date.now();
      const root = rootGrant(now, { maxChildren: 2 });
      await store.createGrant(root.grant, root.record);
      for (let i = 0; i < 2; i++) {
        const child = childGrant(now, root.grant);
        expect(await store.createGrant(child.grant, child.record, root.ref, now)).toEqual({ ok: true });
        await store.revokeGrant(child.grant.id, now); // revoked children still count
      }
      const third = childGrant(now, root.grant);
      expect(await store.createGrant(third.grant, third.record, root.ref, now)).toMatchObject({
        ok: false,
        code: "delegation_denied",
        reason: { kind: "children", limit: 2 },
      });
      expect(await store.authorize(third.ref, now, [allow("llm:complete")])).toMatchObject({
        code: "token_invalid",
      });
    });

    it("refreshes: the new token works, the old one keeps working until its own expiry", async () => {
      await using store = await open();
      const now = Date.now();
      const root = rootGrant(now, { ttlMs: 30_000 });
      await store.createGrant(root.grant, root.record);
      const next = nextToken(root.grant.tree);
      const result = await store.refresh(root.ref, now + 15_000, next.input);
      expect(result).toMatchObject({
        ok: true,
        token: {
          grantId: root.grant.id,
          issuedAt: now + 15_000,
          expiresAt: now + 45_000,
          tokenId: next.input.tokenId,
        },
        grant: { id: root.grant.id, scopes: ["llm:complete"], metadata: { purpose: "contract" } },
      });
      const newRef = { tree: root.grant.tree, hash: next.input.hash };
      expect(await store.authorize(root.ref, now + 29_000, [allow("llm:complete")])).toMatchObject({
        ok: true,
      });
      expect(await store.authorize(newRef, now + 29_000, [allow("llm:complete")])).toMatchObject({
        ok: true,
        subject: { tokenId: next.input.tokenId, issuedAt: now + 15_000 },
      });
      expect(await store.authorize(root.ref, now + 30_000, [allow("llm:complete")])).toMatchObject({
        code: "token_expired",
      });
      expect(await store.authorize(newRef, now + 30_000, [allow("llm:complete")])).toMatchObject({
        ok: true,
      });
    });

    it("refuses a refresh above the grant's max_ttl with ttl_exceeded", async () => {
      await using store = await open();
      const now = Date.now();
      const root = rootGrant(now, { maxTtlMs: 120_000 });
      await store.createGrant(root.grant, root.record);
      expect(await store.refresh(root.ref, now, nextToken(root.grant.tree, 120_001).input)).toMatchObject({
        ok: false,
        code: "ttl_exceeded",
      });
      expect(await store.refresh(root.ref, now, nextToken(root.grant.tree, 120_000).input)).toMatchObject({
        ok: true,
      });
    });

    it("inspects a token: its record, its grant and the uses spent", async () => {
      await using store = await open();
      const now = Date.now();
      const root = rootGrant(now, { maxUses: 5, scopes: ["a", "b"] });
      const child = childGrant(now, root.grant, { scopes: ["a"] });
      await store.createGrant(root.grant, root.record);
      await store.createGrant(child.grant, child.record, root.ref, now);
      await store.authorize(root.ref, now, [allow("a")]);
      const inspected = await store.inspect(child.ref, now);
      expect(inspected).toMatchObject({ ok: true, token: child.record, used: 0 });
      if (inspected.ok) expect(inspected.grant).toEqual(child.grant);
      expect(await store.inspect(root.ref, now)).toMatchObject({ ok: true, used: 1, grant: { maxUses: 5 } });
    });

    it("enforces maxUses, and counts a child's use against every ancestor", async () => {
      await using store = await open();
      const now = Date.now();
      const root = rootGrant(now, { maxUses: 3 });
      const child = childGrant(now, root.grant);
      await store.createGrant(root.grant, root.record);
      await store.createGrant(child.grant, child.record);
      expect(await store.authorize(child.ref, now, [allow("llm:complete")])).toMatchObject({ ok: true });
      expect(await store.authorize(child.ref, now, [allow("llm:complete")])).toMatchObject({ ok: true });
      expect(await store.authorize(root.ref, now, [allow("llm:complete")])).toMatchObject({ ok: true });
      expect(await store.authorize(root.ref, now, [allow("llm:complete")])).toMatchObject({
        code: "forbidden",
        reason: { kind: "uses", limit: 3 },
      });
      expect(await store.authorize(child.ref, now, [allow("llm:complete")])).toMatchObject({
        code: "forbidden",
        reason: { kind: "uses", limit: 3, ancestor: root.grant.id },
      });
      // A denied request spends nothing.
      expect(await store.inspect(root.ref, now)).toMatchObject({ used: 3 });
    });

    it("rate-limits per grant and scope over a sliding window, shared with every ancestor", async () => {
      await using store = await open();
      const window = 60_000;
      // Start of a window, so the previous window is empty and the arithmetic is exact.
      const now = Math.floor(Date.now() / window) * window + 1_000;
      const root = rootGrant(now, { ttlMs: 600_000 });
      const child = childGrant(now, root.grant);
      const other = rootGrant(now);
      for (const g of [root, child, other]) await store.createGrant(g.grant, g.record);
      const limited = [allow("llm:complete", 3, window)];
      expect(await store.authorize(child.ref, now, limited)).toMatchObject({ ok: true });
      expect(await store.authorize(child.ref, now, limited)).toMatchObject({ ok: true });
      expect(await store.authorize(root.ref, now, limited)).toMatchObject({ ok: true });
      const denied = await store.authorize(root.ref, now + 10, limited);
      expect(denied).toMatchObject({
        ok: false,
        code: "rate_limited",
        reason: { kind: "rate", scope: "llm:complete" },
      });
      if (!denied.ok) expect(denied.retryAfterMs).toBe(window - 1_010);
      expect(await store.authorize(child.ref, now + 10, limited)).toMatchObject({
        code: "rate_limited",
        reason: { kind: "rate", scope: "llm:complete", ancestor: root.grant.id },
      });
      // Other grants and other scopes have their own counters.
      expect(await store.authorize(other.ref, now, limited)).toMatchObject({ ok: true });
      expect(await store.authorize(root.ref, now, [allow("llm:complete", 0, 0)])).toMatchObject({ ok: true });
      // Halfway through the next window, half of the previous window still counts: 3 × 0.5 = 1.5 → one more fits.
      const later = now - 1_000 + window + window / 2;
      expect(await store.authorize(root.ref, later, limited)).toMatchObject({ ok: true });
      expect(await store.authorize(root.ref, later, limited)).toMatchObject({ code: "rate_limited" });
    });

    it("revokes one token by its id, leaving the grant's other tokens working", async () => {
      await using store = await open();
      const now = Date.now();
      const root = rootGrant(now);
      await store.createGrant(root.grant, root.record);
      const next = nextToken(root.grant.tree);
      await store.refresh(root.ref, now, next.input);
      expect(await store.revokeToken(root.record.tokenId, now)).toMatchObject({
        status: "revoked",
        subject: { grantId: root.grant.id, tokenId: root.record.tokenId, agent: root.grant.agent },
      });
      expect(await store.revokeToken(root.record.tokenId, now)).toMatchObject({ status: "already" });
      expect(await store.revokeToken("tk_0123456789abcdefghjkmnpq", now)).toEqual({ status: "none" });
      expect(await store.getToken(root.record.tokenId, now)).toEqual({
        tokenId: root.record.tokenId,
        grantId: root.grant.id,
        issuedAt: root.record.issuedAt,
        expiresAt: root.record.expiresAt,
        revoked: true,
      });
      expect(await store.getToken(next.input.tokenId, now)).toMatchObject({
        revoked: false,
        grantId: root.grant.id,
      });
      expect(await store.getToken("tk_0123456789abcdefghjkmnpqrs", now)).toBeUndefined();
      expect(await store.authorize(root.ref, now, [allow("llm:complete")])).toMatchObject({
        code: "token_revoked",
      });
      expect(
        await store.authorize({ tree: root.grant.tree, hash: next.input.hash }, now, [allow("llm:complete")]),
      ).toMatchObject({ ok: true });
    });

    it("shows a grant with its state, ancestors (root first) and subtree (parents first)", async () => {
      await using store = await open();
      const now = Date.now();
      const root = rootGrant(now, { maxUses: 10 });
      const child = childGrant(now, root.grant);
      const grandchild = childGrant(now, child.grant);
      for (const g of [root, child, grandchild]) await store.createGrant(g.grant, g.record);
      await store.authorize(grandchild.ref, now, [allow("llm:complete")]);
      await store.revokeGrant(grandchild.grant.id, now);
      expect(await store.getGrant(root.grant.id, now)).toMatchObject({
        grant: root.grant,
        revokedAt: null,
        used: 1,
        latestTokenId: root.record.tokenId,
        latestExpiresAt: root.record.expiresAt,
      });
      const lineage = await store.getLineage(child.grant.id, now);
      expect(lineage?.grant.grant.id).toBe(child.grant.id);
      expect(lineage?.ancestors.map((a) => a.grant.id)).toEqual([root.grant.id]);
      expect(lineage?.subtree.map((s) => [s.grant.id, s.revokedAt])).toEqual([[grandchild.grant.id, now]]);
      const fromRoot = await store.getLineage(root.grant.id, now);
      expect(fromRoot?.subtree.map((s) => s.grant.id)).toEqual([child.grant.id, grandchild.grant.id]);
      expect(await store.getGrant("gr_0123456789abcdefghjkmnpq", now)).toBeUndefined();
    });

    it("lists live grants with filters, a page at a time", async () => {
      await using store = await open();
      const now = Date.now();
      const a = rootGrant(now, { agent: "alpha", scopes: ["llm:complete", "llm:embed"] });
      const b = rootGrant(now, { agent: "beta" });
      const bChild = childGrant(now, b.grant, { agent: "beta-sub" });
      const gone = rootGrant(now, { agent: "alpha" });
      for (const g of [a, b, bChild, gone]) await store.createGrant(g.grant, g.record);
      await store.revokeGrant(gone.grant.id, now);
      const ids = async (filter: Parameters<Store["listGrants"]>[0]) => {
        const seen: string[] = [];
        let cursor: string | null = null;
        do {
          const page: Awaited<ReturnType<Store["listGrants"]>> = await store.listGrants(
            filter,
            cursor,
            2,
            now,
          );
          seen.push(...page.grants.map((g) => g.grant.id));
          cursor = page.next;
        } while (cursor);
        return seen.sort();
      };
      expect(await ids({})).toEqual([a, b, bChild].map((g) => g.grant.id).sort());
      expect(await ids({ agent: "alpha" })).toEqual([a.grant.id]);
      expect(await ids({ scope: "llm:embed" })).toEqual([a.grant.id]);
      expect(await ids({ rootGrantId: b.grant.id })).toEqual([b, bChild].map((g) => g.grant.id).sort());
    });

    it("enforces a revocation rule on every matching grant and its subtree, and nothing else", async () => {
      await using store = await open();
      const now = Date.now();
      const planner = rootGrant(now, { agent: "planner" });
      const sub = childGrant(now, planner.grant, { agent: "researcher" });
      const other = rootGrant(now, { agent: "writer", scopes: ["llm:embed"] });
      for (const g of [planner, sub, other]) await store.createGrant(g.grant, g.record);
      await store.putRule(rule("rv_1", { agent: "planner" }, now));
      expect(store.rules().map((r) => r.id)).toEqual(["rv_1"]);
      expect(await store.authorize(planner.ref, now, [allow("llm:complete")])).toMatchObject({
        code: "token_revoked",
        reason: { kind: "rule", id: "rv_1" },
      });
      expect(await store.authorize(sub.ref, now, [allow("llm:complete")])).toMatchObject({
        code: "token_revoked",
        reason: { kind: "rule", id: "rv_1", ancestor: planner.grant.id },
      });
      expect(await store.inspect(sub.ref, now)).toMatchObject({ code: "token_revoked" });
      expect(await store.refresh(planner.ref, now, nextToken(planner.grant.tree).input)).toMatchObject({
        code: "token_revoked",
      });
      expect(await store.authorize(other.ref, now, [allow("llm:embed")])).toMatchObject({ ok: true });
      await store.putRule(rule("rv_2", { scope: "llm:embed" }, now));
      // onBehalfOf: the lineage's person, on every level (the child is caught through its root).
      const alice = rootGrant(now, { agent: "helper", onBehalfOf: "user:alice" });
      const aliceChild = childGrant(now, alice.grant, { agent: "helper-sub" });
      const bob = rootGrant(now, { agent: "helper", onBehalfOf: "user:bob" });
      for (const g of [alice, aliceChild, bob]) await store.createGrant(g.grant, g.record);
      for (const g of [alice, aliceChild, bob])
        expect(await store.authorize(g.ref, now, [allow("llm:complete")])).toMatchObject({ ok: true });
      await store.putRule(rule("rv_obo", { onBehalfOf: "user:alice" }, now));
      for (const g of [alice, aliceChild])
        expect(await store.authorize(g.ref, now, [allow("llm:complete")])).toMatchObject({
          code: "token_revoked",
          reason: { kind: "rule", id: "rv_obo" },
          subject: { onBehalfOf: "user:alice" },
        });
      expect(await store.authorize(bob.ref, now, [allow("llm:complete")])).toMatchObject({ ok: true });
      expect(await store.authorize(other.ref, now, [allow("llm:embed")])).toMatchObject({
        code: "token_revoked",
        reason: { kind: "rule", id: "rv_2" },
      });
    });

    it("applies a rule added after a token was first used, among thousands that select others", async () => {
      await using store = await open();
      const now = Date.now();
      const planner = rootGrant(now, { agent: "planner", scopes: ["llm:complete", "llm:embed"] });
      const sub = childGrant(now, planner.grant, { agent: "researcher", scopes: ["llm:embed"] });
      for (const g of [planner, sub]) await store.createGrant(g.grant, g.record);
      expect(await store.authorize(sub.ref, now, [allow("llm:embed")])).toMatchObject({ ok: true });
      for (let i = 0; i < 1_000; i++)
        await store.putRule(rule(`rv_other_${i}`, { agent: `bystander-${i}` }, now));
      await store.putRule(rule("rv_scope", { scope: "llm:complete" }, now));
      expect(await store.authorize(sub.ref, now, [allow("llm:embed")])).toMatchObject({
        code: "token_revoked",
        reason: { kind: "rule", id: "rv_scope", ancestor: planner.grant.id },
      });
      // The other scripts that act on a token carry only the rules that could select it too.
      expect(await store.inspect(sub.ref, now)).toMatchObject({ code: "token_revoked" });
      expect(await store.refresh(sub.ref, now, nextToken(sub.grant.tree).input)).toMatchObject({
        code: "token_revoked",
      });
      const grandchild = childGrant(now, sub.grant);
      expect(await store.createGrant(grandchild.grant, grandchild.record, sub.ref, now)).toMatchObject({
        code: "token_revoked",
      });
      const other = rootGrant(now, { agent: "bystander-x" });
      await store.createGrant(other.grant, other.record);
      expect(await store.authorize(other.ref, now, [allow("llm:complete")])).toMatchObject({
        code: "token_revoked",
        reason: { kind: "rule", id: "rv_scope" },
      });
      const free = rootGrant(now, { agent: "bystander-y", scopes: ["llm:embed"] });
      await store.createGrant(free.grant, free.record);
      expect(await store.authorize(free.ref, now, [allow("llm:embed")])).toMatchObject({ ok: true });
      expect(await store.authorize(free.ref, now, [allow("llm:embed")])).toMatchObject({ ok: true });
      await store.putRule(rule("rv_root", { rootGrantId: free.grant.id }, now));
      expect(await store.authorize(free.ref, now, [allow("llm:embed")])).toMatchObject({
        code: "token_revoked",
        reason: { kind: "rule", id: "rv_root" },
      });
    });

    it("leaves grants created after a rule's cutoff alone, and honours issuedAfter / issuedBefore", async () => {
      await using store = await open();
      const now = Date.now();
      const before = rootGrant(now - 10_000, { agent: "planner" });
      const after = rootGrant(now + 10, { agent: "planner" });
      for (const g of [before, after]) await store.createGrant(g.grant, g.record);
      await store.putRule(rule("rv_cut", { agent: "planner" }, now, now));
      expect(await store.authorize(before.ref, now + 20, [allow("llm:complete")])).toMatchObject({
        code: "token_revoked",
      });
      expect(await store.authorize(after.ref, now + 20, [allow("llm:complete")])).toMatchObject({ ok: true });
      await store.putRule(
        rule(
          "rv_win",
          { issuedAfter: new Date(now).toISOString(), issuedBefore: new Date(now + 100).toISOString() },
          now,
        ),
      );
      expect(await store.authorize(after.ref, now + 20, [allow("llm:complete")])).toMatchObject({
        code: "token_revoked",
        reason: { kind: "rule", id: "rv_win" },
      });
    });

    it("purges what a rule selects: grants, subtrees, tokens; their tokens then read as revoked", async () => {
      await using store = await open();
      const now = Date.now();
      const victims = Array.from({ length: 5 }, () => rootGrant(now, { agent: "rogue" }));
      const victimChild = childGrant(now, victims[0]!.grant, { agent: "helper" });
      const keep = rootGrant(now, { agent: "honest" });
      for (const g of [...victims, victimChild, keep]) await store.createGrant(g.grant, g.record);
      await store.refresh(victims[1]!.ref, now, nextToken(victims[1]!.grant.tree).input);
      const r = rule("rv_purge", { agent: "rogue" }, now);
      expect(await store.preview(r, now)).toBe(6);
      expect(await store.preview(rule("rv_none", { agent: "nobody" }, now), now)).toBe(0);
      await store.putRule(r);
      expect(await store.countLiveGrants(now)).toBe(7);
      expect(await store.purge(r, now)).toEqual({ grants: 6, tokens: 7, connections: 0 });
      expect(await store.countLiveGrants(now)).toBe(1);
      for (const g of [...victims, victimChild]) {
        expect(await store.authorize(g.ref, now, [allow("llm:complete")])).toMatchObject({
          code: "token_revoked",
        });
        expect(await store.getGrant(g.grant.id, now)).toBeUndefined();
      }
      expect(await store.authorize(keep.ref, now, [allow("llm:complete")])).toMatchObject({ ok: true });
      expect(await store.purge(r, now)).toEqual({ grants: 0, tokens: 0, connections: 0 });
    });

    it("hands out each grant whose newest token expired exactly once", async () => {
      await using store = await open();
      const now = Date.now();
      const quiet = rootGrant(now, { ttlMs: 10_000, agent: "quiet" });
      const busy = rootGrant(now, { ttlMs: 10_000, agent: "busy" });
      const ended = rootGrant(now, { ttlMs: 10_000, lifetimeMs: 10_000, agent: "ended" });
      const revoked = rootGrant(now, { ttlMs: 10_000 });
      for (const g of [quiet, busy, ended, revoked]) await store.createGrant(g.grant, g.record);
      await store.refresh(busy.ref, now + 5_000, nextToken(busy.grant.tree).input);
      expect(await store.countLiveGrants(now + 1)).toBe(4);
      await store.revokeGrant(revoked.grant.id, now);
      expect(await store.countLiveGrants(now + 1)).toBe(3);
      const claimed = await store.claimExpired(now + 10_000, 100);
      expect(claimed.map((c) => [c.subject.agent, c.reason]).sort()).toEqual([
        ["ended", "grant"],
        ["quiet", "token"],
      ]);
      expect(claimed.find((c) => c.subject.agent === "quiet")?.subject).toMatchObject({
        grantId: quiet.grant.id,
        tokenId: quiet.record.tokenId,
        rootGrantId: quiet.grant.id,
      });
      expect(await store.claimExpired(now + 10_000, 100)).toEqual([]);
      expect((await store.claimExpired(now + 15_000, 100)).map((c) => c.subject.agent)).toEqual(["busy"]);
    });

    it("reads the audit trail: newest first pages, filters, and a cursor for what comes next", async () => {
      await using store = await open();
      await store.appendAudit(
        [
          event("issued", "a", "g1"),
          event("used", "a", "g1"),
          event("denied", "b", "g2"),
          event("used", "b", "g2"),
        ].map(encodeEvent),
      );
      const latest = await store.readAudit({ limit: 2 });
      expect(latest.records.map((r) => [r.event.type, r.event.agent])).toEqual([
        ["denied", "b"],
        ["used", "b"],
      ]);
      expect((await store.readAudit({ limit: 10, agent: "a" })).records.map((r) => r.event.type)).toEqual([
        "issued",
        "used",
      ]);
      expect((await store.readAudit({ limit: 10, type: "used" })).records.map((r) => r.event.agent)).toEqual([
        "a",
        "b",
      ]);
      expect((await store.readAudit({ limit: 10, grantId: "g2" })).records).toHaveLength(2);
      await store.appendAudit([encodeEvent(event("revoked", "c"))]);
      const newer = await store.readAudit({ limit: 10, after: latest.next! });
      expect(newer.records.map((r) => r.event.type)).toEqual(["revoked"]);
      expect((await store.readAudit({ limit: 10, after: newer.next! })).records).toEqual([]);
      const first = (await store.readAudit({ limit: 10 })).records[0]!;
      expect((await store.readAudit({ limit: 2, after: first.id })).records.map((r) => r.event.type)).toEqual(
        ["used", "denied"],
      );
    });

    it("appends audit events in order, each batch as it was sent", async () => {
      await using store = await open();
      const batch = Array.from({ length: 5 }, (_, i) => event("used", `agent-${i}`));
      await store.appendAudit(batch.map(encodeEvent));
      await store.appendAudit([]);
      const read = await store.readAudit({ limit: 10 });
      expect(read.records.map((r) => r.event.agent)).toEqual(batch.map((e) => e.agent));
      expect(read.records.map((r) => r.event)).toEqual(batch);
    });

    it("hands what a revocation ended to every node before it answers: subtrees, tokens, purges", async () => {
      await using store = await open();
      const now = Date.now();
      const heard: { grants: string[]; tokens: string[] }[] = [];
      const stop = store.serve({
        cut: (cut) => {
          heard.push({ grants: [...cut.grants], tokens: [...cut.tokens] });
          return cut.grants.length + cut.tokens.length;
        },
        live: async () => [],
        resync: async () => {},
      });
      const root = rootGrant(now, { agent: "pushed" });
      const child = childGrant(now, root.grant);
      const other = rootGrant(now, { agent: "purged-one" });
      await store.createGrant(root.grant, root.record);
      await store.createGrant(child.grant, child.record, root.ref, now);
      await store.createGrant(other.grant, other.record);
      // No waiting: each call answers once every node (this one) has cut, and says how many it cut.
      expect(await store.revokeGrant(root.grant.id, now)).toEqual({ grants: 2, connections: 2 });
      expect(heard).toHaveLength(1);
      expect(heard[0]?.grants.sort()).toEqual([root.grant.id, child.grant.id].sort());
      const token = await store.revokeToken(other.record.tokenId, now);
      expect(token).toMatchObject({ status: "revoked", connections: 1 });
      expect(heard[1]).toEqual({ grants: [], tokens: [other.record.tokenId] });
      const purged = await store.purge(rule("rv_push", { agent: "purged-one" }, now), now);
      expect(purged).toMatchObject({ grants: 1, connections: 1 });
      expect(heard[2]?.grants).toEqual([other.grant.id]);
      stop();
    });

    describeBudgetContract(open);

    it("answers ping while open, and refuses once closed", async () => {
      const store = await open();
      await expect(store.ping()).resolves.toBeUndefined();
      await store[Symbol.asyncDispose]();
      await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
    });
  });
};
