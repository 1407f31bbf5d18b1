import type { FastifyInstance } from "fastify";
import { BrokerError } from "../errors.js";
import type { Metrics } from "../metrics/metrics.js";
import type { Store } from "../store/types.js";

/**
 * `/healthz`: the process answers. `/readyz`: and its store does too (load balancers route on
 * this). `/metrics`: Prometheus text (no secrets, no ids: labels are upstreams, statuses, codes).
 */
export const registerOpsRoutes = (app: FastifyInstance, store: Store, metrics: Metrics): void => {
  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async () => {
    try {
      await store.ping();
    } catch {
      throw new BrokerError("store_unavailable", "the store does not answer");
    }
    return { status: "ready" };
  });
  app.get("/metrics", async (_request, reply) => {
    reply.header("content-type", metrics.registry.contentType);
    return metrics.registry.metrics();
  });
};
