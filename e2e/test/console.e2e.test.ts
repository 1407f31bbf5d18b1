import { join } from "node:path";
import { type DevBroker, startDevBroker } from "@perishable/broker";
import { connect, type Session } from "@perishable/sdk";
import { type IsolatedRedis, isolatedRedis } from "@perishable/test-support";
import type { Browser, Page, Request, Response } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { launch, screenshotDir } from "./chromium.js";

let dev: DevBroker;
let redis: IsolatedRedis;
let browser: Browser;
let page: Page;
const sessions: Session[] = [];
const requests: Request[] = [];
const responses: { url: string; status: number; body: string; headers: Record<string, string> }[] = [];
const shots = screenshotDir();

const shot = (name: string) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
const open = async (options: Partial<Parameters<typeof connect>[0]>) => {
  const session = await connect({
    broker: dev.url,
    credential: dev.issuerKey,
    scopes: ["llm:complete", "models:read"],
    ttl: 120,
    ...options,
  });
  sessions.push(session);
  return session;
};
const chat = (session: Session, model = "gpt-4o-mini") =>
  session.fetch("/proxy/openai/v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
  });

let planner: Session;
let researcher: Session;
let reader: Session;
let writer: Session;

beforeAll(async () => {
  redis = await isolatedRedis(inject("redisUrl"), "console");
  dev = await startDevBroker({ redis: { url: inject("redisUrl"), prefix: redis.prefix } });
  // A delegation tree made through the SDK: planner → researcher → reader, and planner → writer.
  // The planner's lineage has a budget: what the researcher spends is the planner's spend too.
  planner = await open({ agent: "planner", budget: { usd: 5 } });
  researcher = await planner.delegate({ scopes: ["llm:complete", "models:read"], agent: "researcher" });
  reader = await researcher.delegate({ scopes: ["models:read"], agent: "reader" });
  writer = await planner.delegate({ scopes: ["llm:complete"], agent: "writer" });
  expect((await chat(researcher)).status).toBe(200);
  browser = await launch();
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  page = await context.newPage();
  page.on("request", (r) => requests.push(r));
  page.on("response", async (r: Response) => {
    const body = await r.text().catch(() => "");
    const headers = await r.allHeaders().catch(() => ({}));
    responses.push({ url: r.url(), status: r.status(), body, headers });
  });
}, 60_000);

afterAll(async () => {
  for (const s of sessions) s.close();
  await browser?.close();
  await dev?.close();
  await redis?.[Symbol.asyncDispose]();
});

describe("the operator console", () => {
  it("refuses a wrong key and signs in with the admin key", async () => {
    await page.goto(`${dev.url}/console/`);
    await page.getByLabel("Admin key").fill("pak_not-the-admin-key-0123456789abc");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("unauthenticated");
    await shot("login");
    await page.getByLabel("Admin key").fill(dev.adminKey);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("list", { name: "Grants by lineage" }).waitFor();
  });

  it("draws the delegation tree the SDK created, with time left for each grant", async () => {
    const tree = page.getByRole("list", { name: "Grants by lineage" });
    for (const agent of ["planner", "researcher", "reader", "writer"]) {
      await expect
        .poll(() => tree.locator(`[data-grant] .agent`, { hasText: agent }).count())
        .toBeGreaterThan(0);
    }
    // The researcher's item sits inside the planner's, the reader's inside the researcher's.
    const plannerItem = tree
      .locator("li", { has: page.locator(`[data-grant="${planner.grant.grantId}"]`) })
      .first();
    await expect.poll(() => plannerItem.locator(`[data-grant="${reader.grant.grantId}"]`).count()).toBe(1);
    await expect
      .poll(() => page.locator(`[data-grant="${writer.grant.grantId}"] .time`).textContent())
      .toMatch(/\d+ h/);
    // Spend against the budget on each grant of the lineage, and the lineage among the top spenders.
    await expect
      .poll(() => page.locator(`[data-grant="${planner.grant.grantId}"] .spend`).textContent())
      .toMatch(/^\$0\.0\d+ \/ \$5$/);
    await expect
      .poll(() => page.getByRole("region", { name: "Top spenders" }).textContent())
      .toMatch(/planner.*of \$5/);
    await shot("grants");
    await page.setViewportSize({ width: 1280, height: 720 });
    await shot("grants-laptop");
    await page.setViewportSize({ width: 2560, height: 1440 });
    await shot("grants-wide");
    await page.setViewportSize({ width: 1440, height: 900 });
  });

  it("finds a grant by token id and shows its lineage, subtree and recent events", async () => {
    await page.getByLabel("Find a grant or token id").fill(researcher.tokenId);
    await page.getByRole("button", { name: "Find" }).click();
    const detail = page.getByRole("region", { name: "Selected grant" });
    await expect.poll(() => detail.locator("h2").textContent()).toContain("researcher");
    await expect.poll(() => detail.locator(".lineage").textContent()).toContain("planner");
    await expect.poll(() => detail.locator(".subtree").textContent()).toContain("reader");
    await expect.poll(() => detail.locator(".events").textContent()).toContain("used");
    await shot("grant-detail");
  });

  it("revokes a subtree from the page: the tree updates within a second and the child's next call is refused", async () => {
    const detail = page.getByRole("region", { name: "Selected grant" });
    await detail.getByRole("button", { name: "Revoke this grant and 1 below it" }).click();
    const dialog = page.getByRole("dialog", { name: "Revoke grant" });
    await expect.poll(() => dialog.textContent()).toContain("2 in all");
    await shot("revoke-confirm");
    const clicked = Date.now();
    await dialog.getByRole("button", { name: "Revoke 2 grants" }).click();
    await page
      .locator(`[data-grant="${reader.grant.grantId}"]`)
      .waitFor({ state: "detached", timeout: 2_000 });
    expect(Date.now() - clicked).toBeLessThan(2_000);
    await expect.poll(() => page.locator(`[data-grant="${researcher.grant.grantId}"]`).count()).toBe(0);
    const refused = await chat(researcher);
    expect(refused.status).toBe(401);
    expect(await refused.json()).toMatchObject({ error: { code: "token_revoked" } });
    const childCall = await reader.fetch("/proxy/openai/v1/models");
    expect(await childCall.json()).toMatchObject({ error: { code: "token_revoked" } });
    expect((await chat(writer)).status).toBe(200);
    await shot("grants-after-revoke");
  });

  it("shows a denial in the live audit tail, highlighted with the rule that denied", async () => {
    await page.getByRole("button", { name: "Audit" }).click();
    await page.getByRole("table").waitFor();
    const denied = await chat(writer, "gpt-3");
    expect(denied.status).toBe(403);
    const row = page.locator('tr[data-type="denied"]', { hasText: "constraint_denied" }).first();
    await row.waitFor({ timeout: 5_000 });
    expect(await row.getAttribute("class")).toContain("denied");
    expect(await row.textContent()).toContain("not allowed");
    await shot("audit");
  });

  it("filters the audit tail by type, agent and grant, and pauses it", async () => {
    const rows = page.locator("tbody tr");
    const types = () => rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-type")));
    await page.getByLabel("Event type").selectOption("delegated");
    await expect.poll(types).toEqual(["delegated", "delegated", "delegated"]);
    await page.getByLabel("Filter by agent").fill("writer");
    await expect.poll(types).toEqual(["delegated"]);
    await page.getByLabel("Event type").selectOption("");
    await page.getByLabel("Filter by agent").fill("");
    await page.getByLabel("Filter by grant").fill(researcher.grant.grantId);
    await expect
      .poll(async () => new Set(await types()))
      .toEqual(new Set(["delegated", "used", "revoked", "denied"]));
    const grants = await rows
      .locator("code")
      .evaluateAll((codes) => codes.map((c) => c.getAttribute("title")));
    expect(new Set(grants)).toEqual(new Set([researcher.grant.grantId]));

    await page.getByLabel("Filter by grant").fill(writer.grant.grantId);
    await expect.poll(() => rows.count()).toBeGreaterThan(0);
    await page.getByRole("button", { name: "Pause" }).click();
    const before = await rows.count();
    expect((await chat(writer)).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(await rows.count()).toBe(before);
    await page.getByRole("button", { name: "Resume" }).click();
    await expect.poll(() => rows.count()).toBe(before + 1);
    await page.getByLabel("Filter by grant").fill("");
  });

  it("revokes by selector after showing how many match, and guards the kill switch", async () => {
    await page.getByRole("button", { name: "Revoke", exact: true }).click();
    await page.getByRole("region", { name: "Everything that matches" }).getByLabel("agent").fill("writer");
    await page.getByRole("button", { name: "Preview and revoke…" }).click();
    const dialog = page.getByRole("dialog", { name: "Revoke by selector" });
    await expect.poll(() => dialog.textContent()).toContain("1 live grant match");
    await shot("revoke-selector");
    await dialog.getByRole("button", { name: "Revoke 1 grant" }).click();
    // The dialog closes once the broker has answered: only then is the status this revocation's.
    await dialog.waitFor({ state: "detached" });
    await expect.poll(() => page.getByRole("status").textContent()).toContain("1 grant revoked");
    expect(await (await chat(writer)).json()).toMatchObject({ error: { code: "token_revoked" } });

    await page.getByRole("button", { name: "Revoke everything…" }).click();
    const kill = page.getByRole("dialog", { name: "Revoke everything" });
    const button = kill.getByRole("button", { name: "Revoke everything" });
    expect(await button.isDisabled()).toBe(true);
    await kill.getByLabel(/Type REVOKE ALL/).fill("REVOKE ALL");
    expect(await button.isDisabled()).toBe(false);
    await shot("kill-switch");
    await button.click();
    await kill.waitFor({ state: "detached" });
    await expect.poll(() => page.getByRole("status").textContent()).toMatch(/\d+ grants? revoked/);
    expect(await (await chat(planner)).json()).toMatchObject({ error: { code: "token_revoked" } });
  });

  it("shows health at a glance from the broker's metrics", async () => {
    await page.getByRole("button", { name: "Health" }).click();
    const denials = page.getByRole("region", { name: "Denials by code" });
    await expect.poll(() => denials.textContent(), { timeout: 6_000 }).toContain("constraint_denied");
    await expect
      .poll(() => page.getByRole("region", { name: "Credential age at use" }).textContent())
      .toMatch(/≤ \d+ s/);
    await expect
      .poll(() => page.getByRole("region", { name: "Broker overhead" }).textContent())
      .toMatch(/p50 [\d.]+ ms/);
    await expect
      .poll(() => page.getByRole("region", { name: "Spend per minute" }).textContent())
      .toMatch(/\$0\.0\d+ charged on this node/);
    await shot("health");
  });

  it("is usable from the keyboard", async () => {
    await page.getByRole("button", { name: "Grants" }).focus();
    await page.keyboard.press("Tab");
    await page.keyboard.press("Enter");
    await expect
      .poll(() => page.getByRole("button", { name: "Audit" }).getAttribute("aria-current"))
      .toBe("page");
  });

  it("never receives a token or a secret, keeps the key out of URLs and cookies, and talks only to the broker", async () => {
    const origin = new URL(dev.url).origin;
    for (const r of requests) {
      expect(new URL(r.url()).origin, r.url()).toBe(origin);
      expect(r.url()).not.toContain(dev.adminKey);
    }
    for (const r of responses) {
      expect(r.body, r.url).not.toMatch(/prs_[0-9a-z]{10}_/);
      for (const secret of [
        dev.adminKey,
        dev.issuerKey,
        "sk-mock-upstream-key",
        "sk-ant-mock-upstream-key",
      ]) {
        expect(r.body.includes(secret), `${r.url} returned a secret`).toBe(false);
      }
      expect(r.headers["set-cookie"]).toBeUndefined();
    }
    expect(await page.evaluate(() => document.cookie)).toBe("");
    const html = responses.find((r) => r.url.endsWith("/console/"));
    expect(html?.headers["content-security-policy"]).toContain("connect-src 'self'");
    expect(responses.some((r) => r.url.includes("/v1/grants"))).toBe(true);
  });
});
