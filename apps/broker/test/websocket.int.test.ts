import { once } from "node:events";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { withRealtime } from "@perishable/test-support";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { SECRETS, startTestBroker, type TestBroker } from "./support/broker.js";

/** A realtime-like upstream: echoes every message, records every handshake it sees. */
const startUpstream = async () => {
  const handshakes: IncomingMessage[] = [];
  const http: Server = createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({
    server: http,
    handleProtocols: (p) => (p.has("realtime") ? "realtime" : false),
  });
  wss.on("headers", (_headers, req) => handshakes.push(req));
  wss.on("connection", (socket) => {
    socket.send(JSON.stringify({ type: "session.created", event_id: "evt_0", session: { id: "sess_1" } }));
    socket.on("message", (data, isBinary) => socket.send(data, { binary: isBinary }));
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  return {
    url,
    handshakes,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise((resolve) => http.close(resolve));
    },
  };
};

let upstream: Awaited<ReturnType<typeof startUpstream>>;
let a: TestBroker;
let b: TestBroker;
beforeAll(async () => {
  upstream = await startUpstream();
  a = await startTestBroker({
    redisUrl: inject("redisUrl"),
    configure: (doc) => withRealtime(doc, upstream.url, SECRETS.openai),
  });
  b = await startTestBroker({ peerOf: a });
});
afterAll(async () => {
  await b?.[Symbol.asyncDispose]();
  await a?.[Symbol.asyncDispose]();
  await upstream?.close();
});

const wsUrl = (t: TestBroker, path: string) => `${t.url.replace(/^http/, "ws")}${path}`;
const opened = async (socket: WebSocket) => {
  await once(socket, "open");
  return socket;
};

describe("WebSockets through the broker", () => {
  it("relays 50 messages each way in order, with the real key upstream and the token nowhere", async () => {
    const { token } = await a.issue({ scopes: ["llm:realtime"] });
    const socket = new WebSocket(wsUrl(a, "/proxy/realtime/v1/realtime?model=gpt-realtime"), ["realtime"], {
      headers: { authorization: `Bearer ${token}` },
    });
    // Listening before the handshake ends: the upstream's first message may come with it.
    const received: string[] = [];
    socket.on("message", (data) => received.push(String(data)));
    await opened(socket);
    expect(socket.protocol).toBe("realtime");
    for (let i = 0; i < 50; i++) socket.send(`message ${i}`);
    await expect.poll(() => received.length).toBe(51);
    expect(received.slice(1)).toEqual(Array.from({ length: 50 }, (_, i) => `message ${i}`));
    socket.close(4001, "done here");
    const seen = upstream.handshakes.at(-1)!;
    expect(seen.headers.authorization).toBe(`Bearer ${SECRETS.openai}`);
    expect(JSON.stringify(seen.headers) + seen.url).not.toContain("prs_");
    await a.broker.server.audit.flush();
    await expect
      .poll(async () => {
        const page = (await (await a.admin("/v1/audit?type=used&limit=1000")).json()) as {
          events: { websocket?: { messagesIn: number; messagesOut: number; closeCode: number } }[];
        };
        return page.events.find((e) => e.websocket?.messagesIn === 50)?.websocket;
      })
      .toMatchObject({ messagesIn: 50, messagesOut: 51, closeCode: 4001 });
  });

  it("takes a browser's token from the insecure-api-key subprotocol and strips it upstream", async () => {
    const { token } = await a.issue({ scopes: ["llm:realtime"] });
    const socket = await opened(
      new WebSocket(wsUrl(a, "/proxy/realtime/v1/realtime?model=gpt-realtime-mini"), [
        "realtime",
        `openai-insecure-api-key.${token}`,
      ]),
    );
    const seen = upstream.handshakes.at(-1)!;
    expect(seen.headers["sec-websocket-protocol"]).toBe("realtime");
    expect(seen.headers.authorization).toBe(`Bearer ${SECRETS.openai}`);
    socket.close();
  });

  it("refuses an upgrade with the HTTP envelope and never shakes hands upstream", async () => {
    const { token } = await a.issue({ scopes: ["llm:realtime", "models:read"] });
    const before = upstream.handshakes.length;
    const refusal = async (path: string, headers: Record<string, string>) => {
      const socket = new WebSocket(wsUrl(a, path), { headers });
      socket.on("error", () => {}); // the refused handshake: what is asserted is the answer
      const [, response] = (await once(socket, "unexpected-response")) as [unknown, IncomingMessage];
      let body = "";
      for await (const chunk of response) body += chunk;
      socket.terminate();
      return {
        status: response.statusCode,
        body: JSON.parse(body) as { error: { code: string; message: string } },
      };
    };
    expect(
      await refusal("/proxy/realtime/v1/realtime?model=gpt-4o", { authorization: `Bearer ${token}` }),
    ).toMatchObject({
      status: 403,
      body: {
        error: {
          code: "constraint_denied",
          message: expect.stringContaining('model "gpt-4o" is not allowed'),
        },
      },
    });
    expect(await refusal("/proxy/openai/v1/models", { authorization: `Bearer ${token}` })).toMatchObject({
      status: 403,
      body: { error: { code: "scope_denied" } },
    });
    expect(await refusal("/proxy/realtime/v1/realtime?model=gpt-realtime", {})).toMatchObject({
      status: 401,
    });
    expect(upstream.handshakes.length).toBe(before);
  });

  it("closes a socket on node A with 1008 within a second of node B revoking its grant", async () => {
    const { token, grantId } = await a.issue({ scopes: ["llm:realtime"] });
    const socket = await opened(
      new WebSocket(wsUrl(a, "/proxy/realtime/v1/realtime?model=gpt-realtime"), {
        headers: { authorization: `Bearer ${token}` },
      }),
    );
    const closed = once(socket, "close") as Promise<[number, Buffer]>;
    await b.admin(`/v1/grants/${grantId}`, { method: "DELETE" });
    const answered = performance.now();
    const [code, reason] = await closed;
    expect(performance.now() - answered).toBeLessThan(1_000);
    expect([code, String(reason)]).toEqual([1008, "token_revoked"]);
  });
});
