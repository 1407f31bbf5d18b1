import { startDevBroker } from "@perishable/broker";
import { startRedisServer } from "@perishable/test-support";
import { describe, expect, it } from "vitest";
import { connect, type RefreshedEvent, type SessionErrorEvent } from "../src/index.js";

describe("a store outage, seen from the SDK", () => {
  it("keeps the current token, retries the refresh with backoff, and carries on once the broker can answer", async () => {
    await using redis = await startRedisServer({ durable: true });
    await using dev = await startDevBroker({ redis: { url: redis.url } });
    const session = await connect({
      broker: dev.url,
      credential: dev.issuerKey,
      scopes: ["models:read"],
      ttl: 6,
      jitter: 0,
    });
    const errors: SessionErrorEvent[] = [];
    const refreshed: RefreshedEvent[] = [];
    let expired = false;
    session.on("error", (e) => errors.push(e));
    session.on("refreshed", (e) => refreshed.push(e));
    session.on("expired", () => {
      expired = true;
    });
    const firstToken = session.token;
    await redis.stop();
    // The refresh is due at 3 s; Redis comes back at 4.2 s, the token would die at 6 s.
    await new Promise((resolve) => setTimeout(resolve, 4_200));
    expect(session.token).toBe(firstToken);
    expect(errors.length).toBeGreaterThan(0);
    expect(
      errors.every((e) => e.willRetry && (e.error as { code?: string }).code === "store_unavailable"),
    ).toBe(true);
    await redis.start();
    await expect.poll(() => refreshed.length, { timeout: 4_000, interval: 50 }).toBeGreaterThan(0);
    expect(expired).toBe(false);
    expect(session.state).toBe("live");
    expect(session.token).not.toBe(firstToken);
    expect((await session.fetch("/proxy/openai/v1/models")).status).toBe(200);
    session.close();
  });
});
