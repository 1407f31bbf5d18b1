import { startDevBroker } from "../dev/dev-broker.js";
import { runUntilSignal } from "./signals.js";

export interface DevOptions {
  readonly port: number;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly out: (line: string) => void;
}

/**
 * `perishable dev`: a broker on the in-memory store with an OpenAI and an Anthropic upstream,
 * freshly generated issuer and admin keys (printed once, to this terminal only), and the
 * built-in mock standing in for any provider whose API key is not in the environment.
 */
export const runDev = async (options: DevOptions): Promise<void> => {
  const { env, out } = options;
  const dev = await startDevBroker({ port: options.port, env, mock: { chunks: 8, chunkDelayMs: 40 } });
  const { url, issuerKey, adminKey, mock } = dev;
  const upstreamLine = (variable: string, host: string) =>
    env[variable] ? `${host} (key from ${variable})` : `built-in mock at ${mock!.url}`;
  const shown = (key: string, variable: string) => (env[variable] ? `(from ${variable})` : key);

  out(`
perishable dev broker on ${url}  (in-memory store: nothing survives a restart)

  upstream openai     → ${upstreamLine("OPENAI_API_KEY", "https://api.openai.com")}
  upstream anthropic  → ${upstreamLine("ANTHROPIC_API_KEY", "https://api.anthropic.com")}
  scopes              llm:complete, llm:embed, models:read, claude:messages

  issuer key (orchestrator)  ${shown(issuerKey, "PERISHABLE_ISSUER_KEY")}
  admin key  (secops)        ${shown(adminKey, "PERISHABLE_ADMIN_KEY")}
  These dev keys are shown once and die with this process.

  console                    ${url}/console  (sign in with the admin key)

Try it in another terminal:

  export PERISHABLE_URL=${url} PERISHABLE_ISSUER_KEY=${env.PERISHABLE_ISSUER_KEY ? "<your key>" : issuerKey}

  # 1. the orchestrator issues a 60-second token for one agent
  TOKEN=$(curl -s -X POST $PERISHABLE_URL/v1/tokens \\
    -H "authorization: Bearer $PERISHABLE_ISSUER_KEY" -H "content-type: application/json" \\
    -d '{"scopes":["llm:complete"],"ttl":60,"agent":"planner"}' | node -pe 'JSON.parse(require("fs").readFileSync(0)).token')

  # 2. the agent calls OpenAI through the broker with it (no OpenAI key in sight)
  curl -s $PERISHABLE_URL/proxy/openai/v1/chat/completions -H "authorization: Bearer $TOKEN" \\
    -H "content-type: application/json" -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'

  # 3. the agent ends its own authority; the next call is refused with token_revoked
  curl -s -X DELETE $PERISHABLE_URL/v1/tokens/self -H "authorization: Bearer $TOKEN"

Ctrl-C stops the broker.
`);

  await runUntilSignal(() => dev.close());
};
