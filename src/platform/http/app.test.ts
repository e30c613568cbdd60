/** The HTTP platform through `app.handle(new Request(...))`: every failure in SPEC's error shape. */
import { describe, expect, test } from "bun:test";
import { Elysia, t } from "elysia";
import { AppError } from "../errors";
import { silentLogger } from "../logging";
import { createMetrics } from "../metrics";
import { httpPlatform } from "./app";
import { createInputContract } from "./contract";
import { Enum, IdParam, Metadata } from "./models";

const Thing = t.Object({
  name: t.String({ minLength: 1 }),
  count: t.Integer({ minimum: 0 }),
  kind: t.Optional(Enum(["a", "b"])),
  parts: t.Optional(t.Array(t.Object({ label: t.String() }))),
  metadata: t.Optional(Metadata),
});

/** The platform with the routes the tests need; `contract: false` leaves validation to Elysia alone. */
function makeApp(ready = true, opts: { contract?: boolean } = {}) {
  const metrics = createMetrics();
  const contract = opts.contract === false ? undefined : createInputContract();
  const app = new Elysia({ normalize: "typebox" })
    .use(httpPlatform({ log: silentLogger, metrics, maxBodyBytes: 1024, contract, readiness: async () => ({ ready, checks: { database: ready ? "ok" : "connection refused" } }) }))
    .post("/things", ({ body }) => ({ ok: true, body }), { body: Thing })
    .post("/things/:id", ({ params }) => ({ id: params.id }), { params: IdParam("agt"), body: t.Optional(t.Object({ note: t.Optional(t.String()) })) })
    .get("/things/:id/labels/:label", ({ params }) => params, { params: t.Object({ id: IdParam("agt").properties.id, label: t.String({ pattern: "^[a-z]+$" }) }) })
    .get("/list", ({ query }) => query, { query: t.Object({ limit: t.Optional(t.Integer({ minimum: 1, maximum: 100 })) }) })
    .get("/broken-reply", () => ({ wrong: true }) as never, { response: { 200: t.Object({ name: t.String() }) } })
    .get("/boom", () => {
      throw new Error("secret internals");
    })
    .get("/teapot", () => {
      throw new AppError(409, "already_there", "It exists.", { id: "x" });
    });
  contract?.adopt(app.routes);
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

const AGT = `agt_${"0".repeat(26)}`;

describe("input contract", () => {
  test.each([true, false])("prototype-like values where a string belongs → 400, never a 500 (contract: %p)", async (contract) => {
    const { app } = makeApp(true, { contract });
    for (const raw of ['{"toString":false}', '[{"toString":false}]', '{"valueOf":1}', '{"__proto__":{}}', '{"constructor":{}}']) {
      const res = await send(app, "/things", json(`{"name":${raw},"count":1}`));
      expect(res.status).toBe(400);
      expectErrorShape(await res.json(), "validation_failed");
    }
  });

  test("unknown fields, nested ones included, → 400 unknown_parameter naming each; metadata stays free", async () => {
    const { app } = makeApp();
    const res = await send(app, "/things", json('{"name":"a","count":1,"cuont":2,"parts":[{"label":"x","lable":"y"}]}'));
    expect(res.status).toBe(400);
    const body: any = await res.json();
    expectErrorShape(body, "unknown_parameter");
    expect(body.error.details).toEqual({ in: "body", unknown: [{ name: "cuont", path: "cuont" }, { name: "lable", path: "parts.0.lable" }] });
    expect(body.error.message).toContain("'cuont'");
    const free = await send(app, "/things", json('{"name":"a","count":1,"metadata":{"anything":{"deep":[1]}}}'));
    expect(free.status).toBe(200);
  });

  test("unknown query parameters → 400 unknown_parameter; a bad limit names the parameter and its rule", async () => {
    const { app } = makeApp();
    const unknown: any = await (await send(app, "/list?limit=5&before=x&status=y")).json();
    expect(unknown.error.code).toBe("unknown_parameter");
    expect(unknown.error.details.unknown.map((u: any) => u.name)).toEqual(["before", "status"]);
    const bad = await send(app, "/list?limit=abc");
    expect(bad.status).toBe(400);
    const body: any = await bad.json();
    expect(body.error.details).toEqual({ in: "query", fields: [{ field: "limit", message: 'must be an integer from 1 to 100 (got "abc")' }] });
    expect((await send(app, "/list?limit=5")).status).toBe(200);
  });

  test("a number in a JSON body is a JSON number: a numeric string is refused (a query string may carry one)", async () => {
    const { app } = makeApp();
    for (const count of ['"5"', '"-0"', '"0"']) {
      const res = await send(app, "/things", { method: "POST", headers: { "content-type": "application/json" }, body: `{"name":"x","count":${count}}` });
      expect({ count, status: res.status }).toEqual({ count, status: 400 });
      expect(((await res.json()) as any).error.details.fields[0]).toMatchObject({ field: "count", message: expect.stringContaining("integer") });
    }
    const ok = await send(app, "/things", { method: "POST", headers: { "content-type": "application/json" }, body: `{"name":"x","count":-0}` });
    expect(ok.status).toBe(200);
    expect((await send(app, "/list?limit=5")).status).toBe(200);
  });

  test("enum errors list the allowed values; a missing field is listed once", async () => {
    const { app } = makeApp();
    const bad: any = await (await send(app, "/things", json('{"name":"a","count":1,"kind":"c"}'))).json();
    expect(bad.error.details.fields).toEqual([{ field: "kind", message: 'must be one of: "a", "b" (got "c")', allowed: ["a", "b"] }]);
    const missing: any = await (await send(app, "/things", json('{"count":1}'))).json();
    expect(missing.error.details.fields).toEqual([{ field: "name", message: "is required (a string of at least 1 character)" }]);
  });

  test("a malformed id in the path → 404 before the body is looked at; another path value → 400", async () => {
    const { app } = makeApp();
    for (const id of ["xyz", `thr_${"0".repeat(26)}`, "x".repeat(100)]) {
      const res = await send(app, `/things/${id}`, json('{"unknown":1}'));
      expect(res.status).toBe(404);
      expectErrorShape(await res.json(), "not_found");
      expect((await send(app, `/things/${id}/labels/ok`)).status).toBe(404);
    }
    expect((await send(app, `/things/${AGT}`, json("{}"))).status).toBe(200);
    const label = await send(app, `/things/${AGT}/labels/NOT-OK`);
    expect(label.status).toBe(400);
    expectErrorShape(await label.json(), "validation_failed");
  });

  test("duplicate keys → 400 duplicate_key, also escaped, nested and on optional bodies", async () => {
    const { app } = makeApp();
    for (const [path, text] of [
      ["/things", '{"name":"a","count":1,"name":"b"}'],
      ["/things", '{"name":"a","count":1,"n\\u0061me":"b"}'],
      ["/things", '{"name":"x:y","count":1,"metadata":{"k":"http://a","k":1}}'],
      [`/things/${AGT}`, '{"note":"a","note":"b"}'],
    ]) {
      const res = await send(app, path, json(text));
      expect(res.status).toBe(400);
      expectErrorShape(await res.json(), "duplicate_key");
    }
    const sameKeyElsewhere = await send(app, "/things", json('{"name":"a:\\"name\\":","count":1,"metadata":{"name":{"name":1},"count":[{"name":2}]}}'));
    expect(sameKeyElsewhere.status).toBe(200);
  });

  test("a charset other than UTF-8 → 415", async () => {
    const { app } = makeApp();
    for (const charset of ["utf-16", "ISO-8859-1", '"utf-16le"', ""]) {
      const res = await send(app, "/things", { method: "POST", headers: { "content-type": `application/json; charset=${charset}` }, body: '{"name":"a","count":1}' });
      expect(res.status).toBe(415);
      expectErrorShape(await res.json(), "unsupported_media_type");
    }
    for (const ok of ["application/json; charset=utf-8", 'application/json;charset="UTF-8"', "application/json"]) {
      expect((await send(app, "/things", { method: "POST", headers: { "content-type": ok }, body: '{"name":"a","count":1}' })).status).toBe(200);
    }
  });

  test("a reply that breaks its own schema is our bug: 500, not a 4xx", async () => {
    const { app } = makeApp();
    const res = await send(app, "/broken-reply");
    expect(res.status).toBe(500);
    expectErrorShape(await res.json(), "internal_error");
  });
});
