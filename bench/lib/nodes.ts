import { type RunningBroker, startBroker, startMockUpstream, validateConfig } from "@perishable/broker";
import { startRedisServer } from "@perishable/test-support";

export const ISSUER = "bench-issuer-key-0123456789abcdefghijkl";
export const ADMIN = "bench-admin-key-0123456789abcdefghijklm";

export interface Nodes extends AsyncDisposable {
  readonly nodes: readonly RunningBroker[];
  /** A root grant on `models:read` through the first node (`extra`: more of the request, e.g. maxUses). */
  issue(ttl: number, extra?: Record<string, unknown>): Promise<{ token: string; grantId: string }>;
}

/**
 * Three broker nodes in this process on one private redis-server, in front of the mock upstream,
 * with one scope `models:read` (GET /v1/models; `scope` adds to it, e.g. a rate limit): the setup
 * of the benches that measure what the nodes do together.
 */
export const startNodes = async (prefix: string, scope: Record<string, unknown> = {}): Promise<Nodes> => {
  const redis = await startRedisServer();
  const mock = await startMockUpstream();
  const doc = {
    listen: { host: "127.0.0.1", port: 0 },
    secret: "bench-secret-bench-secret-bench-secret-01",
    store: { redis: redis.url, prefix },
    upstreams: { openai: { base_url: mock.url, auth: { header: "authorization", value: "Bearer sk-x" } } },
    scopes: { "models:read": { upstream: "openai", endpoints: ["/v1/models"], methods: ["GET"], ...scope } },
    issuers: [{ name: "bench", key: ISSUER, scopes: ["models:read"], max_ttl: 3600 }],
    admins: [{ name: "secops", key: ADMIN }],
    log: { level: "error" },
  };
  const nodes: RunningBroker[] = [];
  for (let i = 0; i < 3; i++)
    nodes.push(await startBroker(validateConfig(doc, { source: "bench", env: {} })));
  return {
    nodes,
    issue: async (ttl, extra = {}) =>
      (await (
        await fetch(`${nodes[0]!.url}/v1/tokens`, {
          method: "POST",
          headers: { authorization: `Bearer ${ISSUER}`, "content-type": "application/json" },
          body: JSON.stringify({ scopes: ["models:read"], ttl, ...extra }),
        })
      ).json()) as { token: string; grantId: string },
    [Symbol.asyncDispose]: async () => {
      for (const node of [...nodes].reverse()) await node.close();
      await mock.close();
      await redis[Symbol.asyncDispose]();
    },
  };
};
