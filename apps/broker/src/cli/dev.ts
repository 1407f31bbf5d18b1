import { newKey } from "../auth/secrets.js";
import { startBroker } from "../broker.js";
import { validateConfig } from "../config/load.js";
import { devConfig } from "../dev/dev-config.js";
import { type MockUpstream, startMockUpstream } from "../dev/mock-upstream.js";
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
  let mock: MockUpstream | undefined;
  const needMock = !env.OPENAI_API_KEY || !env.ANTHROPIC_API_KEY;
  if (needMock) mock = await startMockUpstream({ chunks: 8, chunkDelayMs: 40 });
  const issuerKey = env.PERISHABLE_ISSUER_KEY || newKey("pik");
  const adminKey = env.PERISHABLE_ADMIN_KEY || newKey("pak");
  const config = validateConfig(
    devConfig({
      port: options.port,
      secret: newKey("sec"),
      issuerKey,
      adminKey,
      openai: env.OPENAI_API_KEY
        ? { baseUrl: "https://api.openai.com", key: env.OPENAI_API_KEY }
        : { baseUrl: mock!.url, key: "sk-mock-upstream-key" },
      anthropic: env.ANTHROPIC_API_KEY
        ? { baseUrl: "https://api.anthropic.com", key: env.ANTHROPIC_API_KEY }
        : { baseUrl: mock!.url, key: "sk-ant-mock-upstream-key" },
    }),
    { source: "perishable dev", env: {} },
  );
  const broker = await startBroker(config);
  const url = broker.url;
  const upstreamLine = (name: string, realKey: string | undefined, host: string) =>
    realKey
      ? `${host} (key from ${name === "openai" ? "OPENAI_API_KEY" : "ANTHROPIC_API_KEY"})`
      : `built-in mock at ${mock!.url}`;
  const shown = (key: string, variable: string) => (env[variable] ? `(from ${variable})` : key);

  out(`
perishable dev broker on ${url}  (in-memory store: nothing survives a restart)

  upstream openai     → ${upstreamLine("openai", env.OPENAI_API_KEY, "https://api.openai.com")}
  upstream anthropic  → ${upstreamLine("anthropic", env.ANTHROPIC_API_KEY, "https://api.anthropic.com")}
  scopes              llm:complete, llm:embed, models:read, claude:messages

  issuer key (orchestrator)  ${shown(issuerKey, "PERISHABLE_ISSUER_KEY")}
  admin key  (secops)        ${shown(adminKey, "PERISHABLE_ADMIN_KEY")}
  These dev keys are shown once and die with this process.

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

  await runUntilSignal(async () => {
    await broker.close(5_000);
    await mock?.close();
  });
};
