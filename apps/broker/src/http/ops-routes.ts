import type { FastifyInstance } from "fastify";
import { BrokerError } from "../errors.js";
import type { Store } from "../store/types.js";

/** `/healthz`: the process answers. `/readyz`: and its store does too (load balancers route on this). */
export const registerOpsRoutes = (app: FastifyInstance, store: Store): void => {
  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async () => {
    try {
      await store.ping();
    } catch {
      throw new BrokerError("store_unavailable", "the store does not answer");
    }
    return { status: "ready" };
  });
};
