import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { startDevBroker } from "@perishable/broker";
import { withRealtime } from "@perishable/test-support";
import { WebSocket, WebSocketServer } from "ws";
import { fmt, percentile, type SectionReport } from "../lib/report.js";

/** A realtime-shaped client event (~200 bytes of JSON). */
const EVENT = JSON.stringify({
  type: "input_audio_buffer.append",
  event_id: "evt_0123456789",
  audio: "A".repeat(140),
});

/**
 * WebSocket frames through the broker (`websocket: true`, OpenAI Realtime's shape) against the
 * same `ws` echo upstream directly, one process: latency of a message and its echo one at a
 * time, then frames per second with a window of messages in flight each way.
 */
export const websocketBench = async (
  messages = Number(process.env.BENCH_WS_MESSAGES ?? 5_000),
  burst = Number(process.env.BENCH_WS_BURST ?? 50_000),
): Promise<SectionReport> => {
  const http = createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ server: http });
  wss.on("connection", (socket) => socket.on("message", (data, binary) => socket.send(data, { binary })));
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const upstream = `127.0.0.1:${(http.address() as AddressInfo).port}`;
  const dev = await startDevBroker({
    configure: (doc) => {
      doc.log = { level: "error" };
      withRealtime(doc, `http://${upstream}`, "sk-x");
    },
  });
  try {
    const issued = (await (
      await fetch(`${dev.url}/v1/tokens`, {
        method: "POST",
        headers: { authorization: `Bearer ${dev.issuerKey}`, "content-type": "application/json" },
        body: JSON.stringify({ scopes: ["llm:realtime"], ttl: 600 }),
      })
    ).json()) as { token: string };
    const path = "/v1/realtime?model=gpt-realtime";
    const direct = await run(`ws://${upstream}${path}`, {}, messages, burst);
    const broker = await run(
      `${dev.url.replace("http:", "ws:")}/proxy/realtime${path}`,
      { authorization: `Bearer ${issued.token}` },
      messages,
      burst,
    );
    return {
      id: "websocket",
      title: "WebSocket frames (OpenAI Realtime's shape): direct and through the broker",
      command: "corepack pnpm bench websocket",
      header: ["measure", "direct", "through the broker", "broker / direct"],
      rows: [
        [
          "message → echo p50 (ms)",
          fmt(direct.p50, 3),
          fmt(broker.p50, 3),
          `+${fmt(broker.p50 - direct.p50, 3)} ms`,
        ],
        [
          "message → echo p99 (ms)",
          fmt(direct.p99, 3),
          fmt(broker.p99, 3),
          `+${fmt(broker.p99 - direct.p99, 3)} ms`,
        ],
        [
          "frames per second each way, 50,000 in flight",
          fmt(direct.fps, 0),
          fmt(broker.fps, 0),
          fmt(broker.fps / direct.fps, 2),
        ],
        [
          "CPU per echoed message, all parties in one process (µs)",
          fmt(direct.cpuUs, 1),
          fmt(broker.cpuUs, 1),
          `+${fmt(broker.cpuUs - direct.cpuUs, 1)} µs`,
        ],
      ],
      notes: [
        `${messages} messages one at a time (after 500 to warm up), then ${burst} sent at once and counted back; ~200-byte JSON text frames, the ws package as client and upstream, the dev broker on its memory store relaying with backpressure, all in one Node process (so the broker's CPU is the difference).`,
      ],
    };
  } finally {
    await dev.close();
    for (const c of wss.clients) c.terminate();
    await new Promise((resolve) => http.close(resolve));
  }
};

const run = async (url: string, headers: Record<string, string>, messages: number, burst: number) => {
  const socket = new WebSocket(url, { headers });
  await once(socket, "open");
  const echo = () => once(socket, "message");
  for (let i = 0; i < 500; i++) {
    const back = echo();
    socket.send(EVENT);
    await back;
  }
  const times: number[] = [];
  const cpu = process.cpuUsage();
  for (let i = 0; i < messages; i++) {
    const started = performance.now();
    const back = echo();
    socket.send(EVENT);
    await back;
    times.push(performance.now() - started);
  }
  const used = process.cpuUsage(cpu);
  let received = 0;
  const all = new Promise<void>((resolve) => {
    socket.on("message", () => {
      received += 1;
      if (received === burst) resolve();
    });
  });
  const started = performance.now();
  for (let i = 0; i < burst; i++) socket.send(EVENT);
  await all;
  const seconds = (performance.now() - started) / 1000;
  socket.close();
  return {
    p50: percentile(times, 50),
    p99: percentile(times, 99),
    fps: burst / seconds,
    cpuUs: (used.user + used.system) / messages,
  };
};
