/** The listener in front of Elysia: chunked bodies under the cap, slow bodies cut off, short Host headers routed. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { startHttpServer, type HttpServer } from "./server";

describe("http server", () => {
  let server: HttpServer;
  beforeAll(() => {
    const app = new Elysia().post("/echo", ({ body }) => ({ size: JSON.stringify(body).length })).get("/v1/ping", () => "pong");
    server = startHttpServer({ fetch: app.fetch, port: 0, hostname: "127.0.0.1", maxBodyBytes: 1024, bodyTimeoutMs: 300, websockets: [] });
  });
  afterAll(() => server.stop(100));

  const chunked = (parts: string[]) =>
    new ReadableStream({
      start(c) {
        for (const p of parts) c.enqueue(new TextEncoder().encode(p));
        c.close();
      },
    });

  test("a chunked body within the cap arrives whole; past it, 413 in the error shape", async () => {
    const url = `http://127.0.0.1:${server.port}/echo`;
    const small = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: chunked(['{"a":', '"b"}']) });
    expect(small.status).toBe(200);
    expect(await small.json()).toEqual({ size: 9 });
    const big = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: chunked([`{"a":"${"x".repeat(800)}`, `${"y".repeat(800)}"}`]) });
    expect(big.status).toBe(413);
    expect(((await big.json()) as any).error.code).toBe("payload_too_large");
  });

  test("a Host shorter than 4 characters still routes", async () => {
    const socket = await Bun.connect({ hostname: "127.0.0.1", port: server.port, socket: { data(_s, d) { reply += d.toString(); }, error() {} } });
    let reply = "";
    socket.write("GET /v1/ping HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n");
    for (let i = 0; i < 100 && !reply.includes("pong"); i++) await Bun.sleep(10);
    socket.end();
    expect(reply).toStartWith("HTTP/1.1 200");
    expect(reply).toContain("pong");
  });

  /** A raw connection: what it received, and whether the server closed it. */
  async function rawClient() {
    const seen = { reply: "", closed: false };
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port: server.port,
      socket: {
        data(_s, d) {
          seen.reply += d.toString();
        },
        close() {
          seen.closed = true;
        },
        error() {},
      },
    });
    return { socket, seen };
  }

  test("a body that trickles in (1 byte at a time) is answered 408 in the error shape and the connection closed", async () => {
    const clients = await Promise.all(Array.from({ length: 5 }, rawClient));
    for (const { socket } of clients) socket.write("POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{");
    // Keep sending a byte every 100 ms: within the idle timeout, never completing the body.
    const started = Date.now();
    while (Date.now() - started < 1500 && !clients.every((c) => c.seen.closed)) {
      for (const { socket, seen } of clients) if (!seen.closed) socket.write(" ");
      await Bun.sleep(100);
    }
    for (const { seen, socket } of clients) {
      expect(seen.closed).toBe(true);
      expect(seen.reply).toStartWith("HTTP/1.1 408");
      const body = JSON.parse(seen.reply.slice(seen.reply.indexOf("\r\n\r\n") + 4));
      expect(body.error.code).toBe("request_timeout");
      expect(body.error.request_id).toBeString();
      socket.end();
    }
    // A body that arrives in time still works, also over a chunked encoding.
    const ok = await fetch(`http://127.0.0.1:${server.port}/echo`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"a":1}' });
    expect(await ok.json()).toEqual({ size: 7 });
  });

  test("a GET is not held to the body deadline (no body is read)", async () => {
    const { socket, seen } = await rawClient();
    socket.write("GET /v1/ping HTTP/1.1\r\nHost: localhost\r\n\r\n");
    await Bun.sleep(500); // past bodyTimeoutMs: the keep-alive connection stays open
    expect(seen.reply).toContain("pong");
    expect(seen.closed).toBe(false);
    socket.end();
  });
});
