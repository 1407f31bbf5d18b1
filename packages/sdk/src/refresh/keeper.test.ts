import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { PerishableError } from "../errors.js";
import { type HeldToken, type KeeperHooks, type KeeperOptions, TokenKeeper } from "./keeper.js";

const SECOND = 1000;
let counter = 0;

/** A token issued now, living `ttl` ms, in a grant that ends at `notAfter` (default: much later). */
const tokenAt = (now: number, ttl: number, notAfter = now + 3600 * SECOND): HeldToken => ({
  token: `prs_tok${++counter}`,
  tokenId: `tk_${counter}`,
  issuedAt: now,
  expiresAt: Math.min(now + ttl, notAfter),
  notAfter,
  expiresAtIso: new Date(Math.min(now + ttl, notAfter)).toISOString(),
});

const hooks = () => {
  const calls = {
    refreshed: [] as HeldToken[],
    expired: [] as string[],
    revoked: [] as unknown[],
    errors: [] as [string, boolean][],
  };
  const h: KeeperHooks = {
    refreshed: (next) => calls.refreshed.push(next),
    expired: (_last, reason) => calls.expired.push(reason),
    revoked: (_last, error) => calls.revoked.push(error),
    error: (error, willRetry) =>
      calls.errors.push([(error as PerishableError).code ?? error.message, willRetry]),
  };
  return { h, calls };
};

const keeper = (over: Partial<KeeperOptions> & Pick<KeeperOptions, "refresh" | "hooks">, ttl = 60 * SECOND) =>
  new TokenKeeper({
    initial: tokenAt(Date.now(), ttl),
    now: () => Date.now(),
    random: () => 0.5, // no jitter unless a test asks for it
    refreshAt: 0.5,
    jitter: 0.1,
    backoff: { minMs: 250, maxMs: 4 * SECOND },
    ...over,
  });

const unreachable = () => new PerishableError("broker_unreachable", "down");

beforeEach(() => {
  vi.useFakeTimers({ now: 1_800_000_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("TokenKeeper", () => {
  it("refreshes at half the lifetime, and again at half the new one", async () => {
    const { h, calls } = hooks();
    const refresh = vi.fn(async () => tokenAt(Date.now(), 60 * SECOND));
    const k = keeper({ refresh, hooks: h });
    await vi.advanceTimersByTimeAsync(30 * SECOND - 1);
    expect(refresh).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(refresh).toHaveBeenCalledTimes(1);
    expect(calls.refreshed).toHaveLength(1);
    expect(k.current).toBe(calls.refreshed[0]);
    await vi.advanceTimersByTimeAsync(30 * SECOND);
    expect(refresh).toHaveBeenCalledTimes(2);
    k.close();
  });

  it.each([
    { random: 0, seconds: 24 },
    { random: 0.999999, seconds: 36 },
  ])(
    "keeps jitter within ±10% of the lifetime (random $random → $seconds s)",
    async ({ random, seconds }) => {
      const { h } = hooks();
      const refresh = vi.fn(async () => tokenAt(Date.now(), 60 * SECOND));
      const k = keeper({ refresh, hooks: h, random: () => random });
      await vi.advanceTimersByTimeAsync(seconds * SECOND - 2);
      expect(refresh).not.toHaveBeenCalled();
      await vi.advanceTimersByTimeAsync(2);
      expect(refresh).toHaveBeenCalledTimes(1);
      k.close();
    },
  );

  it("is single-flight: concurrent callers share one refresh", async () => {
    const { h } = hooks();
    let release!: (t: HeldToken) => void;
    const refresh = vi.fn(() => new Promise<HeldToken>((resolve) => (release = resolve)));
    const k = keeper({ refresh, hooks: h });
    const results = Promise.all([k.refresh(), k.refresh(), k.refresh()]);
    await vi.advanceTimersByTimeAsync(0);
    const next = tokenAt(Date.now(), 60 * SECOND);
    release(next);
    expect(await results).toEqual([next, next, next]);
    expect(refresh).toHaveBeenCalledTimes(1);
    k.close();
  });

  it("ignores an answer that arrives after the session was revoked or closed", async () => {
    const { h, calls } = hooks();
    let release!: (t: HeldToken) => void;
    const k = keeper({ refresh: () => new Promise<HeldToken>((resolve) => (release = resolve)), hooks: h });
    const first = k.current;
    const pending = k.refresh().catch((e: unknown) => e);
    k.markRevoked(new PerishableError("token_revoked", "revoked"));
    release(tokenAt(Date.now(), 60 * SECOND));
    expect(await pending).toMatchObject({ code: "token_revoked" });
    expect(k.current).toBe(first);
    expect(calls.refreshed).toHaveLength(0);
  });

  it("retries with growing backoff while the token is valid, then succeeds", async () => {
    const { h, calls } = hooks();
    const attempts: number[] = [];
    const refresh = vi.fn(async () => {
      attempts.push(Date.now());
      if (attempts.length < 4) throw unreachable();
      return tokenAt(Date.now(), 60 * SECOND);
    });
    const k = keeper({ refresh, hooks: h, random: () => 0.5 });
    await vi.advanceTimersByTimeAsync(30 * SECOND + 20 * SECOND);
    expect(refresh).toHaveBeenCalledTimes(4);
    expect(calls.errors).toEqual([
      ["broker_unreachable", true],
      ["broker_unreachable", true],
      ["broker_unreachable", true],
    ]);
    const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
    expect(gaps[0]).toBeGreaterThanOrEqual(250);
    expect(gaps[2]!).toBeGreaterThan(gaps[0]!);
    expect(calls.refreshed).toHaveLength(1);
    expect(k.state).toBe("live");
    k.close();
  });

  it("expires, and says so once, when it cannot refresh before the token dies", async () => {
    const { h, calls } = hooks();
    const refresh = vi.fn(async () => {
      throw unreachable();
    });
    const k = keeper({ refresh, hooks: h });
    await vi.advanceTimersByTimeAsync(60 * SECOND - 1);
    expect(k.state).toBe("live");
    expect(k.usable()).toBe(k.current);
    await vi.advanceTimersByTimeAsync(1);
    expect(k.state).toBe("expired");
    expect(calls.expired).toEqual(["token"]);
    expect(k.usable()).toMatchObject({ code: "token_expired" });
    const callsAtExpiry = refresh.mock.calls.length;
    await vi.advanceTimersByTimeAsync(60 * SECOND);
    expect(refresh.mock.calls.length).toBe(callsAtExpiry);
    expect(vi.getTimerCount()).toBe(0);
    await expect(k.refresh()).rejects.toMatchObject({ code: "token_expired" });
  });

  it("stops everything on token_revoked, without retrying", async () => {
    const { h, calls } = hooks();
    const refresh = vi.fn(async () => {
      throw new PerishableError("token_revoked", "revoked", { status: 401 });
    });
    const k = keeper({ refresh, hooks: h });
    await vi.advanceTimersByTimeAsync(30 * SECOND);
    expect(refresh).toHaveBeenCalledTimes(1);
    expect(k.state).toBe("revoked");
    expect(calls.revoked).toHaveLength(1);
    expect(calls.expired).toHaveLength(0);
    expect(vi.getTimerCount()).toBe(0);
    expect(k.usable()).toMatchObject({ code: "token_revoked" });
  });

  it("treats token_expired from the broker as the end (the token it holds is dead)", async () => {
    const { h, calls } = hooks();
    const k = keeper({
      refresh: async () => {
        throw new PerishableError("token_expired", "expired", { status: 401 });
      },
      hooks: h,
    });
    await expect(k.refresh()).rejects.toMatchObject({ code: "token_expired" });
    expect(k.state).toBe("expired");
    expect(calls.expired).toEqual(["token"]);
  });

  it("does not retry an error that will not go away, and keeps the token until it expires", async () => {
    const { h, calls } = hooks();
    const refresh = vi.fn(async () => {
      throw new PerishableError("bad_request", "nope", { status: 400 });
    });
    const k = keeper({ refresh, hooks: h });
    await vi.advanceTimersByTimeAsync(30 * SECOND);
    expect(refresh).toHaveBeenCalledTimes(1);
    expect(calls.errors).toEqual([["bad_request", false]]);
    expect(k.state).toBe("live");
    await vi.advanceTimersByTimeAsync(30 * SECOND);
    expect(k.state).toBe("expired");
  });

  it("does not refresh a token that already lives to the grant's end, and expires with reason grant", async () => {
    const { h, calls } = hooks();
    const refresh = vi.fn(async () => tokenAt(Date.now(), 60 * SECOND));
    const now = Date.now();
    const k = keeper({ refresh, hooks: h, initial: tokenAt(now, 60 * SECOND, now + 20 * SECOND) });
    expect(k.canRefresh).toBe(false);
    await expect(k.refresh()).rejects.toMatchObject({ code: "token_expired" });
    await vi.advanceTimersByTimeAsync(20 * SECOND);
    expect(refresh).not.toHaveBeenCalled();
    expect(calls.expired).toEqual(["grant"]);
  });

  it("leaves no timer behind on close, and aborts a refresh in flight", async () => {
    const { h } = hooks();
    let signal!: AbortSignal;
    const k = keeper({
      refresh: (_current, s) => {
        signal = s;
        return new Promise<HeldToken>(() => {});
      },
      hooks: h,
    });
    expect(vi.getTimerCount()).toBe(2);
    const pending = k.refresh().catch((e: unknown) => e);
    k.close();
    expect(signal.aborted).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
    expect(await pending).toMatchObject({ code: "token_invalid" });
    expect(k.state).toBe("closed");
  });
});
