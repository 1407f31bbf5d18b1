// One command: start a dev broker (in-memory store, mock upstream) unless one is given in
// PERISHABLE_URL + PERISHABLE_ISSUER_KEY + PERISHABLE_ADMIN_KEY, then run the planner against it.
import { startDevBroker } from "@perishable/broker";
import { runPlanner } from "./planner.mjs";

const { PERISHABLE_URL, PERISHABLE_ISSUER_KEY, PERISHABLE_ADMIN_KEY } = process.env;
const external = PERISHABLE_URL && PERISHABLE_ISSUER_KEY && PERISHABLE_ADMIN_KEY;
const dev = external ? undefined : await startDevBroker({ mock: { chunks: 6, chunkDelayMs: 15 } });
if (dev) console.log(`started a dev broker on ${dev.url} (in-memory store, mock upstream)\n`);

try {
  await runPlanner({
    broker: external ? PERISHABLE_URL : dev.url,
    issuerKey: external ? PERISHABLE_ISSUER_KEY : dev.issuerKey,
    adminKey: external ? PERISHABLE_ADMIN_KEY : dev.adminKey,
  });
} finally {
  await dev?.close();
}
