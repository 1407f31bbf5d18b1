import { exportJWK, generateKeyPair, type JWK, jwtVerify, SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { RemoteKeys } from "./jwks.js";

/** A fake provider: a JWKS served by an injected fetch, on a fake clock. */
const setup = async () => {
  let now = 1_000_000;
  let published: JWK[] = [];
  let fetches = 0;
  const keys = new RemoteKeys(new URL("https://idp.example/jwks"), {
    cooldownMs: 1_000,
    maxFetchesPerMinute: 10,
    cacheMs: 600_000,
    timeoutMs: 1_000,
    now: () => now,
    fetch: async () => {
      fetches += 1;
      await new Promise((resolve) => setTimeout(resolve, 5));
      return new Response(JSON.stringify({ keys: published }), { status: 200 });
    },
  });
  return {
    keys,
    publish: (...jwks: JWK[]) => {
      published = jwks;
    },
    advance: (ms: number) => {
      now += ms;
    },
    fetches: () => fetches,
  };
};

let signer: { kid: string; jwk: JWK; sign: (kid?: string) => Promise<string> }[];
beforeAll(async () => {
  signer = await Promise.all(
    ["k1", "k2"].map(async (kid) => {
      const { privateKey, publicKey } = await generateKeyPair("ES256");
      const jwk = { ...(await exportJWK(publicKey)), kid, alg: "ES256" };
      const sign = (as = kid) =>
        new SignJWT({ sub: "a" }).setProtectedHeader({ alg: "ES256", kid: as }).sign(privateKey);
      return { kid, jwk, sign };
    }),
  );
});

const verifies = async (keys: RemoteKeys, jwt: string) =>
  jwtVerify(jwt, keys.getKey).then(
    () => true,
    () => false,
  );

describe("an identity provider's keys", () => {
  it("fetches once for many concurrent first uses", async () => {
    const p = await setup();
    p.publish(signer[0]!.jwk);
    const jwt = await signer[0]!.sign();
    const results = await Promise.all(Array.from({ length: 20 }, () => verifies(p.keys, jwt)));
    expect(results.every(Boolean)).toBe(true);
    expect(p.fetches()).toBe(1);
  });

  it("picks up a rotation as soon as the cooldown after the last fetch is over", async () => {
    const p = await setup();
    p.publish(signer[0]!.jwk);
    expect(await verifies(p.keys, await signer[0]!.sign())).toBe(true);
    p.publish(signer[1]!.jwk);
    p.advance(999);
    expect(await verifies(p.keys, await signer[1]!.sign())).toBe(false);
    p.advance(1);
    expect(await verifies(p.keys, await signer[1]!.sign())).toBe(true);
    expect(p.fetches()).toBe(2);
  });

  it("caps the fetches unknown key ids cause at 10 a minute, then recovers", async () => {
    const p = await setup();
    p.publish(signer[0]!.jwk);
    expect(await verifies(p.keys, await signer[0]!.sign())).toBe(true);
    // 200 made-up key ids over 50 s: one every 250 ms, so the cooldown alone would allow 50 fetches.
    for (let i = 0; i < 200; i++) {
      p.advance(250);
      expect(await verifies(p.keys, await signer[0]!.sign(`bogus-${i}`))).toBe(false);
    }
    expect(p.fetches()).toBe(1 + 10);
    // Known keys keep working from the cache throughout, and the window moves on.
    expect(await verifies(p.keys, await signer[0]!.sign())).toBe(true);
    p.publish(signer[0]!.jwk, signer[1]!.jwk);
    p.advance(60_000);
    expect(await verifies(p.keys, await signer[1]!.sign())).toBe(true);
    expect(p.fetches()).toBe(12);
  });

  it("fetches again when the cache is old, and fails when the provider answers without keys", async () => {
    const p = await setup();
    p.publish(signer[0]!.jwk);
    expect(await verifies(p.keys, await signer[0]!.sign())).toBe(true);
    p.advance(600_000);
    p.publish();
    expect(await verifies(p.keys, await signer[0]!.sign())).toBe(false);
    expect(p.fetches()).toBe(2);
  });
});
