/**
 * The input contract (SPEC §6, issue 9) on the compiled binary, embedded and on real backends,
 * driven by the OpenAPI document the binary serves (every operation, discovered at run time):
 *   - the document, read before any other request, closes every object of every body;
 *   - prototype-like values (`{"toString":false}` …) in every string position of every body
 *     get a 4xx in the error shape, never a 5xx;
 *   - unknown body fields (top level and nested) and unknown query parameters on every
 *     operation → 400 unknown_parameter naming each one;
 *   - errors name the rule: enum values, integer ranges; a missing field is listed once;
 *   - webhook event types come from the real list; duplicate JSON keys → 400; a charset other
 *     than UTF-8 → 415; an id of the wrong shape on any route → 404; metadata is bounded.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestDatabase, describeReal, dropNatsNamespace, dropRedisNamespace, REAL_URLS, uniqueName } from "./support/backends";
import { startChild, type ChildProcess } from "./support/binary";
import { TEST_JWT_SECRET } from "./support/harness";
import { operationsOf, pathParamNames, type Operation } from "./support/fuzz/openapi";
import type { JsonSchema } from "./support/fuzz/schema-arbitrary";

/** The values that crashed Elysia's error formatter, and their relatives. */
const PROTOTYPE_LIKE: string[] = ['{"toString":false}', '[{"toString":false}]', '{"valueOf":1}', '{"__proto__":{}}', '{"constructor":{}}', '{"hasOwnProperty":0}', '{"toJSON":1}'];

interface Target {
  child: ChildProcess;
  token: string;
  doc: any;
  ops: Operation[];
}

interface Reply {
  status: number;
  body: any;
  text: string;
}

async function send(t: Target, method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(t.child.url + path, {
    method,
    headers: { authorization: `Bearer ${t.token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}), ...headers },
    body,
  });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed, text };
}

/** A path parameter value of the right shape (an id that exists nowhere, or a plain name). */
function plausibleValue(schema: JsonSchema | undefined): string {
  const prefix = /^\^([a-z]+)_/.exec(schema?.pattern ?? "")?.[1];
  return prefix ? `${prefix}_${"0".repeat(26)}` : "persona";
}

function fillPath(op: Operation, values: Record<string, string> = {}): string {
  let path = op.path;
  for (const name of pathParamNames(op.path)) {
    const schema = op.params.find((p) => p.in === "path" && p.name === name)?.schema;
    path = path.replace(`{${name}}`, encodeURIComponent(values[name] ?? plausibleValue(schema)));
  }
  return path;
}

/** Paths (as key lists, array items as 0) to every string in a body schema. */
function stringPositions(schema: JsonSchema | undefined, at: (string | number)[] = [], out: (string | number)[][] = [], depth = 0): (string | number)[][] {
  if (!schema || depth > 6) return out;
  if (schema.type === "string") out.push(at);
  for (const [key, child] of Object.entries<JsonSchema>(schema.properties ?? {})) stringPositions(child, [...at, key], out, depth + 1);
  if (schema.type === "array" && schema.items) stringPositions(schema.items, [...at, 0], out, depth + 1);
  for (const branch of [...(schema.anyOf ?? []), ...(schema.oneOf ?? [])]) stringPositions(branch, at, out, depth + 1);
  return out;
}

/** A JSON text with `raw` (verbatim JSON) at `path`. */
function jsonWith(path: (string | number)[], raw: string): string {
  if (!path.length) return raw;
  const [head, ...rest] = path;
  const inner = jsonWith(rest, raw);
  return typeof head === "number" ? `[${inner}]` : `{${JSON.stringify(head)}:${inner}}`;
}

/** Every object with properties inside a schema that is not closed. */
function openObjects(schema: any, at = "(body)", out: string[] = []): string[] {
  if (!schema || typeof schema !== "object") return out;
  if (schema.type === "object" && schema.properties && !schema.patternProperties && schema.additionalProperties !== false) out.push(at);
  for (const [k, v] of Object.entries<any>(schema.properties ?? {})) openObjects(v, `${at}.${k}`, out);
  if (schema.items) openObjects(schema.items, `${at}[]`, out);
  for (const b of [...(schema.anyOf ?? []), ...(schema.allOf ?? []), ...(schema.oneOf ?? [])]) openObjects(b, at, out);
  return out;
}

const isApi = (op: Operation) => op.path.startsWith("/v1/");
const expectErrorShape = (r: Reply) => {
  expect(r.body?.error?.code).toMatch(/^[a-z][a-z0-9_]*$/);
  expect(r.body?.error?.message).toBeString();
  expect(r.body?.error?.request_id).toBeString();
};

function contractSuite(start: () => Promise<{ child: ChildProcess; cleanup(): Promise<void> }>) {
  const t = {} as Target;
  let cleanup: () => Promise<void> = async () => {};

  beforeAll(async () => {
    const started = await start();
    t.child = started.child;
    cleanup = started.cleanup;
    // The document first: it must say additionalProperties:false before any route has run.
    t.doc = await fetch(`${t.child.url}/swagger/json`).then((r) => r.json());
    t.ops = operationsOf(t.doc);
    const signup = await fetch(`${t.child.url}/v1/auth/signup`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: `${uniqueName("c")}@example.com`, password: "correct horse battery" }),
    }).then((r) => r.json() as Promise<any>);
    t.token = signup.access_token;
  }, 120_000);

  afterAll(async () => {
    await t.child?.stop("SIGKILL");
    await cleanup();
  });

  test("the OpenAPI document, read first, closes every object of every body; metadata is bounded", () => {
    const withBody = t.ops.filter((o) => o.body);
    expect(withBody.length).toBeGreaterThan(15);
    const open = withBody.flatMap((o) => openObjects(o.body).map((where) => `${o.key} ${where}`));
    expect(open).toEqual([]);
    const metadata = t.ops.find((o) => o.key === "POST /v1/agents")!.body!.properties.metadata;
    expect(metadata.maxProperties).toBe(50);
    expect(metadata["x-max-bytes"]).toBe(16384);
  });

  test("prototype-like values in every string position of every body: 4xx in the error shape, never a 5xx", async () => {
    const failures: string[] = [];
    let positions = 0;
    const routes = new Set<string>();
    for (const op of t.ops.filter((o) => o.body && isApi(o))) {
      for (const at of stringPositions(op.body)) {
        positions++;
        routes.add(op.key);
        for (const raw of PROTOTYPE_LIKE) {
          const r = await send(t, op.method, fillPath(op), jsonWith(at, raw));
          if (r.status >= 500 || r.status < 400 || !r.body?.error?.code) failures.push(`${op.key} ${at.join(".")}=${raw} → ${r.status} ${r.text.slice(0, 160)}`);
        }
      }
    }
    console.log(`input contract: ${positions} string positions on ${routes.size} routes × ${PROTOTYPE_LIKE.length} values`);
    expect(positions).toBeGreaterThanOrEqual(41);
    expect(routes.size).toBeGreaterThanOrEqual(17);
    expect(failures).toEqual([]);
  }, 120_000);

  test("an unknown field in every body → 400 unknown_parameter naming it", async () => {
    const failures: string[] = [];
    for (const op of t.ops.filter((o) => o.body && isApi(o))) {
      const r = await send(t, op.method, fillPath(op), JSON.stringify({ zz_unknown: 1 }));
      const named = r.body?.error?.details?.unknown?.some((u: any) => u.path === "zz_unknown");
      if (r.status !== 400 || r.body?.error?.code !== "unknown_parameter" || !named) failures.push(`${op.key} → ${r.status} ${r.text.slice(0, 200)}`);
    }
    expect(failures).toEqual([]);
  }, 60_000);

  test("an unknown query parameter on every operation → 400 unknown_parameter naming it", async () => {
    const failures: string[] = [];
    for (const op of t.ops.filter(isApi)) {
      const body = op.body ? "{}" : undefined;
      const r = await send(t, op.method, `${fillPath(op)}?zz_unknown=1`, body);
      const named = r.body?.error?.details?.unknown?.some((u: any) => u.name === "zz_unknown");
      if (r.status !== 400 || r.body?.error?.code !== "unknown_parameter" || !named) failures.push(`${op.key} → ${r.status} ${r.text.slice(0, 200)}`);
    }
    expect(failures).toEqual([]);
  }, 60_000);

  test("the misspellings of issue 9 are refused by name, also inside nested objects", async () => {
    const agent = await send(t, "POST", "/v1/agents", JSON.stringify({ name: "a", model: "m", max_step: 3 }));
    expect(agent.status).toBe(400);
    expect(agent.body.error.code).toBe("unknown_parameter");
    expect(agent.body.error.message).toContain("max_step");
    const nested = await send(t, "POST", "/v1/agents", JSON.stringify({ name: "a", model: "m", memory_blocks: [{ label: "persona", value: "v", limt: 5 }] }));
    expect(nested.status).toBe(400);
    expect(nested.body.error.details.unknown).toEqual([{ name: "limt", path: "memory_blocks.0.limt" }]);
    const webhook = await send(t, "POST", "/v1/webhooks", JSON.stringify({ url: "https://example.com/hook", event_type: ["run.completed"] }));
    expect(webhook.status).toBe(400);
    expect(webhook.body.error.details.unknown).toEqual([{ name: "event_type", path: "event_type" }]);
    const thread = (await send(t, "POST", "/v1/threads", "{}")).body;
    // instructions, model and temperature are run options now (issue 12); their misspellings are not.
    const run = await send(t, "POST", `/v1/threads/${thread.id}/runs`, JSON.stringify({ agent_id: `agt_${"0".repeat(26)}`, instruction: "x", models: "m", temprature: 0.2 }));
    expect(run.status).toBe(400);
    expect(run.body.error.details.unknown.map((u: any) => u.path).sort()).toEqual(["instruction", "models", "temprature"]);
    for (const q of ["status=completed", "before=x"]) {
      const list = await send(t, "GET", `/v1/threads/${thread.id}/runs?${q}`);
      expect(list.status).toBe(400);
      expect(list.body.error.code).toBe("unknown_parameter");
    }
    // A route that takes no body: whatever is sent is unknown.
    const cancel = await send(t, "POST", `/v1/runs/run_${"0".repeat(26)}/cancel`, JSON.stringify({ reason: "x" }));
    expect(cancel.status).toBe(400);
    expect(cancel.body.error.details.unknown).toEqual([{ name: "reason", path: "reason" }]);
    // The right names still work.
    const ok = await send(t, "POST", "/v1/agents", JSON.stringify({ name: "a", model: "m", max_steps: 3, memory_blocks: [{ label: "persona", value: "v", limit: 50 }] }));
    expect(ok.status).toBe(201);
    expect(ok.body.max_steps).toBe(3);
  });

  test("errors name the rule: enum values, integer ranges; a missing field is listed once", async () => {
    const plan = await send(t, "PUT", "/v1/billing/plan", JSON.stringify({ plan: "platinum" }));
    expect(plan.status).toBe(400);
    expect(plan.body.error.details.fields).toEqual([expect.objectContaining({ field: "plan", allowed: ["free", "pro", "business", "enterprise"] })]);
    expect(plan.text).not.toContain("UnionEnum");
    const missing = await send(t, "PUT", "/v1/billing/plan", "{}");
    expect(missing.status).toBe(400);
    expect(missing.body.error.details.fields).toHaveLength(1);
    expect(missing.body.error.details.fields[0].message).toContain("required");
    const limit = await send(t, "GET", "/v1/agents?limit=abc");
    expect(limit.status).toBe(400);
    expect(limit.body.error.details).toMatchObject({ in: "query", fields: [{ field: "limit" }] });
    expect(limit.body.error.details.fields[0].message).toContain("an integer from 1 to 100");
    expect(limit.body.error.message).toContain("'limit'");
    const order = await send(t, "GET", "/v1/agents?order=sideways");
    expect(order.body.error.details.fields[0].allowed).toEqual(["asc", "desc"]);
  });

  test("webhook event types are checked against the real list", async () => {
    const bad = await send(t, "POST", "/v1/webhooks", JSON.stringify({ url: "https://example.com/hook", event_types: ["run.complete"] }));
    expect(bad.status).toBe(400);
    const field = bad.body.error.details.fields[0];
    expect(field.field).toBe("event_types.0");
    expect(field.allowed).toContain("run.completed");
    expect(field.allowed).toContain("run.*");
    const good = await send(t, "POST", "/v1/webhooks", JSON.stringify({ url: "https://example.com/hook", event_types: ["run.completed", "billing.*"] }));
    expect(good.status).toBe(201);
  });

  test("duplicate JSON keys → 400 duplicate_key; a charset other than UTF-8 → 415", async () => {
    const dup = await send(t, "PUT", "/v1/billing/plan", '{"plan":"free","plan":"enterprise"}');
    expect(dup.status).toBe(400);
    expect(dup.body.error.code).toBe("duplicate_key");
    const nestedDup = await send(t, "POST", "/v1/agents", '{"name":"a","model":"m","metadata":{"k":"https://x","k":2}}');
    expect(nestedDup.status).toBe(400);
    expect(nestedDup.body.error.code).toBe("duplicate_key");
    // The same key in two different objects is fine, as are colons inside strings.
    const fine = await send(t, "POST", "/v1/agents", '{"name":"a:b","model":"m","metadata":{"name":"https://x:1","model":{"name":1}}}');
    expect(fine.status).toBe(201);
    for (const charset of ["utf-16", "UTF-16LE", "iso-8859-1", '"utf-32"']) {
      const r = await send(t, "PUT", "/v1/billing/plan", '{"plan":"free"}', { "content-type": `application/json; charset=${charset}` });
      expect(r.status).toBe(415);
      expectErrorShape(r);
    }
    const utf8 = await send(t, "PUT", "/v1/billing/plan", '{"plan":"free"}', { "content-type": "application/json; charset=UTF-8" });
    expect(utf8.status).toBe(200);
  });

  test("an id of the wrong shape or type on any route → 404 not_found", async () => {
    const failures: string[] = [];
    for (const op of t.ops.filter((o) => isApi(o) && pathParamNames(o.path).length)) {
      const last = pathParamNames(op.path).at(-1)!;
      const schema = op.params.find((p) => p.in === "path" && p.name === last)?.schema;
      if (!/^\^[a-z]+_/.test(schema?.pattern ?? "") && schema?.maxLength === undefined) continue; // not an id (a block label)
      const otherType = /^\^thr_/.test(schema?.pattern ?? "") ? "agt" : "thr";
      for (const wrong of ["xyz", `${otherType}_${"0".repeat(26)}`, "x".repeat(65), "agt_lowercase0000000000000000000"]) {
        const r = await send(t, op.method, fillPath(op, { [last]: wrong }), op.body ? "{}" : undefined);
        if (r.status !== 404 || r.body?.error?.code !== "not_found") failures.push(`${op.method} ${fillPath(op, { [last]: wrong })} → ${r.status} ${r.text.slice(0, 160)}`);
      }
    }
    expect(failures).toEqual([]);
  }, 60_000);

  test("a known path with another method → 405 with Allow listing the documented methods; an unknown path → 404", async () => {
    // Every documented path, sent a method no route answers there: 405, and Allow lists its methods
    // (a superset where a parameter route also matches, as /v1/tools/:id does /v1/tools/builtin).
    const byPath = new Map<string, Set<string>>();
    for (const op of t.ops.filter(isApi)) byPath.set(op.path, (byPath.get(op.path) ?? new Set()).add(op.method.toUpperCase()));
    const failures: string[] = [];
    for (const [path, methods] of byPath) {
      const wrong = ["PUT", "PATCH", "DELETE", "POST"].find((m) => !methods.has(m) && !t.ops.some((o) => o.method.toUpperCase() === m && o.path.includes("{") && path.startsWith(o.path.slice(0, o.path.indexOf("{")))))!;
      if (!wrong) continue;
      const op = t.ops.find((o) => o.path === path)!;
      const res = await fetch(t.child.url + fillPath(op, {}), { method: wrong, headers: { authorization: `Bearer ${t.token}` } });
      const allow = new Set((res.headers.get("allow") ?? "").split(", ").filter((m) => m !== "HEAD"));
      const body = (await res.json()) as { error?: { code?: string } };
      if (res.status !== 405 || body.error?.code !== "method_not_allowed" || [...methods].some((m) => !allow.has(m)) || allow.has(wrong)) {
        failures.push(`${wrong} ${path} → ${res.status} allow=${res.headers.get("allow")}`);
      }
    }
    expect(failures).toEqual([]);
    const unknown = await send(t, "GET", "/v1/no-such-thing");
    expect([unknown.status, unknown.body?.error?.code]).toEqual([404, "route_not_found"]);
  }, 60_000);

  test("metadata stays free but bounded in keys, key length and size", async () => {
    const post = (metadata: unknown) => send(t, "POST", "/v1/threads", JSON.stringify({ metadata }));
    expect((await post({ nested: { any: ["shape", 1, null] }, "a-key": true })).status).toBe(201);
    const tooMany = await post(Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, i])));
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error.details.fields[0].field).toBe("metadata");
    expect((await post({ ["k".repeat(65)]: 1 })).status).toBe(400);
    const big = await post({ blob: "x".repeat(17 * 1024) });
    expect(big.status).toBe(400);
    expect(big.body.error.details.fields[0].message).toContain("16384 bytes");
  });
}

describe("input contract: compiled binary on the embedded default", () => {
  contractSuite(async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "agentos-contract-"));
    const child = await startChild([`--data-dir=${dataDir}`], { env: { LOG_LEVEL: "error" } });
    return { child, cleanup: async () => rmSync(dataDir, { recursive: true, force: true }) };
  });
});

await describeReal("input contract: compiled binary on PostgreSQL, Redis and NATS", () => {
  contractSuite(async () => {
    const database = await createTestDatabase();
    const namespace = uniqueName("t");
    const child = await startChild([`--database-url=${database.url}`, `--redis-url=${REAL_URLS.redis}`, `--nats-url=${REAL_URLS.nats}`, `--namespace=${namespace}`], {
      env: { JWT_SECRET: TEST_JWT_SECRET, LOG_LEVEL: "error" },
    });
    return {
      child,
      cleanup: async () => {
        await database.drop();
        await dropNatsNamespace(namespace);
        await dropRedisNamespace(namespace);
      },
    };
  });
});
