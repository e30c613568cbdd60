/**
 * The OpenAPI 3.1 document at /swagger/json: @elysiajs/openapi's generation from the route
 * schemas, then one generic pass (`finishDocument`) that makes it something clients can be
 * generated from:
 *
 * - 3.1 schemas: `nullable` becomes a type array, Elysia's coercing integers
 *   (`anyOf [{type: string, format: integer}, {type: integer}]`) become `type: integer`;
 * - named components: every model given in `components` (by export name) is hoisted into
 *   `components.schemas` and referenced with `$ref` wherever a response has it; response
 *   bodies still inline get a name from their operation (`DeleteAgentResponse`); request
 *   bodies stay inline (see below);
 * - the error shape (`Error`) for every status a route can answer, from what the route is
 *   (authenticated: 401 and 429 with its headers; path parameters: 404; a body: 408, 413,
 *   415; an Idempotency-Key: 409; every route: 400, 500, 503), plus what the route declares
 *   itself (402, 403, 422…);
 * - only `application/json` request bodies (the platform refuses form and multipart: 415);
 * - operation ids that read as method names (`createAgent`, `listThreadMessages`, `getRun`),
 *   unless a route sets `detail.operationId`; `detail.responses` of a route is merged in
 *   (e.g. a stream response beside a JSON one).
 *
 * Documenting a new route: give it `response: { 2xx: Model, ...errors(<statuses only it
 * answers>) }` and `detail: { tags, summary }`; export its models from a model.ts that the
 * gateway's component list includes (src/roles/gateway/openapi.ts). The rest is added here.
 *
 * The document is built once, from the routes of the finished app, and served as the same
 * bytes after: nothing a request does can change it.
 */
import { toOpenAPISchema } from "@elysiajs/openapi";
import { unwrapSchema } from "@elysiajs/openapi/openapi";
import type { TSchema } from "@sinclair/typebox";
import { Elysia } from "elysia";
import { errorBody } from "./errors";

type Json = Record<string, any>;

export interface DocumentOptions {
  /** info, servers, security, tags, extra paths (e.g. a WebSocket upgrade) merged as given. */
  documentation: Json;
  /** Models to name in `components.schemas`, by name. */
  components: Record<string, TSchema>;
  /** Request-body examples by operation id. */
  examples?: Record<string, unknown>;
  /** Better names than the derived ones, by "METHOD /path" (Elysia path syntax). */
  operationIds?: Record<string, string>;
  /** A description per tag (the tag list is made from the operations). */
  tagDescriptions?: Record<string, string>;
  /** Only paths under this prefix get the API's error responses (default "/v1/"). */
  apiPrefix?: string;
}

const ERROR_STATUSES: Record<number, { name: string; description: string; code: string; message: string }> = {
  400: { name: "BadRequest", description: "The request is malformed or breaks the schema; `details` names the field or parameter and the rule", code: "validation_failed", message: "limit: must be an integer between 1 and 100" },
  401: { name: "Unauthorized", description: "No valid credential; `token_expired` when the access token expired (refresh it)", code: "token_expired", message: "The access token has expired; refresh it." },
  402: { name: "PaymentRequired", description: "The plan's quota is used up", code: "quota_exceeded", message: "The monthly token quota of the plan is used up." },
  403: { name: "Forbidden", description: "The caller's role may not do this", code: "forbidden", message: "Only owners and admins may do this." },
  404: { name: "NotFound", description: "No such resource in the organization (also for an id of the wrong shape)", code: "not_found", message: "No agent agt_… in this organization." },
  408: { name: "RequestTimeout", description: "The body did not arrive in time", code: "request_timeout", message: "The request body did not arrive within 30000 ms." },
  409: { name: "Conflict", description: "A conflict with the resource's state or an Idempotency-Key in use with another body", code: "conflict", message: "The run has already ended." },
  413: { name: "PayloadTooLarge", description: "The body is larger than the limit", code: "payload_too_large", message: "The body is 2000000 bytes; the limit is 1048576 bytes." },
  415: { name: "UnsupportedMediaType", description: "The body is not UTF-8 JSON (`Content-Type: application/json`)", code: "unsupported_media_type", message: "Send the body as JSON with `Content-Type: application/json`." },
  422: { name: "UnprocessableEntity", description: "The request is well-formed but refers to something unusable", code: "unprocessable", message: "The tool tool_… does not exist." },
  429: { name: "TooManyRequests", description: "Rate limited: retry after `Retry-After` seconds", code: "rate_limited", message: "Too many requests; retry in 12 s." },
  500: { name: "InternalError", description: "A bug on our side; the request id identifies it in our logs", code: "internal_error", message: "Something went wrong on our side; the request id identifies it in our logs." },
  503: { name: "ServiceUnavailable", description: "A backend (database, cache, bus) is unreachable or the process is shutting down; retry", code: "backend_unavailable", message: "The database is unreachable; retry shortly." },
};

const RATE_LIMIT_HEADERS = {
  "Retry-After": { description: "Seconds until a retry can succeed", schema: { type: "integer" } },
  "X-RateLimit-Limit": { description: "Requests allowed in the window", schema: { type: "integer" } },
  "X-RateLimit-Remaining": { description: "Requests left in the window", schema: { type: "integer" } },
  "X-RateLimit-Reset": { description: "When the window resets (Unix seconds)", schema: { type: "integer" } },
};

const ref = (kind: string, name: string) => ({ $ref: `#/components/${kind}/${name}` });
const isObject = (v: unknown): v is Json => !!v && typeof v === "object" && !Array.isArray(v);
const pascal = (s: string) => s.replace(/(^|[_\-\s.])([a-z0-9])/gi, (_, __, c: string) => c.toUpperCase());
const capitalize = (s: string) => (s ? s[0].toUpperCase() + s.slice(1) : s);
const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v));

/** A stable text of a schema (sorted keys), to recognise a model wherever it was inlined. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (!isObject(v)) return JSON.stringify(v);
  return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(",")}}`;
}

const SCALARS = new Set(["string", "integer", "number", "boolean"]);
const withNull = (type: unknown) => (Array.isArray(type) ? (type.includes("null") ? type : [...type, "null"]) : [type, "null"]);

/** Elysia's coercing number: `anyOf [{type: string, format: integer|numeric}, {type: integer|number}]`. */
function coercedNumber(anyOf: Json[]): Json | undefined {
  if (anyOf.length !== 2) return;
  const text = anyOf.find((s) => s.type === "string" && (s.format === "integer" || s.format === "numeric"));
  const number = anyOf.find((s) => s.type === "integer" || s.type === "number");
  return text && number ? number : undefined;
}

/** One schema made OpenAPI 3.1 / JSON Schema 2020-12 proper, children first. */
export function normalizeSchema(input: unknown): unknown {
  if (Array.isArray(input)) return input.map(normalizeSchema);
  if (!isObject(input)) return input;
  const s: Json = {};
  for (const [k, v] of Object.entries(input)) {
    if (k === "properties" || k === "patternProperties" || k === "$defs") s[k] = Object.fromEntries(Object.entries(v as Json).map(([n, c]) => [n, normalizeSchema(c)]));
    else if (k === "enum" || k === "const" || k === "default" || k === "examples" || k === "example" || k === "required") s[k] = v;
    else s[k] = isObject(v) || Array.isArray(v) ? normalizeSchema(v) : v;
  }
  if (Array.isArray(s.anyOf)) {
    const number = coercedNumber(s.anyOf);
    if (number) {
      const { anyOf: _, ...outer } = s;
      return normalizeSchema({ ...outer, ...number });
    }
    const nonNull = s.anyOf.filter((c: Json) => c.type !== "null" || Object.keys(c).length > 1);
    // A nullable scalar as a type array; a nullable object stays `anyOf [X, null]` so X can be named.
    if (nonNull.length === 1 && nonNull.length < s.anyOf.length && SCALARS.has(nonNull[0].type)) {
      const { anyOf: _, nullable: __, ...outer } = s;
      return { ...nonNull[0], ...outer, type: withNull(nonNull[0].type) };
    }
  }
  // The generator writes a nullable object as `type: [object, null]`: split it so the object can be named.
  if (Array.isArray(s.type) && s.type.length === 2 && s.type.includes("null") && (s.type.includes("object") || s.type.includes("array"))) {
    const { description, nullable: _, ...rest } = s;
    return { ...(description ? { description } : {}), anyOf: [{ ...rest, type: s.type.find((t: string) => t !== "null") }, { type: "null" }] };
  }
  if (s.nullable === true) {
    delete s.nullable;
    if (s.type !== undefined) s.type = withNull(s.type);
    else if (!Array.isArray(s.anyOf) || !s.anyOf.some((c: Json) => c.type === "null")) return { anyOf: [s, { type: "null" }] };
  } else if ("nullable" in s) delete s.nullable;
  return s;
}

/**
 * Response objects are documented open (a client must accept fields added later), and must be:
 * Elysia closes a response schema (`additionalProperties: false`) in place the first time the
 * route answers, which would make the document depend on the calls made before it was read.
 */
function openObjects(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(openObjects);
  if (!isObject(schema)) return schema;
  const out: Json = {};
  for (const [k, v] of Object.entries(schema)) if (!(k === "additionalProperties" && v === false)) out[k] = k === "enum" || k === "const" || k === "default" ? v : openObjects(v);
  return out;
}

/** The name a route gets unless it sets one: createAgent, listThreadMessages, getRun, cancelRun. */
export function operationIdFor(method: string, path: string): string {
  const segments = path.split("/").filter((p) => p && p !== "v1");
  const endsWithParam = segments.length > 0 && /^[:{]/.test(segments.at(-1)!);
  const statics = segments.filter((p) => !/^[:{]/.test(p));
  const singular = (w: string) => (/ies$/.test(w) ? w.replace(/ies$/, "y") : /(ses|xes)$/.test(w) ? w.slice(0, -2) : w.endsWith("s") ? w.slice(0, -1) : w);
  const nouns = (words: string[]) => words.map((w) => pascal(singular(w))).join("");
  const last = statics.at(-1) ?? "root";
  const plural = last.endsWith("s") && !last.endsWith("ss");
  const m = method.toUpperCase();
  if (endsWithParam) {
    const verb = { GET: "get", PATCH: "update", PUT: "update", DELETE: "delete", POST: "create" }[m] ?? m.toLowerCase();
    return verb + nouns(statics);
  }
  if (m === "GET") return plural ? `list${nouns(statics.slice(0, -1))}${pascal(last)}` : `get${nouns(statics)}`;
  if (m === "POST" && plural) return `create${nouns(statics)}`;
  if (m === "POST") return `${last.replace(/_(\w)/g, (_, c: string) => c.toUpperCase())}${nouns(statics.slice(0, -1))}`;
  if (m === "DELETE") return `delete${nouns(statics)}`;
  return `update${nouns(statics)}`;
}

function errorResponses(): Json {
  const out: Json = {};
  for (const [status, e] of Object.entries(ERROR_STATUSES)) {
    out[e.name] = {
      description: e.description,
      ...(status === "429" ? { headers: RATE_LIMIT_HEADERS } : {}),
      content: { "application/json": { schema: ref("schemas", "Error"), example: errorBody(e.code, e.message, "req_3kTqZ8s1m0aB") } },
    };
  }
  return out;
}

/** The statuses a route can answer besides its own declared ones, from what the route is. */
function impliedStatuses(op: Json, method: string): number[] {
  const statuses = [400, 500, 503];
  const authenticated = !(Array.isArray(op.security) && op.security.length === 0);
  if (authenticated) statuses.push(401, 429);
  if ((op.parameters ?? []).some((p: Json) => p.in === "path")) statuses.push(404);
  // An Idempotency-Key reused with another body, or still in flight: 409.
  if ((op.parameters ?? []).some((p: Json) => p.in === "header" && p.name.toLowerCase() === "idempotency-key")) statuses.push(409);
  if (op.requestBody || ["post", "put", "patch"].includes(method)) statuses.push(408, 413, 415);
  return statuses;
}

interface RouteLike {
  method: string;
  path: string;
  hooks?: { detail?: Json };
}

/** The finishing pass over the generated document (pure: the input is not changed). */
export function finishDocument(generated: Json, routes: RouteLike[], opts: DocumentOptions): Json {
  const doc = clone(generated);
  const apiPrefix = opts.apiPrefix ?? "/v1/";
  const schemas: Json = {};

  // Named models, as they appear in the document once normalised (matched by their text).
  const byText = new Map<string, string>();
  for (const [name, model] of Object.entries(opts.components)) {
    const schema = normalizeSchema(openObjects(clone(toJsonSchema(model)))) as Json;
    schemas[name] = schema;
    if (!byText.has(canonical(schema))) byText.set(canonical(schema), name);
  }
  const named = (schema: unknown, self?: string): unknown => {
    if (Array.isArray(schema)) return schema.map((s) => named(s));
    if (!isObject(schema)) return schema;
    const name = byText.get(canonical(schema));
    if (name && name !== self && (schema.type === "object" || schema.enum)) return ref("schemas", name);
    const out: Json = {};
    for (const [k, v] of Object.entries(schema)) {
      if (k === "properties" || k === "patternProperties") out[k] = Object.fromEntries(Object.entries(v as Json).map(([n, c]) => [n, named(c)]));
      else if (k === "enum" || k === "const" || k === "default" || k === "examples" || k === "required") out[k] = v;
      else out[k] = isObject(v) || Array.isArray(v) ? named(v) : v;
    }
    return out;
  };
  const hoist = (schema: unknown, name: string): unknown => {
    const normal = named(normalizeSchema(openObjects(schema)));
    if (!isObject(normal) || normal.$ref || (normal.type !== "object" && normal.type !== "array")) return normal;
    const text = canonical(normal);
    const known = byText.get(text);
    if (known) return ref("schemas", known);
    let unique = name;
    for (let i = 2; schemas[unique]; i++) unique = `${name}${i}`;
    schemas[unique] = normal;
    byText.set(text, unique);
    return ref("schemas", unique);
  };

  const routeDetail = new Map(routes.map((r) => [`${r.method.toUpperCase()} ${r.path.replace(/:([^/]+)/g, "{$1}")}`, r]));
  const extraPaths = clone(opts.documentation.paths ?? {});
  for (const [path, item] of Object.entries<Json>(doc.paths ?? {})) {
    for (const [method, op] of Object.entries<Json>(item)) {
      const route = routeDetail.get(`${method.toUpperCase()} ${path}`);
      const elysiaPath = path.replace(/\{([^}]+)\}/g, ":$1");
      const defaultId = method.toLowerCase() + elysiaPath.split("/").map((p) => (p.includes(":") ? "By" + capitalize(p.replace(":", "")) : capitalize(p))).join("");
      if (!op.operationId || op.operationId === defaultId) op.operationId = opts.operationIds?.[`${method.toUpperCase()} ${elysiaPath}`] ?? operationIdFor(method, path);
      const id = pascal(op.operationId);
      for (const p of op.parameters ?? []) p.schema = named(normalizeSchema(p.schema));
      if (op.requestBody?.content) {
        // Request bodies stay inline: a generator cannot tell a component used as input, and
        // openapi-typescript would make its fields with a default required.
        const json = op.requestBody.content["application/json"];
        op.requestBody.content = json ? { "application/json": { ...json, schema: normalizeSchema(json.schema) } } : op.requestBody.content;
        const example = opts.examples?.[op.operationId];
        if (example !== undefined && op.requestBody.content["application/json"]) op.requestBody.content["application/json"].example = example;
      }
      const responses: Json = {};
      for (const [status, response] of Object.entries<Json>(op.responses ?? {})) {
        if (Number(status) >= 400 && ERROR_STATUSES[Number(status)]) continue; // replaced by the shared ones below
        const content = response.content && Object.fromEntries(Object.entries<Json>(response.content).map(([type, media]) => [type, { ...media, schema: type.endsWith("json") ? hoist(media.schema, `${id}Response`) : normalizeSchema(media.schema) }]));
        responses[status] = { ...response, ...(content ? { content } : {}) };
      }
      Object.assign(responses, clone(route?.hooks?.detail?.responses ?? {}));
      if (path.startsWith(apiPrefix)) {
        const declared = Object.keys(op.responses ?? {}).map(Number).filter((s) => s >= 400);
        for (const status of [...new Set([...impliedStatuses(op, method), ...declared])].sort()) {
          if (ERROR_STATUSES[status]) responses[status] = ref("responses", ERROR_STATUSES[status].name);
        }
      }
      op.responses = Object.fromEntries(Object.entries(responses).sort(([a], [b]) => a.localeCompare(b)));
    }
  }
  for (const [name, schema] of Object.entries(schemas)) schemas[name] = named(schema, name);
  const paths = { ...doc.paths, ...extraPaths };
  const tags = [...new Set(Object.values<Json>(paths).flatMap((item) => Object.values<Json>(item).flatMap((op) => op.tags ?? [])))].map((name) => ({ name, description: opts.tagDescriptions?.[name] ?? name }));
  const responses = errorResponses();
  return {
    openapi: "3.1.0",
    ...opts.documentation,
    tags,
    paths,
    components: {
      ...opts.documentation.components,
      schemas: used(schemas, [paths, responses]),
      responses,
    },
  };
}

/** The schemas referenced from `roots`, directly or through other schemas (sorted by name). */
function used(schemas: Json, roots: unknown[]): Json {
  const keep = new Set<string>();
  const visit = (v: unknown) => {
    if (Array.isArray(v)) return v.forEach(visit);
    if (!isObject(v)) return;
    const name = typeof v.$ref === "string" && v.$ref.startsWith("#/components/schemas/") ? v.$ref.slice(21) : undefined;
    if (name && !keep.has(name)) {
      keep.add(name);
      visit(schemas[name]);
    }
    Object.values(v).forEach(visit);
  };
  roots.forEach(visit);
  return Object.fromEntries([...keep].sort().map((name) => [name, schemas[name]]));
}

/** A TypeBox model as the plugin writes it into the document (symbols and functions dropped). */
function toJsonSchema(model: TSchema): unknown {
  return JSON.parse(JSON.stringify(unwrapSchema(model, undefined, "output", "3.1.2") ?? {}));
}

/**
 * Serves the finished document at `path`. Built at the first request from the finished
 * app's routes (the server compiles every route before it listens), then the same bytes.
 */
export function openApiDocument(path: string, opts: DocumentOptions) {
  let text: string | undefined;
  const plugin = new Elysia();
  return plugin.get(
    path,
    () => {
      text ??= JSON.stringify(finishDocument(toOpenAPISchema(plugin as never), (plugin as unknown as { getGlobalRoutes(): RouteLike[] }).getGlobalRoutes(), opts));
      return new Response(text, { headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-cache" } });
    },
    { detail: { hide: true } },
  );
}
