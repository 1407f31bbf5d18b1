// The node floor: the least any Node proxy with a Redis check can cost. node:http, one ioredis GET
// to check a static bearer, the real key injected, the upstream answer streamed back through
// undici's Pool.stream() over a keep-alive pool. No routing framework, no audit, no metrics.
// Usage: node floor.mjs <port> <upstream origin> <redis url> <upstream key>
import { createServer } from "node:http";
import { Redis } from "ioredis";
import { Pool } from "undici";

const [port, upstream, redisUrl, key] = process.argv.slice(2);
const redis = new Redis(redisUrl, { enableAutoPipelining: true });
const pool = new Pool(upstream, { connections: 128, pipelining: 1 });
const HOP = new Set(["connection", "keep-alive", "transfer-encoding", "host", "authorization"]);

const server = createServer(async (req, res) => {
  const token = req.headers.authorization?.slice(7);
  if (!token || (await redis.get(`floor:${token}`)) === null) {
    res.writeHead(401).end();
    req.resume();
    return;
  }
  const headers = {};
  for (const [name, value] of Object.entries(req.headers)) if (!HOP.has(name)) headers[name] = value;
  headers.authorization = `Bearer ${key}`;
  try {
    await pool.stream(
      { path: req.url.replace(/^\/floor/, ""), method: req.method, headers, body: req },
      ({ statusCode, headers: upstreamHeaders }) => {
        const out = {};
        for (const [name, value] of Object.entries(upstreamHeaders)) if (!HOP.has(name)) out[name] = value;
        res.writeHead(statusCode, out);
        return res;
      },
    );
  } catch {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  }
});
server.listen(Number(port), "127.0.0.1", () => process.stdout.write("ready\n"));
