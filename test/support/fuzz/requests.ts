/**
 * Request generators per operation: generated (valid bodies/queries and mutations of them,
 * classified by ajv so the expectation is exact) and a fixed hostile set (path segments,
 * Authorization, malformed and oversized bodies, content types, hostile numbers, deep
 * nesting, Idempotency-Key lengths).
 */
import fc from "fast-check";
import {
  CONTENT_TYPES, HOSTILE_NUMBERS, HOSTILE_SEGMENTS, HOSTILE_STRINGS, IDEMPOTENCY_KEYS, PROTOTYPE_KEYS, PROTOTYPE_LIKE_VALUES, Raw, deepValueText, hostileAuthorizations, hostileString,
  malformedBodies, mutateBody, toJsonText, withKey,
} from "./hostile";
import type { Expectation, FuzzRequest } from "./oracle";
import { pathParamNames, type Operation, type Validators } from "./openapi";
import { fillPath, type Resources, type User } from "./resources";
import { validArbitrary, type JsonSchema } from "./schema-arbitrary";
import { findUnstorable } from "../../../src/platform/storable";

/**
 * Dot segments (`..`, `%2e%2e`, `..%2f`) are not used as path parameters: Bun normalises them
 * before the app sees the URL, so `/agents/X/memories/%2e%2e` addresses `/agents/X` — the parent
 * resource, in the caller's own organization, as a WHATWG client would itself (README, known
 * limitations). The "hostile paths" phase still sends them and checks for no 5xx and no leak.
 */
const DOT_SEGMENT = /(\.|%2e)(\.|%2e)/i;

export interface GenContext {
  resources: Resources;
  user: User;
  validators: Validators;
  /** Validators with type coercion: query and path values arrive as strings. */
  coercing: Validators;
  maxBodyBytes: number;
  runs: number;
  seed: number;
}

const FREE_FORM = (s: JsonSchema | undefined) => !!s && (s.patternProperties || (s.type === "object" && !s.properties) || Object.keys(s).length === 0);

function authHeaders(op: Operation, user: User): Record<string, string> {
  return op.authenticated ? { authorization: `Bearer ${user.token}` } : {};
}

/** ajv's verdict on what the server will parse: 4xx when the documented schema rejects it. */
export function expectForBody(op: Operation, validators: Validators, text: string | Uint8Array | undefined): Expectation {
  return bodyVerdict(op, validators, text).expect;
}

/**
 * The expectation for a body and, where the contract fixes it, the error code: a body that
 * is not a storable object → invalid_body; one with a field its (closed) schema does not
 * define → unknown_parameter.
 */
export function bodyVerdict(op: Operation, validators: Validators, text: string | Uint8Array | undefined): { expect: Expectation; code?: string } {
  if (!op.body) return { expect: "any" };
  if (text === undefined || (typeof text === "string" && text === "")) return { expect: op.bodyRequired ? "4xx" : "any" };
  let parsed: unknown;
  try {
    // As the server reads it: UTF-8 decoded (invalid bytes → U+FFFD), a leading BOM dropped.
    parsed = JSON.parse((typeof text === "string" ? text : new TextDecoder().decode(text)).replace(/^\ufeff/, ""));
  } catch {
    return { expect: "4xx" };
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed) || findUnstorable(parsed)) return { expect: "4xx", ...(parsed === null ? {} : { code: "invalid_body" }) };
  if (hasUnknownField(op.body, parsed)) return { expect: "400", code: "unknown_parameter" };
  return { expect: validators.errors(op.body, parsed) ? "4xx" : "any" };
}

/** A field that a closed object schema (additionalProperties: false) does not define, at any depth. */
export function hasUnknownField(schema: JsonSchema | undefined, value: unknown): boolean {
  if (!schema || value === null || typeof value !== "object") return false;
  if (Array.isArray(value)) return schema.type === "array" && !!schema.items && value.some((v) => hasUnknownField(schema.items, v));
  if (schema.type !== "object" || !schema.properties) return false;
  for (const [key, v] of Object.entries(value)) {
    if (!Object.hasOwn(schema.properties, key)) {
      if (schema.additionalProperties === false) return true;
      continue;
    }
    if (hasUnknownField(schema.properties[key], v)) return true;
  }
  return false;
}

/** The error code is expected only where the contract answers (the API, a URL without NUL). */
function exactFor(op: Operation, path: string, verdict: { expect: Expectation; expectCode?: string }) {
  return op.path.startsWith("/v1/") && !path.includes("%00") ? verdict : { expect: worst(verdict.expect) };
}

/** Combines the expectations of path, query and body into the one the reply must meet. */
function combined(bogusPath: boolean, query: { expect: Expectation; code?: string }, body: { expect: Expectation; code?: string }): { expect: Expectation; expectCode?: string } {
  const expect = worst(bogusPath ? "4xx" : "any", query.expect, body.expect);
  // The checks run in this order: path (404), body storable (invalid_body), query names, body fields.
  if (bogusPath) return { expect };
  if (body.code === "invalid_body") return { expect: "400", expectCode: "invalid_body" };
  if (query.code) return { expect: "400", expectCode: query.code };
  if (query.expect === "4xx") return { expect };
  return body.code ? { expect: "400", expectCode: body.code } : { expect };
}

function queryExpect(op: Operation, coercing: Validators, values: Record<string, string>): Expectation {
  const params = op.params.filter((p) => p.in === "query");
  // The API (/v1) refuses query parameters it does not declare; health and docs ignore them.
  if (op.path.startsWith("/v1/") && Object.keys(values).some((name) => !params.some((p) => p.name === name))) return "4xx";
  if (!params.length) return "any";
  const schema = { type: "object", properties: Object.fromEntries(params.map((p) => [p.name, p.schema])), required: params.filter((p) => p.required).map((p) => p.name) };
  return coercing.errors(schema, { ...values }) ? "4xx" : "any";
}

const worst = (...e: Expectation[]): Expectation => (e.some((x) => x === "4xx" || x === "400") ? "4xx" : "any");

interface Target {
  path: string;
  /** Path parameters that point at no resource though their collection is creatable: expect 4xx. */
  bogus: boolean;
  bindings: Record<string, string>;
}

/** Fills the path: real ids (bound together) where possible, schema-generated strings elsewhere. */
function target(op: Operation, ctx: GenContext, index: number, overrides: Record<string, string> = {}): Target {
  let seed = ctx.seed;
  const bound = ctx.resources.bind(op.path, ctx.user, (n) => index % n);
  const values: Record<string, string> = {};
  let bogus = false;
  for (const name of pathParamNames(op.path)) {
    if (name in overrides) {
      values[name] = overrides[name];
      if (ctx.resources.collectionFor(op.path, name)) bogus = true;
    } else if (bound[name]) {
      values[name] = encodeSegment(bound[name]);
    } else {
      const schema = op.params.find((p) => p.name === name)?.schema ?? { type: "string" };
      const v = fc.sample(validArbitrary({ ...schema, minLength: Math.max(1, schema.minLength ?? 1) }, ctx.resources.context(ctx.user)), { numRuns: 1, seed: seed++ })[0];
      values[name] = encodeSegment(String(v));
      if (ctx.resources.collectionFor(op.path, name)) bogus = true;
    }
  }
  return { path: fillPath(op.path, values), bogus, bindings: bound };
}

/** encodeURIComponent, with lone surrogates (which it refuses) written as U+FFFD. */
export function encodeSegment(value: string): string {
  const encoded = encodeURIComponent(value.toWellFormed());
  // "." and ".." (also as %2E) are dot segments the URL parser removes before sending.
  return encoded === "." || encoded === ".." ? `${encoded}x` : encoded;
}

function queryString(values: Record<string, string>, raw: Record<string, string> = {}): string {
  const parts = [...Object.entries(values).map(([k, v]) => `${encodeSegment(k)}=${encodeSegment(v)}`), ...Object.entries(raw).map(([k, v]) => `${encodeSegment(k)}=${v}`)];
  return parts.length ? `?${parts.join("&")}` : "";
}

/** A query value as sent; long-poll parameters (timeout, wait) stay short so a request never waits long. */
function queryValueArb(name: string, schema: JsonSchema, actx: ReturnType<Resources["context"]>): fc.Arbitrary<string> {
  if (/timeout|wait/i.test(name)) return fc.constantFrom("0", "1", "-1", "abc", "1.5");
  return validArbitrary(schema, actx, name).map((v) => (typeof v === "string" ? v : JSON.stringify(v)));
}

/** Generated requests: `runs` valid-by-construction ones and `runs` mutations. */
export function generatedRequests(op: Operation, ctx: GenContext): FuzzRequest[] {
  const out: FuzzRequest[] = [];
  const actx = ctx.resources.context(ctx.user);
  const queryParams = op.params.filter((p) => p.in === "query");
  const queryArb = fc.record(
    Object.fromEntries(queryParams.map((p) => [p.name, queryValueArb(p.name, p.schema, actx)])),
    { requiredKeys: queryParams.filter((p) => p.required).map((p) => p.name) },
  ) as fc.Arbitrary<Record<string, string>>;
  const bodyArb = op.body ? validArbitrary(op.body, actx) : fc.constant(undefined);
  const indexArb = fc.nat({ max: 1_000_000 });
  const samples = fc.sample(fc.tuple(queryArb, bodyArb, indexArb, fc.nat({ max: 9 })), { numRuns: ctx.runs, seed: ctx.seed });
  const mutations = fc.sample(
    fc.tuple(queryArb, bodyArb, fc.nat({ max: 9 }), fc.constantFrom(...HOSTILE_SEGMENTS), hostileString()).chain(([q, b, dice, seg, hs]) =>
      (op.body ? mutateBody(b, op.body) : fc.constant(b)).map((mb) => ({ q, mb, dice, seg, hs })),
    ),
    { numRuns: ctx.runs, seed: ctx.seed + 1 },
  );

  samples.forEach(([query, body, index, dice], i) => {
    // One in ten aims at a path value that is not a resource of ours.
    const t = target(op, { ...ctx, seed: ctx.seed + i }, index, dice === 0 ? Object.fromEntries(pathParamNames(op.path).slice(-1).map((n) => [n, `x${index}`])) : {});
    const text = body === undefined ? undefined : toJsonText(body);
    out.push({
      method: op.method,
      path: t.path + queryString(query),
      headers: { ...authHeaders(op, ctx.user), ...(text !== undefined ? { "content-type": "application/json" } : {}) },
      body: text,
      op,
      ...exactFor(op, t.path, combined(t.bogus, { expect: queryExpect(op, ctx.coercing, query) }, bodyVerdict(op, ctx.validators, text))),
      label: "generated",
    });
  });

  mutations.forEach(({ q, mb, dice, seg, hs }, i) => {
    const query: Record<string, string> = { ...q };
    if (queryParams.length && (!op.body || dice < 4)) query[queryParams[dice % queryParams.length].name] = hs;
    // An unknown (or misspelt) query parameter, on any operation.
    const unknownQuery = dice === 5 ? `zz_${hs.slice(0, 8)}` : dice === 6 && queryParams.length ? `${queryParams[0].name}s` : undefined;
    if (unknownQuery && !queryParams.some((p) => p.name === unknownQuery)) query[unknownQuery] = "1";
    const queryUnknown = !!unknownQuery && !queryParams.some((p) => p.name === unknownQuery) && op.path.startsWith("/v1/");
    const names = pathParamNames(op.path);
    // Dot segments are left out of path parameters (see DOT_SEGMENT).
    const overrides = names.length && (!op.body || dice > 6) && !DOT_SEGMENT.test(seg) ? { [names[dice % names.length]]: seg } : {};
    const t = target(op, { ...ctx, seed: ctx.seed + 7 * i }, i, overrides);
    const text = mb === undefined ? undefined : toJsonText(mb);
    let qExpect: Expectation = "any";
    try {
      qExpect = queryExpect(op, ctx.coercing, query);
    } catch {
      qExpect = "any";
    }
    const path = t.path + queryString(query);
    // The contract covers the API; a hostile path segment or a NUL in the URL is answered before it.
    const exact = op.path.startsWith("/v1/") && !Object.keys(overrides).length && !path.includes("%00");
    const verdict = combined(t.bogus, queryUnknown ? { expect: "400", code: "unknown_parameter" } : { expect: qExpect }, bodyVerdict(op, ctx.validators, text));
    out.push({
      method: op.method,
      path,
      headers: { ...authHeaders(op, ctx.user), ...(text !== undefined ? { "content-type": "application/json" } : {}) },
      body: text,
      op,
      ...(exact ? verdict : { expect: worst(verdict.expect) }),
      label: queryUnknown ? "mutated, unknown query parameter" : "mutated",
    });
  });
  return out;
}

/** One valid body for `op` (ajv-checked), or `{}`. */
export function validBody(op: Operation, ctx: GenContext, seed = ctx.seed): unknown {
  if (!op.body) return undefined;
  const bodies = fc.sample(validArbitrary(op.body, ctx.resources.context(ctx.user, true)), { numRuns: 40, seed });
  return bodies.find((b) => !ctx.validators.errors(op.body!, b)) ?? {};
}

/** The fixed hostile set for one operation. */
export function hostileRequests(op: Operation, ctx: GenContext): FuzzRequest[] {
  const out: FuzzRequest[] = [];
  const good = target(op, ctx, 0);
  const body = validBody(op, ctx);
  const bodyText = body === undefined ? undefined : toJsonText(body);
  const json: Record<string, string> = bodyText !== undefined ? { "content-type": "application/json" } : {};
  const base = { method: op.method, op, headers: { ...authHeaders(op, ctx.user), ...json } };
  const add = (r: Omit<FuzzRequest, "method" | "op" | "headers"> & { headers?: Record<string, string> }) => out.push({ ...base, ...r, headers: r.headers ?? base.headers });

  // Path parameters: NUL, invalid UTF-8 escapes, huge and wrongly-prefixed ids.
  for (const name of pathParamNames(op.path)) {
    for (const seg of sampleOf(HOSTILE_SEGMENTS.filter((s) => !DOT_SEGMENT.test(s)), 15, ctx.seed + name.length)) {
      const t = target(op, ctx, 0, { [name]: seg });
      add({ path: t.path, body: bodyText, expect: t.bogus ? "4xx" : "any", label: `path param ${name}` });
    }
  }

  // Authorization: everything but a valid credential is a 401 on an authenticated route.
  if (op.authenticated) {
    // 401 when the rest of the request is valid; otherwise validation may answer first (4xx).
    const authExpect: Expectation = op.strictAuth && !good.bogus && expectForBody(op, ctx.validators, bodyText) !== "4xx" ? "401" : "4xx";
    add({ path: good.path, body: bodyText, headers: { ...json }, expect: authExpect, label: "no Authorization" });
    for (const auth of hostileAuthorizations(ctx.user.token)) {
      if (!headerOk(auth)) continue;
      add({ path: good.path, body: bodyText, headers: { ...json, authorization: auth }, expect: authExpect, label: "hostile Authorization" });
    }
  }

  // Query parameters: hostile strings and numbers as every parameter.
  for (const p of op.params.filter((p) => p.in === "query")) {
    for (const v of sampleOf([...HOSTILE_SEGMENTS, ...HOSTILE_NUMBERS.map((n) => encodeSegment(n.text))], 10, ctx.seed + p.name.length)) {
      let decoded: string | undefined;
      try {
        decoded = decodeURIComponent(v);
      } catch {
        decoded = undefined;
      }
      const e = decoded === undefined ? "any" : queryExpect(op, ctx.coercing, { [p.name]: decoded });
      add({ path: good.path + queryString({}, { [p.name]: v }), body: bodyText, expect: e, label: `query ${p.name}` });
    }
    add({ path: good.path + queryString({}, { [p.name]: "1", [`${p.name}`]: "2" }) + `&${p.name}=3`, body: bodyText, expect: "any", label: `query ${p.name} repeated` });
  }

  if (!op.body) return out;

  // Malformed bodies.
  for (const m of malformedBodies()) add({ path: good.path, body: m.text, expect: expectForBody(op, ctx.validators, m.text), label: `body: ${m.label}` });

  // Content types: only JSON is accepted (415 otherwise).
  for (const ct of CONTENT_TYPES) {
    const headers: Record<string, string> = { ...authHeaders(op, ctx.user) };
    if (ct !== null) headers["content-type"] = ct;
    const jsonish = ct !== null && /^application\/(json|[\w.+-]*\+json)\s*(;|$)/i.test(ct.trim());
    // JSON is UTF-8: any other declared charset is refused.
    const foreign = jsonish && /;\s*charset\s*=/i.test(ct!) && !/;\s*charset\s*=\s*"?utf-?8"?\s*(;|$)/i.test(ct!);
    add({ path: good.path, headers, body: ct === null ? new TextEncoder().encode(bodyText) : bodyText, expect: foreign ? "415" : jsonish ? "any" : "4xx", label: `content-type ${ct}` });
  }

  // Hostile values in every documented property.
  const objectBody = body && typeof body === "object" && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
  for (const [key, schema] of Object.entries<JsonSchema>(op.body.properties ?? {})) {
    const values: unknown[] = sampleOf([...HOSTILE_NUMBERS, ...HOSTILE_STRINGS, null, [], {}, ["x"], true, false, 0], 10, ctx.seed + key.length);
    for (const v of values) {
      const text = toJsonText(withKey(objectBody, key, v));
      add({ path: good.path, body: text, expect: expectForBody(op, ctx.validators, text), label: `property ${key}` });
    }
    // Deep nesting inside a field (refused or stored, never a crash). 10,000 levels run in
    // deepNestingRequests against a child process: they can freeze the process (see there).
    for (const depth of FREE_FORM(schema) ? [100, 1_000] : []) {
      const text = toJsonText(withKey(objectBody, key, new Raw(deepValueText(depth))));
      add({ path: good.path, body: text, expect: FREE_FORM(schema) ? "any" : expectForBody(op, ctx.validators, text), label: `property ${key} nested ${depth}` });
    }
  }
  // Unknown fields, prototype keys.
  for (const key of [...PROTOTYPE_KEYS, "unknown_field", "id", "org_id", "created_at"]) {
    const text = toJsonText(withKey(objectBody, key, { polluted: true }));
    add({ path: good.path, body: text, ...exactFor(op, good.path, combined(good.bogus, { expect: "any" }, bodyVerdict(op, ctx.validators, text))), label: `extra field ${key}` });
  }
  // Prototype-like values where the body wants a string (they once crashed the error formatter).
  for (const [key] of Object.entries<JsonSchema>(op.body.properties ?? {}).filter(([, s]) => s.type === "string")) {
    for (const v of PROTOTYPE_LIKE_VALUES) {
      const text = toJsonText(withKey(objectBody, key, v));
      add({ path: good.path, body: text, ...exactFor(op, good.path, combined(good.bogus, { expect: "any" }, bodyVerdict(op, ctx.validators, text))), label: `prototype-like value in ${key}` });
    }
  }

  // Sizes: just under the limit (whatever the status, never a crash), over it (413), over it
  // without a Content-Length (chunked), far over Bun's own limit.
  const stringKey = Object.entries<JsonSchema>(op.body.properties ?? {}).find(([, s]) => s.type === "string")?.[0] ?? "padding";
  const sized = (n: number) => toJsonText(withKey(objectBody, stringKey, "x".repeat(n)));
  const under = sized(ctx.maxBodyBytes - 200 - (bodyText?.length ?? 0));
  add({ path: good.path, body: under, expect: expectForBody(op, ctx.validators, under), label: `body ${under.length} bytes (under the limit)` });
  add({ path: good.path, body: sized(ctx.maxBodyBytes + 1), expect: "413", label: "body over the limit" });
  add({ path: good.path, body: sized(2 * ctx.maxBodyBytes), expect: "413", label: "body 2× the limit" });

  // Idempotency-Key lengths and bytes (on creates).
  // Creates (a POST on a collection, or a documented Idempotency-Key header) must refuse bad keys.
  const create = ctx.resources.isCreatable(op.path) || op.params.some((p) => p.in === "header" && p.name.toLowerCase() === "idempotency-key");
  if (op.method === "POST") {
    for (const key of IDEMPOTENCY_KEYS) {
      if (!headerOk(key)) continue;
      const bad = create && (key.length === 0 || key.length > 255);
      add({ path: good.path, body: bodyText, headers: { ...base.headers, "idempotency-key": key }, expect: bad ? "4xx" : "any", label: `Idempotency-Key of ${key.length} chars` });
    }
  }
  return out;
}

/**
 * 10,000 levels of nesting, as the whole body and inside every property, each sent twice:
 * PGlite (the embedded database) was seen spinning forever on the second 10,000-level jsonb
 * value, which freezes the process's event loop — so these go to a child process, where a
 * hang is a timeout and not a frozen test runner.
 */
export function deepNestingRequests(op: Operation, ctx: GenContext, depth = 10_000): FuzzRequest[] {
  if (!op.body) return [];
  const good = target(op, ctx, 0);
  const body = validBody(op, ctx);
  const objectBody = body && typeof body === "object" && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
  const headers = { ...authHeaders(op, ctx.user), "content-type": "application/json" };
  const out: FuzzRequest[] = [];
  const add = (label: string, text: string, times: number) => {
    for (let n = 1; n <= times; n++) out.push({ method: op.method, path: good.path, headers, body: text, op, expect: expectForBody(op, ctx.validators, text), label: `${label} #${n}` });
  };
  add(`body: array nested ${depth}`, "[".repeat(depth) + "]".repeat(depth), 1);
  add(`body: object nested ${depth}`, deepValueText(depth), 1);
  // Free-form fields are where a deep value passes validation and reaches the database: twice.
  for (const [key, schema] of Object.entries<JsonSchema>(op.body.properties ?? {})) {
    if (FREE_FORM(schema)) add(`property ${key} nested ${depth}`, toJsonText(withKey(objectBody, key, new Raw(deepValueText(depth)))), 2);
  }
  return out;
}

/** The body over the limit streamed without Content-Length (chunked): the limit must still hold. */
export function chunkedOversize(op: Operation, ctx: GenContext): FuzzRequest {
  const good = target(op, ctx, 0);
  const total = ctx.maxBodyBytes + 256 * 1024;
  return {
    method: op.method,
    path: good.path,
    headers: { ...authHeaders(op, ctx.user), "content-type": "application/json" },
    op,
    expect: "413",
    label: `chunked body of ${total} bytes, no Content-Length`,
    body: chunkedJson(total),
  };
}

export function chunkedJson(total: number): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  const chunk = enc.encode("x".repeat(64 * 1024));
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent === 0) {
        controller.enqueue(enc.encode('{"padding":"'));
        sent = 12;
        return;
      }
      if (sent + chunk.length < total) {
        controller.enqueue(chunk);
        sent += chunk.length;
        return;
      }
      controller.enqueue(enc.encode('"}'));
      controller.close();
    },
  });
}

/** `n` items of `list`, chosen by `seed` (the whole list when it is shorter). */
export function sampleOf<T>(list: T[], n: number, seed: number): T[] {
  if (list.length <= n) return list;
  return fc.sample(fc.shuffledSubarray(list, { minLength: n, maxLength: n }), { numRuns: 1, seed })[0];
}

export function headerOk(value: string): boolean {
  try {
    new Headers({ x: value });
    return true;
  } catch {
    return false;
  }
}
