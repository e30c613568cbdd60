/** The HTTP platform through `app.handle(new Request(...))`: every failure in SPEC's error shape. */
import { describe, expect, test } from "bun:test";
import { Elysia, t } from "elysia";
import { AppError } from "../errors";
import { silentLogger } from "../logging";
import { createMetrics } from "../metrics";
import { httpPlatform } from "./app";

function makeApp(ready = true) {
  const metrics = createMetrics();
  const app = new Elysia()
    .use(httpPlatform({ log: silentLogger, metrics, maxBodyBytes: 1024, readiness: async () => ({ ready, checks: { database: ready ? "ok" : "connection refused" } }) }))
    .post("/things", ({ body }) => ({ ok: true, body }), { body: t.Object({ name: t.String({ minLength: 1 }), count: t.Integer({ minimum: 0 }) }) })
    .get("/boom", () => {
      throw new Error("secret internals");
    })
    .get("/teapot", () => {
      throw new AppError(409, "already_there", "It exists.", { id: "x" });
    });
  return { app, metrics };
}

const send = (app: Elysia<any, any, any, any, any, any, any>, path: string, init: RequestInit = {}) => app.handle(new Request(`http://local${path}`, init));
const json = (body: string) => ({ method: "POST", headers: { "content-type": "application/json" }, body });

function expectErrorShape(body: any, code: string) {
  expect(body.error.code).toBe(code);
  expect(body.error.message).toBeString();
  expect(body.error.request_id).toBeString();
}

describe("http platform", () => {
  test("valid body passes and every response carries X-Request-Id", async () => {
    const { app } = makeApp();
    const res = await send(app, "/things", json('{"name":"a","count":1}'));
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toMatch(/^req_/);
  });

  test("an incoming X-Request-Id is kept when it is sane", async () => {
    const { app } = makeApp();
    const res = await send(app, "/healthz", { headers: { "x-request-id": "abc-123" } });
    expect(res.headers.get("x-request-id")).toBe("abc-123");
    const evil = await send(app, "/healthz", { headers: { "x-request-id": "a b\"<script>" } });
    expect(evil.headers.get("x-request-id")).toMatch(/^req_/);
  });

  test("malformed JSON → 400 invalid_json", async () => {
    const { app } = makeApp();
    const res = await send(app, "/things", json('{"name": '));
    expect(res.status).toBe(400);
    expectErrorShape(await res.json(), "invalid_json");
  });

  test("schema failure → 400 validation_failed naming the fields", async () => {
    const { app } = makeApp();
    const res = await send(app, "/things", json('{"name":"","count":-1}'));
    expect(res.status).toBe(400);
    const body: any = await res.json();
    expectErrorShape(body, "validation_failed");
    const fields = body.error.details.fields.map((f: any) => f.field);
    expect(fields).toContain("name");
    expect(fields).toContain("count");
  });

  test("unknown route → 404 route_not_found", async () => {
    const { app } = makeApp();
    const res = await send(app, "/nope");
    expect(res.status).toBe(404);
    expectErrorShape(await res.json(), "route_not_found");
  });

  test("body over the limit → 413, wrong content type → 415", async () => {
    const { app } = makeApp();
    const big = await send(app, "/things", { method: "POST", headers: { "content-type": "application/json", "content-length": "5000" }, body: "x".repeat(5000) });
    expect(big.status).toBe(413);
    expectErrorShape(await big.json(), "payload_too_large");
    const text = await send(app, "/things", { method: "POST", headers: { "content-type": "text/plain" }, body: "name=a" });
    expect(text.status).toBe(415);
    expectErrorShape(await text.json(), "unsupported_media_type");
  });

  test("an AppError keeps its status, code and details; an unexpected error is a 500 without internals", async () => {
    const { app } = makeApp();
    const conflict = await send(app, "/teapot");
    expect(conflict.status).toBe(409);
    expect(await conflict.json()).toMatchObject({ error: { code: "already_there", details: { id: "x" } } });
    const boom = await send(app, "/boom");
    expect(boom.status).toBe(500);
    const body: any = await boom.json();
    expectErrorShape(body, "internal_error");
    expect(JSON.stringify(body)).not.toContain("secret internals");
  });

  test("/readyz is 503 with the reason while a backend is down", async () => {
    const down = makeApp(false).app;
    const res = await send(down, "/readyz");
    expect(res.status).toBe(503);
    const body: any = await res.json();
    expectErrorShape(body, "not_ready");
    expect(body.error.message).toContain("database: connection refused");
    expect((await send(makeApp(true).app, "/readyz")).status).toBe(200);
  });

  test("/metrics exposes request histograms by route and status, memory and event-loop lag", async () => {
    const { app } = makeApp();
    await send(app, "/things", json('{"name":"a","count":1}'));
    await send(app, "/nope");
    await Bun.sleep(5); // onAfterResponse runs after the response is handed back
    const text = await (await send(app, "/metrics")).text();
    expect(text).toContain('agentos_http_request_duration_seconds_bucket{method="POST",route="/things",status="200",le="0.005"}');
    expect(text).toContain('agentos_http_requests_total{method="GET",route="unmatched",status="404"} 1');
    expect(text).toContain('agentos_process_resident_memory_bytes{kind="rss"}');
    expect(text).toContain("agentos_event_loop_lag_seconds");
  });

  test.each([
    ["a NUL character", '{"name":"a\\u0000b","count":1}', "NUL"],
    ["a NUL in a key", '{"name":"a","count":1,"x\\u0000":1}', "NUL"],
    ["a lone surrogate", '{"name":"\\ud800","count":1}', "surrogate"],
    ["deep nesting", `{"name":"a","count":1,"x":${"[".repeat(100)}${"]".repeat(100)}}`, "nesting"],
    ["an array", "[1,2]", "JSON object"],
    ["a number", "-7", "JSON object"],
    ["a string", '""', "JSON object"],
  ])("a body with %s is refused with 400 invalid_body", async (_what, body, phrase) => {
    const { app } = makeApp();
    const res = await send(app, "/things", json(body));
    expect(res.status).toBe(400);
    const payload: any = await res.json();
    expectErrorShape(payload, "invalid_body");
    expect(payload.error.message).toContain(phrase);
  });

  test("%00 in the URL → 400", async () => {
    const { app } = makeApp();
    const nul = await send(app, "/healthz?after=%00");
    expect(nul.status).toBe(400);
    expectErrorShape(await nul.json(), "invalid_request");
  });

});
