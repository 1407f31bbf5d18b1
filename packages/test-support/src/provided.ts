import type {} from "vitest";

/** What the global setup hands every test file through `inject()`. */
declare module "vitest" {
  export interface ProvidedContext {
    redisUrl: string;
  }
}
