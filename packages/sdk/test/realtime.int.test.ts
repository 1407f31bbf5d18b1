import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage } from "node:http";
import { type AddressInfo, connect as connectTcp } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer as createTlsServer } from "node:tls";
import { type DevBroker, startDevBroker } from "@perishable/broker";
import { withRealtime } from "@perishable/test-support";
import OpenAI from "openai";
import { OpenAIRealtimeWS } from "openai/realtime/ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { connect, type Session } from "../src/index.js";

const handshakes: IncomingMessage[] = [];
const http = createServer((_req, res) => res.writeHead(404).end());
const wss = new WebSocketServer({
  server: http,
  handleProtocols: (p) => (p.has("realtime") ? "realtime" : false),
});
wss.on("headers", (_h, req) => handshakes.push(req));
// Text is echoed; a JSON client event gets a JSON server event back, as the realtime API answers.
wss.on("connection", (socket) =>
  socket.on("message", (data) => {
    const text = String(data);
    socket.send(
      text.startsWith("{") ? JSON.stringify({ type: "echo.done", of: JSON.parse(text) }) : `echo ${text}`,
    );
  }),
);

let dev: DevBroker;
const sessions: Session[] = [];
beforeAll(async () => {
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const upstream = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  dev = await startDevBroker({
    configure: (doc) => withRealtime(doc, upstream),
  });
});
afterAll(async () => {
  for (const s of sessions) s.close();
  await dev?.close();
  for (const c of wss.clients) c.terminate();
  await new Promise((resolve) => http.close(resolve));
});

describe("session.realtime()", () => {
  it("opens a realtime socket through the broker with the current token, by header or subprotocol", async () => {
    const session = await connect({ broker: dev.url, credential: dev.issuerKey, scopes: ["llm:realtime"] });
    sessions.push(session);
    const rt = session.realtime({ model: "gpt-realtime", upstream: "realtime" });
    expect(rt.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/proxy\/realtime\/v1\/realtime\?model=gpt-realtime$/);
    const clients = [
      () => new WebSocket(rt.url, ["realtime"], { headers: rt.headers }), // a server-side agent
      () => new WebSocket(rt.url, [...rt.protocols]), // a browser, which cannot set headers
    ];
    for (const open of clients) {
      const socket = open();
      await once(socket, "open");
      const reply = once(socket, "message");
      socket.send("hello");
      expect(String((await reply)[0])).toBe("echo hello");
      socket.close();
    }
    for (const seen of handshakes) {
      expect(seen.headers.authorization).toBe("Bearer sk-upstream");
      expect(JSON.stringify(seen.headers)).not.toContain("prs_");
    }
    expect(() => session.realtime({ model: "" })).toThrow(TypeError);
  });
});

/**
 * The OpenAI SDK's realtime client always dials wss://, so it reaches the broker through a TLS
 * front (as behind an ingress), with a certificate made for the test and trusted by that client only.
 */
const tlsFront = (target: string) => {
  const dir = mkdtempSync(join(tmpdir(), "prs-tls-"));
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-keyout",
      join(dir, "key.pem"),
      "-out",
      join(dir, "cert.pem"),
    ],
    { stdio: "ignore" },
  );
  const key = readFileSync(join(dir, "key.pem"));
  const cert = readFileSync(join(dir, "cert.pem"));
  rmSync(dir, { recursive: true, force: true });
  const { hostname, port } = new URL(target);
  const server = createTlsServer({ key, cert }, (clear) => {
    const broker = connectTcp(Number(port), hostname);
    clear.pipe(broker).pipe(clear);
    for (const side of [clear, broker]) side.on("error", () => (side === clear ? broker : clear).destroy());
  });
  return { server, cert };
};

describe("the OpenAI SDK's own realtime client", () => {
  it("talks to the realtime upstream through the broker with the session's token, never sending it on", async () => {
    const { server, cert } = tlsFront(dev.url);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const front = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const session = await connect({ broker: dev.url, credential: dev.issuerKey, scopes: ["llm:realtime"] });
      sessions.push(session);
      const client = new OpenAI({
        ...session.openai({ upstream: "realtime" }),
        baseURL: `${front}/proxy/realtime/v1`,
      });
      const seen = handshakes.length;
      const rt = await OpenAIRealtimeWS.create(client, { model: "gpt-realtime", options: { ca: cert } });
      await once(rt.socket, "open");
      const events: { type: string; of?: unknown }[] = [];
      rt.on("event", (event) => events.push(event as { type: string; of?: unknown }));
      const update = {
        type: "session.update",
        session: { type: "realtime", instructions: "be brief" },
      } as const;
      rt.send(update);
      await expect.poll(() => events.length).toBe(1);
      expect(events[0]).toEqual({ type: "echo.done", of: update });
      const upstream = handshakes[seen]!;
      expect(upstream.headers.authorization).toBe("Bearer sk-upstream");
      expect(upstream.url).toBe("/v1/realtime?model=gpt-realtime");
      expect(JSON.stringify(upstream.headers)).not.toContain("prs_");
      // A model the scope does not allow is refused before any upstream handshake.
      const refused = await OpenAIRealtimeWS.create(client, { model: "gpt-4o", options: { ca: cert } });
      const [request, response] = (await once(refused.socket, "unexpected-response")) as [
        { destroy(): void },
        IncomingMessage,
      ];
      expect(response.statusCode).toBe(403);
      request.destroy();
      expect(handshakes.length).toBe(seen + 1);
      rt.close();
    } finally {
      server.close();
    }
  });
});
