// Sequential requests on one keep-alive connection for a while; prints latency percentiles (ms).
// Usage: node latency.mjs '<json: url, seconds, headers, body>'
import { Agent, request } from "undici";

const { url, seconds, headers, body, method = "POST" } = JSON.parse(process.argv[2]);
const dispatcher = new Agent({ connections: 1, keepAliveTimeout: 1_000 });
const times = [];
const end = performance.now() + seconds * 1000;
while (performance.now() < end) {
  const t = performance.now();
  const response = await request(url, { method, headers, body, dispatcher });
  await response.body.arrayBuffer();
  if (response.statusCode >= 200 && response.statusCode < 300) times.push(performance.now() - t);
}
times.sort((a, b) => a - b);
const at = (p) => times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))];
process.stdout.write(`${JSON.stringify({ requests: times.length, p50: at(50), p99: at(99) })}\n`);
await dispatcher.close();
