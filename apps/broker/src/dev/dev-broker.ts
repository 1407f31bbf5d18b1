import type { Writable } from "node:stream";
import { newKey } from "../auth/secrets.js";
import { type RunningBroker, startBroker } from "../broker.js";
import { validateConfig } from "../config/load.js";
import type { ConfigInput } from "../config/schema.js";
import { devConfig } from "./dev-config.js";
import { type MockUpstream, type MockUpstreamOptions, startMockUpstream } from "./mock-upstream.js";

export interface DevBrokerOptions {
  /** 0 (default) for any free port. */
  readonly port?: number;
  /** Use this Redis instead of the in-memory store. */
  readonly redis?: { readonly url: string; readonly prefix?: string };
  /** Where `OPENAI_API_KEY` / `ANTHROPIC_API_KEY` / `PERISHABLE_*_KEY` are read; nothing is read when omitted. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly mock?: MockUpstreamOptions;
  /** Last changes to the config document before it is validated. */
  readonly configure?: (doc: ConfigInput) => void;
  readonly logStream?: Writable;
}

export interface DevBroker extends AsyncDisposable {
  readonly url: string;
  readonly issuerKey: string;
  readonly adminKey: string;
  /** The mock upstream, unless both real provider keys were in `env`. */
  readonly mock: MockUpstream | undefined;
  readonly broker: RunningBroker;
  close(): Promise<void>;
}

/**
 * A complete broker in this process, the one `perishable dev` runs: example upstreams and scopes,
 * fresh issuer and admin keys, the built-in mock standing in for any provider without a real key.
 * For demos, examples, and the tests of code that uses the SDK.
 */
export const startDevBroker = async (options: DevBrokerOptions = {}): Promise<DevBroker> => {
  const env = options.env ?? {};
  const needMock = !env.OPENAI_API_KEY || !env.ANTHROPIC_API_KEY;
  const mock = needMock ? await startMockUpstream(options.mock) : undefined;
  const issuerKey = env.PERISHABLE_ISSUER_KEY || newKey("pik");
  const adminKey = env.PERISHABLE_ADMIN_KEY || newKey("pak");
  try {
    const doc = devConfig({
      port: options.port ?? 0,
      secret: env.PERISHABLE_SECRET || newKey("sec"),
      issuerKey,
      adminKey,
      openai: env.OPENAI_API_KEY
        ? { baseUrl: "https://api.openai.com", key: env.OPENAI_API_KEY }
        : { baseUrl: mock!.url, key: "sk-mock-upstream-key" },
      anthropic: env.ANTHROPIC_API_KEY
        ? { baseUrl: "https://api.anthropic.com", key: env.ANTHROPIC_API_KEY }
        : { baseUrl: mock!.url, key: "sk-ant-mock-upstream-key" },
    });
    if (options.redis)
      doc.store = {
        redis: options.redis.url,
        ...(options.redis.prefix ? { prefix: options.redis.prefix } : {}),
      };
    options.configure?.(doc);
    const config = validateConfig(doc, { source: "dev config", env: {} });
    const broker = await startBroker(config, options.logStream ? { logStream: options.logStream } : {});
    const close = async () => {
      await broker.close(5_000);
      await mock?.close();
    };
    return { url: broker.url, issuerKey, adminKey, mock, broker, close, [Symbol.asyncDispose]: close };
  } catch (error) {
    await mock?.close();
    throw error;
  }
};
