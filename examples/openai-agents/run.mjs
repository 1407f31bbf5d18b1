// One command: a dev broker (its mock stands in for OpenAI) and an OpenAI Agents SDK agent whose
// models go through the broker on a DPoP-bound session. The Agents SDK's own trace exporter would
// send the configured key to OpenAI's tracing endpoint; useOpenAIAgents removes it, and this
// script watches every request the process makes to show that the token went nowhere else.
import * as agents from "@openai/agents";
import { startDevBroker } from "@perishable/broker";
import { connect, useOpenAIAgents } from "@perishable/sdk";
import OpenAI from "openai";

const say = (who, text) => console.log(`${who.padEnd(8)} │ ${text}`);
const requests = [];
const realFetch = globalThis.fetch;
globalThis.fetch = (input, init) => {
  const url = input instanceof Request ? input.url : String(input);
  const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
  requests.push({ url, token: /prs_/.test(`${headers.get("authorization")}`) });
  return realFetch(input, init);
};

const dev = await startDevBroker({
  configure: (doc) => void Object.assign(doc, { log: { level: "error" } }),
});
try {
  const session = await connect({
    broker: dev.url,
    credential: dev.issuerKey,
    scopes: ["llm:complete"],
    agent: "agents-sdk",
    ttl: 120,
    dpop: true,
  });
  say(
    "broker",
    `session bound to key ${session.dpopJkt.slice(0, 12)}… (DPoP): the token alone opens nothing`,
  );
  agents.setTracingDisabled(false); // as in production
  useOpenAIAgents(session, agents, OpenAI, { api: "chat_completions" });
  const agent = new agents.Agent({ name: "helper", instructions: "Answer briefly.", model: "gpt-4o-mini" });
  const result = await agents.run(agent, "Say hello.");
  say("agent", `answered: ${result.finalOutput}`);
  await agents.getGlobalTraceProvider().forceFlush();
  const broker = new URL(dev.url).origin;
  const elsewhere = requests.filter((r) => r.token && new URL(r.url).origin !== broker);
  say(
    "watch",
    `${requests.length} requests, ${requests.filter((r) => r.token).length} with the token, all to the broker: ${elsewhere.length === 0}`,
  );
  session.close();
  if (elsewhere.length > 0) process.exitCode = 1;
} finally {
  globalThis.fetch = realFetch;
  await dev.close();
}
