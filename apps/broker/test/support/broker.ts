import { Writable } from "node:stream";
import type { TokenResponse } from "@perishable/protocol";
import { type IsolatedRedis, isolatedRedis } from "@perishable/test-support";
import { type RunningBroker, startBroker } from "../../src/broker.js";
import { validateConfig } from "../../src/config/load.js";
import type { ConfigInput } from "../../src/config/schema.js";
import {
  type MockUpstream,
  type MockUpstreamOptions,
  startMockUpstream,
} from "../../src/dev/mock-upstream.js";

/** Secrets of the test config: the secret-scan test looks for each of them everywhere. */
export const SECRETS = {
  openai: "sk-test-openai-UPSTREAM-SECRET-0123456789",
  anthropic: "sk-ant-test-UPSTREAM-SECRET-0123456789",
  files: "files-UPSTREAM-SECRET-0123456789",
  issuer: "pik_test-issuer-key-0123456789abcdef",
  limitedIssuer: "pik_limited-issuer-key-0123456789abc",
  admin: "pak_test-admin-key-0123456789abcdef",
  broker: "sec_test-broker-secret-0123456789abcdef",
} as const;

export interface TestBrokerOptions {
  /** Use this Redis (an isolated prefix of it); the memory store when omitted. */
  readonly redisUrl?: string;
  /** Use a Redis Cluster (its node URLs), on an isolated prefix. */
  readonly redisCluster?: readonly string[];
  /** Share the Redis prefix and the mock upstream of another test broker (two nodes, one cluster). */
  readonly peerOf?: TestBroker;
  readonly mock?: MockUpstreamOptions;
  /** A bulk revocation's cut-off margin (the default is a second). */
  readonly cutoffMarginMs?: number;
  /** Changes to the raw config document before validation. */
  readonly configure?: (doc: ConfigInput) => void;
}

export interface TestBroker extends AsyncDisposable {
  readonly url: string;
  /** The config document it runs with (before validation). */
  readonly configDocument: ConfigInput;
  readonly mock: MockUpstream;
  readonly broker: RunningBroker;
  readonly redis: IsolatedRedis | undefined;
  /** Every line the broker logged. */
  readonly logs: () => string;
  /** The admin API with the admin key. */
  admin(path: string, init?: RequestInit): Promise<Response>;
  /** `POST /v1/tokens` with the orchestrator's issuer key (or another credential). */
  issue(body: Record<string, unknown>, credential?: string): Promise<TokenResponse>;
  /** fetch against the broker with a bearer credential. */
  call(path: string, credential: string | undefined, init?: RequestInit): Promise<Response>;
}

export const testConfigDocument = (mockUrl: string): ConfigInput => ({
  listen: { host: "127.0.0.1", port: 0 },
  secret: SECRETS.broker,
  limits: { default_ttl: 120, max_ttl: 3600, max_lifetime: 86_400, max_depth: 3 },
  upstreams: {
    openai: { base_url: mockUrl, auth: { header: "authorization", value: `Bearer ${SECRETS.openai}` } },
    anthropic: {
      base_url: mockUrl,
      auth: { header: "x-api-key", value: SECRETS.anthropic },
      headers: { "anthropic-version": "2023-06-01" },
    },
    files: { base_url: `${mockUrl}/base/`, auth: { header: "x-files-key", value: SECRETS.files } },
    slow: {
      base_url: mockUrl,
      auth: { header: "authorization", value: `Bearer ${SECRETS.openai}` },
      timeout: { headers: 1 },
    },
    closed: {
      base_url: "http://127.0.0.1:1",
      auth: { header: "authorization", value: `Bearer ${SECRETS.openai}` },
    },
  },
  scopes: {
    "llm:complete": {
      upstream: "openai",
      endpoints: ["/v1/chat/completions"],
      methods: ["POST"],
      models: ["gpt-4o-mini", "gpt-4.1-*"],
    },
    "llm:bounded": { upstream: "openai", endpoints: ["/v1/completions"], methods: ["POST"], max_tokens: 256 },
    "llm:embed": {
      upstream: "openai",
      endpoints: ["/v1/embeddings"],
      methods: ["POST"],
      rate_limit: "3/minute",
    },
    "models:read": { upstream: "openai", endpoints: ["/v1/models", "/v1/models/*"], methods: ["GET"] },
    "files:rw": { upstream: "files", endpoints: ["/v1/files", "/v1/files/**"], methods: ["GET", "POST"] },
    "claude:messages": { upstream: "anthropic", endpoints: ["/v1/messages"], methods: ["POST"] },
    "slow:call": { upstream: "slow", endpoints: ["/v1/hang", "/v1/reset"], methods: ["POST", "GET"] },
    "closed:call": { upstream: "closed", endpoints: ["/**"], methods: ["GET"] },
  },
  issuers: [
    {
      name: "orchestrator",
      key: SECRETS.issuer,
      scopes: [
        "llm:complete",
        "llm:bounded",
        "llm:embed",
        "models:read",
        "files:rw",
        "claude:messages",
        "slow:call",
        "closed:call",
      ],
      max_ttl: 600,
    },
    { name: "limited", key: SECRETS.limitedIssuer, scopes: ["llm:embed"], max_ttl: 60, max_lifetime: 600 },
  ],
  admins: [{ name: "secops", key: SECRETS.admin }],
  audit: { stream_max_len: 10_000 },
  log: { level: "info" },
});

/** A broker on port 0 in front of a fresh mock upstream, on Redis or memory, with its logs captured. */
export const startTestBroker = async (options: TestBrokerOptions = {}): Promise<TestBroker> => {
  const peer = options.peerOf;
  const mock = peer ? peer.mock : await startMockUpstream(options.mock);
  const target = options.redisCluster ?? options.redisUrl;
  const redis = peer || !target ? undefined : await isolatedRedis(target, "broker");
  const doc = peer ? structuredClone(peer.configDocument) : testConfigDocument(mock.url);
  if (redis && options.redisCluster) doc.store = { cluster: [...options.redisCluster], prefix: redis.prefix };
  else if (redis) doc.store = { redis: options.redisUrl, prefix: redis.prefix };
  options.configure?.(doc);
  const config = validateConfig(doc, { source: "test config", env: {} });
  let logged = "";
  const logStream = new Writable({
    write(chunk, _encoding, done) {
      logged += chunk.toString();
      done();
    },
  });
  const broker = await startBroker(config, {
    logStream,
    ...(options.cutoffMarginMs === undefined ? {} : { cutoffMarginMs: options.cutoffMarginMs }),
  });
  const call = (path: string, credential: string | undefined, init: RequestInit = {}) =>
    fetch(`${broker.url}${path}`, {
      ...init,
      headers: {
        ...(credential ? { authorization: `Bearer ${credential}` } : {}),
        ...(init.body && typeof init.body === "string" ? { "content-type": "application/json" } : {}),
        ...(init.headers as Record<string, string> | undefined),
      },
    });
  return {
    url: broker.url,
    configDocument: doc,
    mock,
    broker,
    redis,
    logs: () => logged,
    call,
    admin: (path, init) => call(path, SECRETS.admin, init),
    issue: async (body, credential = SECRETS.issuer) => {
      const response = await call("/v1/tokens", credential, { method: "POST", body: JSON.stringify(body) });
      const json = (await response.json()) as TokenResponse & { error?: unknown };
      if (response.status !== 201)
        throw new Error(`issue failed: ${response.status} ${JSON.stringify(json)}`);
      return json;
    },
    [Symbol.asyncDispose]: async () => {
      await broker.close(1_000);
      if (!peer) await mock.close();
      await redis?.[Symbol.asyncDispose]();
    },
  };
};
