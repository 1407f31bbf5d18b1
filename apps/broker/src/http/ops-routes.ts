import type { FastifyInstance } from "fastify";
import { BrokerError } from "../errors.js";
import type { Metrics } from "../metrics/metrics.js";
import type { UpstreamKeys } from "../proxy/upstream-keys.js";
import type { Store } from "../store/types.js";

/**
 * `/healthz`: the process answers. `/readyz`: and its store does too (load balancers route on
 * this). `/metrics`: Prometheus text (no secrets, no ids: labels are upstreams, statuses, codes).
 */
export const registerOpsRoutes = (
  app: FastifyInstance,
  store: Store,
  metrics: Metrics,
  keys: () => UpstreamKeys | undefined,
): void => {
  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async () => {
    try {
      await store.ping();
    } catch {
      throw new BrokerError("store_unavailable", "the store does not answer");
    }
    // Still ready (the old key serves), but said: an operator's rotation did not take.
    const stale = keys()?.stale;
    return stale && stale.size > 0
      ? { status: "ready", staleUpstreamKeys: Object.fromEntries(stale) }
      : { status: "ready" };
  });
  app.get("/metrics", async (_request, reply) => {
    reply.header("content-type", metrics.registry.contentType);
    return metrics.registry.metrics();
  });
};
