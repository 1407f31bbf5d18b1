// The mock upstream for the benchmarks, in its own process: OpenAI-style JSON and SSE, nothing recorded.
// Usage: node mock.mjs <port> <chunk delay ms>
import { startMockUpstream } from "@perishable/broker";

const [port, delay] = process.argv.slice(2);
await startMockUpstream({ port: Number(port), chunks: 20, chunkDelayMs: Number(delay), record: false });
process.stdout.write("ready\n");
