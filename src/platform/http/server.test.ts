/** The listener in front of Elysia: chunked bodies under the cap, short Host headers routed. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { startHttpServer, type HttpServer } from "./server";

describe("http server", () => {
  let server: HttpServer;
  beforeAll(() => {
    const app = new Elysia().post("/echo", ({ body }) => ({ size: JSON.stringify(body).length })).get("/v1/ping", () => "pong");
    server = startHttpServer({ fetch: app.fetch, port: 0, hostname: "127.0.0.1", maxBodyBytes: 1024, websockets: [] });
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
});
