import { describeStoreContract } from "../../../test/support/store-contract.js";
import { MemoryStore } from "./memory-store.js";

// The memory twin is the readable spec of the Redis store: the same contract, without a network,
// so it runs with the unit tests (the Redis and Cluster runs are in test/).
describeStoreContract("memory", async () => {
  const store = new MemoryStore({ auditMaxLen: 1000 });
  return Object.assign(store, { [Symbol.asyncDispose]: () => store.close() });
});
