import { once } from "node:events";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { type DevBroker, startDevBroker } from "@perishable/broker";
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
wss.on("connection", (socket) => socket.on("message", (data) => socket.send(`echo ${data}`)));

let dev: DevBroker;
const sessions: Session[] = [];
beforeAll(async () => {
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const upstream = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  dev = await startDevBroker({
    configure: (doc) => {
      doc.upstreams.realtime = {
        base_url: upstream,
        auth: { header: "authorization", value: "Bearer sk-upstream" },
      };
      doc.scopes["llm:realtime"] = {
        upstream: "realtime",
        endpoints: ["/v1/realtime"],
        methods: ["GET"],
        websocket: true,
        models: ["gpt-realtime*"],
      };
      (doc.issuers![0] as { scopes: string[] }).scopes.push("llm:realtime");
    },
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
