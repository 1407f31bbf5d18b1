import type { ConfigInput } from "../config/schema.js";

/**
 * The config `perishable dev` runs with: the same document an operator would write in
 * perishable.yaml (see perishable.example.yaml), with generated keys and, where no real API key
 * is in the environment, the built-in mock as the upstream.
 */
export interface DevConfigInput {
  readonly port: number;
  readonly secret: string;
  readonly issuerKey: string;
  readonly adminKey: string;
  readonly openai: { readonly baseUrl: string; readonly key: string };
  readonly anthropic: { readonly baseUrl: string; readonly key: string };
}

export const devConfig = (input: DevConfigInput): ConfigInput => ({
  listen: { host: "127.0.0.1", port: input.port },
  secret: input.secret,
  limits: { default_ttl: 300, max_ttl: 3600, max_lifetime: 86_400, max_depth: 4 },
  upstreams: {
    openai: {
      base_url: input.openai.baseUrl,
      auth: { header: "authorization", value: `Bearer ${input.openai.key}` },
    },
    anthropic: {
      base_url: input.anthropic.baseUrl,
      auth: { header: "x-api-key", value: input.anthropic.key },
      headers: { "anthropic-version": "2023-06-01" },
    },
  },
  scopes: {
    "llm:complete": {
      upstream: "openai",
      endpoints: ["/v1/chat/completions", "/v1/completions", "/v1/responses"],
      methods: ["POST"],
      rate_limit: "120/minute",
      models: ["gpt-4o-mini", "gpt-4.1-*", "gpt-5*", "o4-mini"],
      // A ceiling on output: a client that states no limit gets this one filled in.
      max_tokens: 4096,
    },
    "llm:embed": {
      upstream: "openai",
      endpoints: ["/v1/embeddings"],
      methods: ["POST"],
      rate_limit: "600/minute",
    },
    "models:read": { upstream: "openai", endpoints: ["/v1/models", "/v1/models/*"], methods: ["GET"] },
    "claude:messages": {
      upstream: "anthropic",
      endpoints: ["/v1/messages", "/v1/messages/count_tokens"],
      methods: ["POST"],
      rate_limit: "120/minute",
    },
  },
  issuers: [
    {
      name: "orchestrator",
      key: input.issuerKey,
      scopes: ["llm:complete", "llm:embed", "models:read", "claude:messages"],
      max_ttl: 900,
    },
  ],
  admins: [{ name: "secops", key: input.adminKey }],
  audit: { stream_max_len: 100_000 },
  log: { level: "warn" },
});
