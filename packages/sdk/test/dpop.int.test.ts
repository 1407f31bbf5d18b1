import type { DevBroker } from "@perishable/broker";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { connect, type DpopKeyPair, dpopKeyFrom, fromToken, type Session } from "../src/index.js";
import { devBrokerOnRedis } from "./support/dev.js";

/**
 * DPoP through the SDK against a real broker on Redis: `connect({ dpop: true })` signs every call
 * with a key WebCrypto made (private half not extractable), so the token alone opens nothing.
 */
let dev: DevBroker;
const sessions: Session[] = [];
beforeAll(async () => {
  dev = await devBrokerOnRedis(inject("redisUrl"));
});
afterAll(async () => {
  for (const s of sessions) s.close();
  await dev?.close();
});

const chatWith = (fetchImpl: typeof fetch, token: string) =>
  fetchImpl(`${dev.url}/proxy/openai/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }),
  });

describe("DPoP-bound sessions", () => {
  it("binds the grant to a key it cannot export and signs every call; the token alone is refused", async () => {
    const session = await connect({
      broker: dev.url,
      credential: dev.issuerKey,
      scopes: ["llm:complete"],
      dpop: true,
    });
    sessions.push(session);
    expect(session.dpopJkt).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const openai = new OpenAI(session.openai());
    const answer = await openai.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "hi" }],
    });
    expect(answer.choices[0]?.message.content).toBeTruthy();
    // Stolen: the same token without the key.
    const stolen = await chatWith(fetch, session.token);
    expect(stolen.status).toBe(401);
    await session.refresh();
    expect((await session.fetch("/proxy/openai/v1/models")).status).toBeLessThan(500);
    const again = await openai.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "x" }],
    });
    expect(again.choices.length).toBeGreaterThan(0);
    expect((await chatWith(fetch, session.token)).status).toBe(401);
  });

  it("delegates to a child bound to its own key, here or in a sub-agent that holds the key", async () => {
    const parent = await connect({
      broker: dev.url,
      credential: dev.issuerKey,
      scopes: ["llm:complete", "llm:embed"],
      dpop: true,
    });
    sessions.push(parent);
    const child = await parent.delegate({ scopes: ["llm:complete"], dpop: true });
    expect(child.dpopJkt).toBeDefined();
    expect(child.dpopJkt).not.toBe(parent.dpopJkt);
    expect((await chatWith(child.fetch as typeof fetch, child.token)).status).toBe(200);
    expect((await chatWith(fetch, child.token)).status).toBe(401);

    // A sub-agent in another process makes its key, tells the parent its thumbprint, gets a token.
    const pair = (await globalThis.crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, [
      "sign",
      "verify",
    ])) as unknown as DpopKeyPair;
    const { jkt } = await dpopKeyFrom(pair);
    const handed = await parent.delegate({ scopes: ["llm:complete"], dpopJkt: jkt });
    const token = handed.token;
    handed.close();
    const sub = await fromToken(token, { broker: dev.url, dpopKey: pair });
    sessions.push(sub);
    expect(sub.grant.scopes).toEqual(["llm:complete"]);
    expect((await chatWith(sub.fetch as typeof fetch, sub.token)).status).toBe(200);
    await expect(fromToken(token, { broker: dev.url })).rejects.toMatchObject({ code: "token_invalid" });
  });
});
