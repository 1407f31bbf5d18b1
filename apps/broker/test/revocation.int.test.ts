import { inject } from "vitest";
import { startTestBroker } from "./support/broker.js";
import { describeMultiNode } from "./support/multi-node-suite.js";

describeMultiNode("one Redis", () => startTestBroker({ redisUrl: inject("redisUrl"), cutoffMarginMs: 50 }));
