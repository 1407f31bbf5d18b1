import type { Writable } from "node:stream";
import type { BrokerConfig } from "./config/types.js";
import { type BrokerServer, buildServer } from "./server.js";
import { describeStore, openStore } from "./store/open.js";
import type { Store } from "./store/types.js";

export interface RunningBroker {
  readonly server: BrokerServer;
  readonly store: Store;
  /** `http://host:port` the broker listens on. */
  readonly url: string;
  /**
   * Graceful stop: no new connections, in-flight requests and streams finish (up to
   * `graceMs`, then they are cut), the audit trail is flushed, the store is closed.
   */
  close(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  readonly logStream?: Writable;
  /** Overrides `listen` from the config (tests use port 0). */
  readonly listen?: { readonly host?: string; readonly port?: number };
  readonly cutoffMarginMs?: number;
}

/** Opens the store, builds the server and listens. Nothing listens before the store is ready. */
export const startBroker = async (
  config: BrokerConfig,
  options: StartOptions = {},
): Promise<RunningBroker> => {
  const store = await openStore(config);
  let server: BrokerServer;
  try {
    server = await buildServer({
      config,
      store,
      ...(options.logStream ? { logStream: options.logStream } : {}),
      ...(options.cutoffMarginMs === undefined ? {} : { cutoffMarginMs: options.cutoffMarginMs }),
    });
  } catch (error) {
    await store.close();
    throw error;
  }
  const host = options.listen?.host ?? config.listen.host;
  const port = options.listen?.port ?? config.listen.port;
  try {
    await server.app.listen({ host, port });
  } catch (error) {
    await server.close();
    await store.close();
    throw error;
  }
  const address = server.app.server.address();
  const bound = typeof address === "object" && address ? address.port : port;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${bound}`;
  server.app.log.info(
    {
      url,
      store: describeStore(config),
      upstreams: [...config.upstreams.keys()],
      scopes: [...config.scopes.keys()],
    },
    "perishable broker listening",
  );

  let closing: Promise<void> | undefined;
  return {
    server,
    store,
    url,
    close: (graceMs = 30_000) => {
      closing ??= (async () => {
        const http = server.app.server;
        const timer = setTimeout(() => http.closeAllConnections(), graceMs);
        // server.close() drops idle keep-alive connections once, when it starts; a connection
        // whose stream ends later would linger until its keep-alive timeout, so sweep again.
        const sweeper = setInterval(() => http.closeIdleConnections(), 100);
        timer.unref();
        sweeper.unref();
        try {
          await server.close();
        } finally {
          clearTimeout(timer);
          clearInterval(sweeper);
          await store.close();
        }
      })();
      return closing;
    },
  };
};
