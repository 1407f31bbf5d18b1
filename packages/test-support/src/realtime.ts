/** A config document as far as `withRealtime` touches it (the broker's ConfigInput fits). */
interface RealtimeDoc {
  upstreams: Record<string, unknown>;
  scopes: Record<string, unknown>;
  issuers?: unknown[];
}

/**
 * Adds a realtime WebSocket upstream (`realtime`, at `baseUrl`, with `key` as its bearer) and the
 * scope `llm:realtime` (`websocket: true`, GET /v1/realtime, models `gpt-realtime*`) to a config
 * document, and lets its first issuer grant the scope: the setup of every realtime test and bench.
 */
export const withRealtime = (doc: RealtimeDoc, baseUrl: string, key = "sk-upstream"): void => {
  doc.upstreams.realtime = { base_url: baseUrl, auth: { header: "authorization", value: `Bearer ${key}` } };
  doc.scopes["llm:realtime"] = {
    upstream: "realtime",
    endpoints: ["/v1/realtime"],
    methods: ["GET"],
    websocket: true,
    models: ["gpt-realtime*"],
  };
  (doc.issuers?.[0] as { scopes: string[] } | undefined)?.scopes.push("llm:realtime");
};
