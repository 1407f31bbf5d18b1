import { Pool } from "undici";
import type { UpstreamConfig } from "../config/types.js";
import type { ProxyTarget } from "./plan.js";

/** One keep-alive connection pool per upstream, created at start and closed at shutdown. */
export class UpstreamPools {
  readonly #pools = new Map<string, Pool>();

  constructor(upstreams: Iterable<UpstreamConfig>) {
    for (const upstream of upstreams) {
      this.#pools.set(
        upstream.name,
        new Pool(upstream.origin, {
          connections: upstream.connections,
          connectTimeout: upstream.timeouts.connectMs,
          headersTimeout: upstream.timeouts.headersMs,
          bodyTimeout: upstream.timeouts.bodyMs,
          keepAliveTimeout: 30_000,
          pipelining: 1,
        }),
      );
    }
  }

  get(name: string): Pool | undefined {
    return this.#pools.get(name);
  }

  async close(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((pool) => pool.close()));
  }

  /** Ends in-flight upstream requests too (after the grace period of a shutdown). */
  async destroy(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((pool) => pool.destroy()));
  }
}

/**
 * Where on the upstream a request goes: its base path and the rest. An MCP server has one endpoint,
 * the base URL itself: `/proxy/<mcp>/` is that endpoint exactly (no trailing slash added).
 */
export const upstreamPath = (upstream: UpstreamConfig, target: ProxyTarget): string =>
  upstream.kind === "mcp" && target.rest === "/"
    ? (upstream.basePath || "/") + target.query
    : upstream.basePath + target.rest + target.query;
