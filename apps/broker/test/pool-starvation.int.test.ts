import { connect, type Socket } from "node:net";
import { describe, expect, inject, it } from "vitest";
import { startTestBroker } from "./support/broker.js";

/** A raw POST whose body is sent `first`, then trickled a byte at a time until the socket is closed. */
const trickle = (port: number, token: string, declared: number, first: Buffer) => {
  const socket: Socket = connect(port, "127.0.0.1");
  let answered = "";
  socket.on("data", (d) => (answered += d));
  socket.on("error", () => {});
  socket.on("connect", () => {
    socket.write(
      `POST /proxy/files/v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${declared}\r\n\r\n`,
    );
    socket.write(first);
  });
  const drip = setInterval(() => socket.writable && socket.write("x"), 100);
  return {
    answered: () => answered,
    close: () => {
      clearInterval(drip);
      socket.destroy();
    },
  };
};

describe("one agent trickling request bodies", () => {
  it("cannot hold the upstream's connections: another agent's call on it goes through", async () => {
    await using t = await startTestBroker({
      redisUrl: inject("redisUrl"),
      configure: (doc) => {
        doc.upstreams!.files!.connections = 2;
      },
    });
    const port = Number(new URL(t.url).port);
    const slow = await t.issue({ scopes: ["files:rw"], agent: "slowpoke" });
    const other = await t.issue({ scopes: ["files:rw"], agent: "bystander" });
    // Six times the pool: bodies declared at 100 KB, a few bytes sent, then a byte every 100 ms.
    const tricklers = Array.from({ length: 6 }, () =>
      trickle(port, slow.token, 100_000, Buffer.from("head")),
    );
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      const before = t.mock.requests.length;
      const response = await t.call("/proxy/files/v1/files", other.token, {
        method: "POST",
        body: "a small upload",
        headers: { "content-type": "application/octet-stream" },
      });
      expect(response.status).toBe(200);
      expect(t.mock.requests.slice(before).map((r) => r.body)).toEqual(["a small upload"]);
      // The tricklers were never answered: they still hold their own sockets, nothing else.
      for (const slowOne of tricklers) expect(slowOne.answered()).toBe("");
    } finally {
      for (const slowOne of tricklers) slowOne.close();
    }
  });

  it("gives the connection back when a long streamed body stalls", async () => {
    await using t = await startTestBroker({
      redisUrl: inject("redisUrl"),
      configure: (doc) => {
        doc.upstreams!.files!.connections = 1;
        doc.proxy = { buffer_bytes: 64 * 1024, body_idle_timeout: 1 };
      },
    });
    const port = Number(new URL(t.url).port);
    const slow = await t.issue({ scopes: ["files:rw"], agent: "slowpoke" });
    const other = await t.issue({ scopes: ["files:rw"], agent: "bystander" });
    // Past buffer_bytes, so it streams and takes the only connection; then it sends nothing more.
    const socket = connect(port, "127.0.0.1");
    socket.on("error", () => {});
    await new Promise<void>((resolve) => socket.on("connect", () => resolve()));
    socket.write(
      `POST /proxy/files/v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${slow.token}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n`,
    );
    socket.write(Buffer.alloc(100 * 1024, 0x62));
    const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const response = await t.call("/proxy/files/v1/files", other.token, {
      method: "POST",
      body: "after the stall",
      headers: { "content-type": "application/octet-stream" },
    });
    expect(response.status).toBe(200);
    await closed; // the broker cut the stalled body
    socket.destroy();
  });
});
