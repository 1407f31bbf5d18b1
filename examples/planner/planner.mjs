// A planner agent that never sees an OpenAI key. It gets a perishable grant from the broker,
// hands a narrower one to a researcher (same process) and another to a summarizer (a child
// process that is given nothing but a token), then shows the lineage and the audit trail.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { connect } from "@perishable/sdk";
import OpenAI from "openai";

const say = (who, text) => console.log(`${who.padEnd(11)}│ ${text}`);

export const runPlanner = async ({ broker, issuerKey, adminKey }) => {
  // 1. The orchestrator's issuer key buys a short-lived grant; the SDK refreshes it at half TTL.
  const planner = await connect({
    broker,
    credential: issuerKey,
    scopes: ["llm:complete", "llm:embed", "models:read"],
    ttl: 30,
    lifetime: 600,
    agent: "planner",
    task: "write-report",
  });
  say("planner", `grant ${planner.grant.grantId}, scopes ${planner.grant.scopes.join(", ")}`);
  const openai = new OpenAI(planner.openai());
  const plan = await openai.chat.completions.create({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: "Plan a short report." }],
  });
  say("planner", `plan: ${plan.choices[0].message.content}`);

  // 2. A researcher in this process: completions only, 20-second tokens.
  const researcher = await planner.delegate({ scopes: ["llm:complete"], ttl: 20, agent: "researcher" });
  say("researcher", `child grant ${researcher.grant.grantId} (depth ${researcher.grant.depth})`);
  const stream = await new OpenAI(researcher.openai()).chat.completions.create({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: "Find three facts." }],
    stream: true,
  });
  let found = "";
  for await (const chunk of stream) found += chunk.choices[0]?.delta?.content ?? "";
  say("researcher", `streamed: ${found.trim()}`);
  const beyond = await researcher.delegate({ scopes: ["models:read"] }).catch((error) => error);
  say("researcher", `asks for models:read too → ${beyond.code} (a child never holds more than its parent)`);

  // 3. A summarizer in another process, handed only a token for embeddings.
  const summarizer = await planner.delegate({ scopes: ["llm:embed"], ttl: 20, agent: "summarizer" });
  const output = await runChild(fileURLToPath(new URL("./summarizer.mjs", import.meta.url)), [], {
    PRS_TOKEN: summarizer.token,
    PERISHABLE_URL: broker,
  });
  for (const line of output.trim().split("\n")) say("summarizer", line);
  summarizer.close();

  // 4. The work is done: the planner ends its own authority, and its sub-agents' with it.
  const { revoked } = await planner.revoke();
  say("planner", `revoked its grant: ${revoked} grants ended`);
  const after = await researcher.fetch("/proxy/openai/v1/chat/completions", { method: "POST", body: "{}" });
  say("researcher", `next call → ${(await after.json()).error.code}`);
  const root = planner.grant.rootGrantId;
  planner.close();

  // 5. What a security team sees.
  console.log("\nlineage (perishable grants tree):\n");
  console.log(await runCli(["grants", "tree", root], broker, adminKey));
  console.log("audit trail (perishable audit tail):\n");
  console.log(await runCli(["audit", "tail", "--root", root, "-n", "50"], broker, adminKey));
};

const runChild = (script, args, env) =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], {
      env: { PATH: process.env.PATH ?? "", ...env },
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("exit", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${script} exited ${code}: ${err}`)),
    );
  });

/** The broker's own CLI, with the admin key in its environment (never on its command line). */
const runCli = (args, broker, adminKey) =>
  runChild(fileURLToPath(new URL("./bin.js", import.meta.resolve("@perishable/broker"))), args, {
    PERISHABLE_URL: broker,
    PERISHABLE_ADMIN_KEY: adminKey,
  });
