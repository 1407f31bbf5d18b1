import { type DevBroker, startDevBroker } from "@perishable/broker";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, PerishableError, type Session } from "../src/index.js";

/** The dev config: these scopes, issuer max_ttl 900 s, max_lifetime 86 400 s, max_depth 4. */
const UNIVERSE = ["llm:complete", "llm:embed", "models:read", "claude:messages"] as const;
const MAX_TTL = 900;
const MAX_DEPTH = 4;

let dev: DevBroker;
beforeAll(async () => {
  dev = await startDevBroker();
});
afterAll(async () => {
  await dev?.close();
});

const scopeSet = fc.subarray([...UNIVERSE], { minLength: 1 });
const step = fc.record({
  scopes: scopeSet,
  ttl: fc.integer({ min: 1, max: 1200 }),
  lifetime: fc.option(fc.integer({ min: 1, max: 100_000 }), { nil: undefined }),
});

describe("delegation attenuation (property)", () => {
  it("never gives a child a scope, a lifetime, a ttl or a depth its parent does not allow", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          scopes: scopeSet,
          ttl: fc.integer({ min: 1, max: MAX_TTL }),
          lifetime: fc.integer({ min: 600, max: 86_400 }),
        }),
        fc.array(step, { minLength: 1, maxLength: 6 }),
        async (root, steps) => {
          const sessions: Session[] = [];
          try {
            let parent = await connect({ broker: dev.url, credential: dev.issuerKey, ...root });
            sessions.push(parent);
            for (const s of steps) {
              const remainingMs = Date.parse(parent.grant.notAfter) - Date.now();
              const beyond = s.scopes.some((scope) => !parent.grant.scopes.includes(scope));
              const tooDeep = parent.grant.depth + 1 > MAX_DEPTH;
              const ttlTooLong = s.ttl > MAX_TTL;
              const lifetimeTooLong = s.lifetime !== undefined && s.lifetime * 1000 > remainingMs;
              if (s.lifetime !== undefined && Math.abs(s.lifetime * 1000 - remainingMs) < 5_000) continue; // too close to call
              const outcome = await parent.delegate(s).catch((error: unknown) => error);
              if (beyond || tooDeep) {
                expect(outcome).toMatchObject({ code: "delegation_denied" });
              } else if (ttlTooLong || lifetimeTooLong) {
                expect(outcome).toMatchObject({ code: "ttl_exceeded" });
              } else {
                expect(outcome).not.toBeInstanceOf(PerishableError);
                const child = outcome as Session;
                sessions.push(child);
                expect(child.grant.scopes.every((scope) => parent.grant.scopes.includes(scope))).toBe(true);
                expect(Date.parse(child.grant.notAfter)).toBeLessThanOrEqual(
                  Date.parse(parent.grant.notAfter),
                );
                expect(child.grant.depth).toBe(parent.grant.depth + 1);
                expect(child.grant.depth).toBeLessThanOrEqual(MAX_DEPTH);
                expect(child.grant.rootGrantId).toBe(parent.grant.rootGrantId);
                expect(Date.parse(child.grant.expiresAt)).toBeLessThanOrEqual(
                  Date.parse(child.grant.notAfter),
                );
                parent = child;
              }
            }
          } finally {
            for (const s of sessions) s.close();
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});
