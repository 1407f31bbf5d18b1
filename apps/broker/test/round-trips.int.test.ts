import { randomBytes } from "node:crypto";
import { seenCommand, startRedisServer } from "@perishable/test-support";
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { startTestBroker } from "./support/broker.js";

/**
 * The commands clients sent to Redis while `run` ran (MONITOR; what scripts run inside is not
 * counted), leaving out every node's background work: rule reloads, expiry claims, batched audit
 * writes, heartbeats.
 */
const commandsDuring = async (url: string, run: () => Promise<void>): Promise<string[]> => {
  const probe = new Redis(url);
  const monitor = await probe.monitor();
  const sent: string[] = [];
  monitor.on("monitor", (_time: string, args: string[], source: string) => {
    const seen = seenCommand(args, source);
    if (!seen.background) sent.push(seen.command);
  });
  try {
    await run();
    await new Promise((resolve) => setTimeout(resolve, 100));
  } finally {
    monitor.disconnect();
    probe.disconnect();
  }
  return sent;
};

describe("the node-local hot path", () => {
  it("serves a token whose chain counts nothing with no Redis command at all, once it has seen it", async () => {
    await using server = await startRedisServer();
    await using t = await startTestBroker({ redisUrl: server.url });
    const root = await t.issue({ scopes: ["models:read"] });
    const child = (await (
      await t.call("/v1/tokens", root.token, {
        method: "POST",
        body: JSON.stringify({ scopes: ["models:read"] }),
      })
    ).json()) as { token: string };
    for (const token of [root.token, child.token]) await t.call("/proxy/openai/v1/models", token);
    await t.broker.server.audit.flush();
    const requests = 40;
    const sent = await commandsDuring(server.url, async () => {
      for (let i = 0; i < requests; i++) {
        const response = await t.call("/proxy/openai/v1/models", i % 2 ? root.token : child.token);
        expect(response.status).toBe(200);
      }
      await t.broker.server.audit.flush();
    });
    expect(sent.filter((c) => c !== "xadd")).toEqual([]);
    expect(t.mock.requests.filter((r) => r.url === "/v1/models").length).toBeGreaterThanOrEqual(requests);
    // Revoked: the very next request is refused (by the script, which says why).
    await t.admin(`/v1/grants/${root.grantId}`, { method: "DELETE" });
    const after = await t.call("/proxy/openai/v1/models", child.token);
    expect(((await after.json()) as { error: { code: string } }).error.code).toBe("token_revoked");
  });

  it("spends a rate limit from slices leased from Redis, in a few script calls for many requests", async () => {
    await using server = await startRedisServer();
    await using t = await startTestBroker({
      redisUrl: server.url,
      configure: (doc) => {
        doc.scopes["models:metered"] = {
          upstream: "openai",
          endpoints: ["/v1/models"],
          methods: ["GET"],
          rate_limit: "100000/minute",
        };
        (doc.issuers![0] as { scopes: string[] }).scopes.push("models:metered");
      },
    });
    const { token } = await t.issue({ scopes: ["models:metered"] });
    await t.call("/proxy/openai/v1/models", token);
    await t.broker.server.audit.flush();
    const requests = 100;
    const sent = await commandsDuring(server.url, async () => {
      for (let i = 0; i < requests; i++)
        expect((await t.call("/proxy/openai/v1/models", token)).status).toBe(200);
      await t.broker.server.audit.flush();
    });
    // Slices of 1, 2, 4, … units: a handful of leases for a hundred requests (the lease script's
    // first call loads it: EVALSHA, then EVAL once).
    const script = (c: string) => c === "evalsha" || c === "eval";
    expect(sent.filter(script).length).toBeLessThanOrEqual(9);
    expect(sent.filter((c) => !script(c) && c !== "xadd")).toEqual([]);
  });

  it("spends maxUses from slices leased from Redis, exactly, and counts the last uses one by one", async () => {
    await using server = await startRedisServer();
    await using t = await startTestBroker({ redisUrl: server.url });
    const root = await t.issue({ scopes: ["models:read"], maxUses: 300 });
    const child = (await (
      await t.call("/v1/tokens", root.token, {
        method: "POST",
        body: JSON.stringify({ scopes: ["models:read"], maxUses: 200 }),
      })
    ).json()) as { token: string };
    await t.call("/proxy/openai/v1/models", child.token); // the script, which brings the chain's facts
    await t.broker.server.audit.flush();
    const upstream = () => t.mock.requests.filter((r) => r.url === "/v1/models").length;
    const before = upstream();
    const statuses: number[] = [];
    const sent = await commandsDuring(server.url, async () => {
      for (let i = 0; i < 180; i++) {
        const response = await t.call("/proxy/openai/v1/models", child.token);
        statuses.push(response.status);
        await response.arrayBuffer();
      }
      await t.broker.server.audit.flush();
    });
    const script = (c: string) => c === "evalsha" || c === "eval";
    // Leases of 1, 2, 4, … uses (at most a sixteenth of what is left) for most of the 180.
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(sent.filter(script).length).toBeLessThan(60);
    expect(sent.filter((c) => !script(c) && c !== "xadd")).toEqual([]);
    // To the child's last use and not one more; the uses not spent go back to the parent too.
    for (let i = 0; i < 40; i++) statuses.push((await t.call("/proxy/openai/v1/models", child.token)).status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(199);
    expect(statuses.slice(199).every((s) => s === 403)).toBe(true);
    expect(upstream() - before).toBe(199);
    const self = (await (await t.call("/v1/tokens/self", root.token)).json()) as { usesLeft: number };
    expect(self.usesLeft).toBe(100);
  });

  it("reserves a budget and slots from slices leased as flights, and charges exactly what was spent", async () => {
    await using server = await startRedisServer();
    await using t = await startTestBroker({
      redisUrl: server.url,
      configure: (doc) => {
        doc.prices = { openai: { m: { input: 1, output: 1 } } };
        doc.scopes["embed:many"] = { upstream: "openai", endpoints: ["/v1/embeddings"], methods: ["POST"] };
        (doc.issuers![0] as { scopes: string[] }).scopes.push("embed:many");
      },
    });
    const root = await t.issue({ scopes: ["embed:many"], budget: { usd: 10 }, maxConcurrent: 1000 });
    const child = (await (
      await t.call("/v1/tokens", root.token, {
        method: "POST",
        body: JSON.stringify({ scopes: ["embed:many"], budget: { usd: 5, tokens: 1_000_000 } }),
      })
    ).json()) as { token: string; grantId: string };
    const embed = () =>
      t.call("/proxy/openai/v1/embeddings", child.token, {
        method: "POST",
        body: '{"model":"m","input":"x"}',
      });
    await (await embed()).arrayBuffer(); // the script, which brings the chain's facts
    await new Promise((resolve) => setTimeout(resolve, 1_200)); // its flight settled
    await t.broker.server.audit.flush();
    const requests = 120;
    const left: string[] = [];
    const sent = await commandsDuring(server.url, async () => {
      for (let i = 0; i < requests; i++) {
        const response = await embed();
        expect(response.status).toBe(200);
        left.push(response.headers.get("x-perishable-budget-left") ?? "");
        await response.arrayBuffer();
      }
      await t.broker.server.audit.flush();
    });
    const script = (c: string) => c === "evalsha" || c === "eval";
    // Slices for 1, 2, 4, … requests, each leased and later settled with one script call.
    expect(sent.filter(script).length).toBeLessThan(40);
    expect(sent.filter((c) => !script(c) && c !== "xadd" && c !== "zadd")).toEqual([]);
    expect(left.every((l) => l.startsWith("usd="))).toBe(true);
    // A second unused: the slices settle at what their requests cost; nothing stays reserved.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const spend = async (id: string) =>
      (
        (await (await t.admin(`/v1/grants/${id}`)).json()) as {
          grant: {
            spend: {
              inFlight: number;
              usd: { spent: number; reserved: number };
              tokens: { spent: number; reserved: number };
            };
          };
        }
      ).grant.spend;
    for (const id of [child.grantId, root.grantId]) {
      const s = await spend(id);
      expect(s.inFlight).toBe(0);
      expect(s.usd.reserved).toBe(0);
      expect(s.tokens.reserved).toBe(0);
      expect(s.tokens.spent).toBe(3 * (requests + 1)); // the mock's embeddings use 3 tokens each
    }
  });

  it("runs the script for every request with store.node_local: false", async () => {
    await using server = await startRedisServer();
    await using t = await startTestBroker({
      redisUrl: server.url,
      configure: (doc) => {
        doc.store = { ...doc.store, node_local: false };
      },
    });
    const { token } = await t.issue({ scopes: ["models:read"] });
    await t.call("/proxy/openai/v1/models", token);
    await t.broker.server.audit.flush();
    const sent = await commandsDuring(server.url, async () => {
      for (let i = 0; i < 10; i++) await t.call("/proxy/openai/v1/models", token);
      await t.broker.server.audit.flush();
    });
    expect(sent.filter((c) => c === "evalsha")).toHaveLength(10);
  });
});

describe("the hot path", () => {
  it("authorises each request of a tight maxUses with exactly one Redis command, a child's too", async () => {
    // A private server, so no other test's traffic is counted.
    await using server = await startRedisServer();
    await using t = await startTestBroker({ redisUrl: server.url });
    // Fewer than sixteen uses left: never leased, every use counted by the script.
    const root = await t.issue({ scopes: ["models:read", "llm:embed"], maxUses: 15 });
    const child = (await (
      await t.call("/v1/tokens", root.token, {
        method: "POST",
        body: JSON.stringify({ scopes: ["models:read", "llm:embed"] }),
      })
    ).json()) as { token: string };
    await t.call("/proxy/openai/v1/models", child.token); // loads the script (EVALSHA, then EVAL once)
    await t.broker.server.audit.flush();

    // MONITOR shows every command a client sends; commands a script runs are marked "lua".
    const probe = new Redis(server.url);
    const monitor = await probe.monitor();
    const sent: string[] = [];
    monitor.on("monitor", (_time: string, args: string[], source: string) => {
      // Background work of every node (rule reloads, expiry claims, batched audit writes, heartbeats)
      // is not per request.
      const seen = seenCommand(args, source);
      if (!seen.background) sent.push(seen.command);
    });
    const requests = 14;
    for (let i = 0; i < requests; i++) {
      const token = i % 2 ? root.token : child.token;
      const path = i % 4 < 2 ? "/proxy/openai/v1/models" : "/proxy/openai/v1/embeddings";
      const init = path.endsWith("embeddings") ? { method: "POST", body: '{"model":"m","input":"x"}' } : {};
      const response = await t.call(path, token, init);
      expect([200, 429]).toContain(response.status);
    }
    await t.broker.server.audit.flush();
    await new Promise((resolve) => setTimeout(resolve, 100));
    monitor.disconnect();
    probe.disconnect();
    // One script call per request; the audit trail's batched XADDs are off the request path.
    expect(sent.filter((c) => c === "evalsha")).toHaveLength(requests);
    expect(sent.filter((c) => c !== "evalsha" && c !== "xadd")).toEqual([]);
  });

  it("still authorises and reserves a budgeted request with one command, and settles off the path", async () => {
    await using server = await startRedisServer();
    await using t = await startTestBroker({
      redisUrl: server.url,
      configure: (doc) => {
        doc.prices = { openai: { m: { input: 1, output: 1 } } };
      },
    });
    const { token, grantId } = await t.issue({
      scopes: ["models:read", "llm:embed"],
      budget: { usd: 1 },
      maxConcurrent: 4,
    });
    await t.call("/proxy/openai/v1/models", token); // loads the scripts
    await new Promise((resolve) => setTimeout(resolve, 100));
    await t.broker.server.audit.flush();
    const probe = new Redis(server.url);
    const monitor = await probe.monitor();
    const perRequest: string[] = [];
    const settles: string[] = [];
    monitor.on("monitor", (_time: string, args: string[], source: string) => {
      const seen = seenCommand(args, source);
      if (seen.background) return;
      if (/\}:fl$/.test(seen.key ?? "")) settles.push(seen.command);
      else perRequest.push(seen.command);
    });
    const requests = 10;
    let embedded = 0;
    for (let i = 0; i < requests; i++) {
      const init = i % 2 ? { method: "POST", body: '{"model":"m","input":"x"}' } : {};
      const path = i % 2 ? "/proxy/openai/v1/embeddings" : "/proxy/openai/v1/models";
      const response = await t.call(path, token, init);
      expect([200, 429]).toContain(response.status); // llm:embed allows 3 a minute
      if (i % 2 && response.status === 200) embedded += 1;
      await response.text();
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    monitor.disconnect();
    probe.disconnect();
    // On the request path: one script call each, reservation and slot included.
    expect(perRequest).toEqual(Array(requests).fill("evalsha"));
    // Settling is batched off the path, one script per tree and batch.
    expect(settles.length).toBeGreaterThan(0);
    expect(settles.every((c) => c === "evalsha")).toBe(true);
    expect(settles.length).toBeLessThanOrEqual(requests);
    const spend = (
      (await (await t.admin(`/v1/grants/${grantId}`)).json()) as {
        grant: { spend: { inFlight: number; tokens: { spent: number } } };
      }
    ).grant.spend;
    expect(spend.inFlight).toBe(0);
    expect(embedded).toBe(3);
    expect(spend.tokens.spent).toBe(3 * embedded); // the mock's embeddings use 3 tokens
  });

  it("refuses guessed tokens with one command each and leaves nothing behind", async () => {
    await using server = await startRedisServer();
    await using t = await startTestBroker({ redisUrl: server.url });
    await t.call("/proxy/openai/v1/models", `prs_0000000000_${"A".repeat(43)}`); // loads the script
    await t.broker.server.audit.flush();
    const probe = new Redis(server.url);
    const keysBefore = await probe.dbsize();
    const monitor = await probe.monitor();
    const sent: string[] = [];
    monitor.on("monitor", (_time: string, args: string[], source: string) => {
      // Background work of every node (rule reloads, expiry claims, batched audit writes, heartbeats)
      // is not per request.
      const seen = seenCommand(args, source);
      if (!seen.background) sent.push(seen.command);
    });
    const guesses = 1000;
    const alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
    for (let i = 0; i < guesses; i++) {
      const tree = Array.from({ length: 10 }, () => alphabet[Math.floor(Math.random() * 32)]).join("");
      const guess = `prs_${tree}_${randomBytes(32).toString("base64url")}`;
      const response = await t.call("/proxy/openai/v1/models", guess);
      expect(response.status).toBe(401);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe("token_invalid");
    }
    await t.broker.server.audit.flush();
    await new Promise((resolve) => setTimeout(resolve, 100));
    monitor.disconnect();
    // Each guess costs the same: one script call, whatever the guess; and leaves no state.
    expect(sent.filter((c) => c === "evalsha")).toHaveLength(guesses);
    expect(sent.filter((c) => c !== "evalsha" && c !== "xadd")).toEqual([]);
    expect(await probe.dbsize()).toBe(keysBefore); // the audit stream existed already; nothing else appears
    probe.disconnect();
    expect(t.mock.requests).toHaveLength(0);
  });
});
