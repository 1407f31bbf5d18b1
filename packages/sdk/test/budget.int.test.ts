import type { DevBroker } from "@perishable/broker";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type BudgetEvent, connect, PerishableError, type Session } from "../src/index.js";
import { devBrokerOnRedis } from "./support/dev.js";

let dev: DevBroker;
const sessions: Session[] = [];
beforeAll(async () => {
  dev = await devBrokerOnRedis(inject("redisUrl"));
});
afterAll(async () => {
  for (const s of sessions) s.close();
  await dev?.close();
});

const open = async (options: Partial<Parameters<typeof connect>[0]> = {}) => {
  const session = await connect({
    broker: dev.url,
    credential: dev.issuerKey,
    scopes: ["llm:complete"],
    ...options,
  });
  sessions.push(session);
  return session;
};

describe("budgets from the SDK", () => {
  it("connects with a budget, sees what is left after each call, and warns once when it runs low", async () => {
    const session = await open({ budget: { usd: 0.01 }, maxConcurrent: 2, budgetWarning: 0.9 });
    expect(session.grant.budget).toEqual({ usd: 0.01 });
    expect(session.grant.maxConcurrent).toBe(2);
    const warnings: BudgetEvent[] = [];
    session.on("budget", (event) => warnings.push(event));
    const openai = new OpenAI({ ...session.openai(), maxRetries: 0 });
    // No limit stated: the scope's ceiling (4096) is filled in, and that bounds the reservation.
    const reply = await openai.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "hi" }],
    });
    expect(reply.choices[0]?.message.content).toBeTruthy();
    const left = session.budgetLeft?.usd;
    expect(left?.limit).toBe(0.01);
    expect(left!.left).toBeLessThan(0.01 - 0.0024); // 4096 output tokens at $0.60/M held back
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({
      unit: "usd",
      limit: 0.01,
      grant: { grantId: session.grant.grantId },
    });
    await openai.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "again" }],
    });
    expect(warnings).toHaveLength(1); // once per crossing
  });

  it("hands a sub-agent a slice, refuses a slice larger than what is left, and stops at 402 without retrying", async () => {
    const session = await open({ budget: { usd: 0.004 } });
    await expect(session.delegate({ scopes: ["llm:complete"], budget: { usd: 1 } })).rejects.toMatchObject({
      code: "delegation_denied",
    });
    const child = await session.delegate({ scopes: ["llm:complete"], budget: { usd: 0.002 } });
    expect(child.grant.budget).toEqual({ usd: 0.002 });
    const openai = new OpenAI(child.openai()); // the client's default retries: 402 is not retried
    const before = dev.mock!.requests.length;
    const error = await openai.chat.completions
      .create({
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: "hi" }],
        max_completion_tokens: 4000,
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(402);
    expect(String((error as Error).message)).toContain("cannot cover this request's worst case");
    expect(dev.mock!.requests.length).toBe(before);
    // Through the session's own fetch, the refusal is the broker's envelope as it came.
    const refused = await child.fetch("/proxy/openai/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt-4o-mini", messages: [], max_completion_tokens: 4000 }),
    });
    expect(refused.status).toBe(402);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("budget_exhausted");
  });

  it("refuses a budget that is not a budget before calling the broker", async () => {
    await expect(open({ budget: { usd: -1 } })).rejects.toBeInstanceOf(TypeError);
    await expect(open({ budget: {} })).rejects.toBeInstanceOf(TypeError);
    await expect(open({ budget: { usd: 1 }, budgetWarning: 2 })).rejects.toBeInstanceOf(TypeError);
    expect(PerishableError).toBeDefined();
  });
});
