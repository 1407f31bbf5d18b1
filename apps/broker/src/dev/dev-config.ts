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
  // USD per million tokens (list prices as of writing; check your provider's): what budgets charge.
  prices: {
    openai: {
      "gpt-4o-mini": { input: 0.15, output: 0.6, cached_input: 0.075 },
      "gpt-4.1-mini*": { input: 0.4, output: 1.6, cached_input: 0.1 },
      "gpt-4.1*": { input: 2, output: 8, cached_input: 0.5 },
      "gpt-5*": { input: 1.25, output: 10, cached_input: 0.125 },
      "o4-mini": { input: 1.1, output: 4.4, cached_input: 0.275 },
      "text-embedding-3-small": { input: 0.02, output: 0 },
    },
    anthropic: {
      "claude-*haiku*": { input: 0.8, output: 4, cache_write: 1, cached_input: 0.08, max_output: 8192 },
      "claude-*": { input: 3, output: 15, cache_write: 3.75, cached_input: 0.3, max_output: 8192 },
    },
  },
  audit: { stream_max_len: 100_000 },
  log: { level: "warn" },
});
