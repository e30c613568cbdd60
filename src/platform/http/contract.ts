/**
 * The input contract (SPEC §6): a request carries exactly the fields and query parameters its
 * route declares. Unknown ones are refused with 400 `unknown_parameter` naming each (also
 * inside nested objects whose shape we define; free-form records such as `metadata` stay free,
 * bounded by `x-max-bytes` / `x-max-key-length`), every schema failure is described by its
 * rule (allowed values, ranges) without ever formatting the offending value, and a malformed
 * path parameter (an id of the wrong shape) is a 404.
 *
 * Why our own check before Elysia's: Elysia's normalisation strips unknown fields before it
 * validates (the silent drop), and its ValidationError constructor interpolates the value
 * into its message, so a body carrying `{"toString": false}` in a string position threw a
 * TypeError there (a 500). The check runs in a global transform, i.e. after Elysia's JSON
 * parser and before its validation; a body that passes it also passes Elysia's check.
 */
import { TypeCompiler, type TypeCheck } from "@sinclair/typebox/compiler";
import { FormatRegistry, Kind, type TSchema } from "@sinclair/typebox";
import { ValueErrorType, type ValueError } from "@sinclair/typebox/errors";
import { AppError } from "../errors";

/**
 * Elysia's t.Integer / t.Numeric also accept a string holding the number (query strings) through
 * formats testing `!isNaN(+value)`, so a whitespace-only string ("\uFEFF", " ") passed as 0. The
 * same formats, strict: the number's own characters and nothing around them.
 */
FormatRegistry.Set("integer", (v) => /^-?\d+$/.test(v) && Number.isSafeInteger(Number(v)));
FormatRegistry.Set("numeric", (v) => /^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/.test(v));

/** Schema keywords (OpenAPI `x-` extensions) bounding a free-form record. */
export const MAX_BYTES = "x-max-bytes";
export const MAX_KEY_LENGTH = "x-max-key-length";
/** At most this many problems are listed in `details`. */
const MAX_LISTED = 20;

export interface UnknownParameter {
  /** The unknown name as sent. */
  name: string;
  /** Where: `max_step`, `memory_blocks.0.bogus`; for a query, the parameter name. */
  path: string;
}
export interface FieldProblem {
  field: string;
  message: string;
  /** The allowed values of an enum or a union of constants. */
  allowed?: unknown[];
}

interface Bounded {
  /** Where the record is: `metadata`, `thread.metadata`, `thread.messages.*.metadata` (`*`: every item). */
  key: string;
  maxBytes?: number;
  maxKeyLength?: number;
}

interface RouteContract {
  body?: TypeCheck<TSchema>;
  /** Top-level free-form records with bounds beyond what JSON Schema can say. */
  bounded: Bounded[];
  params?: TypeCheck<TSchema>;
  /** The declared query parameters; an empty set when the route declares none. */
  query: Set<string>;
}

type AnySchema = Record<string | symbol, any>;

/**
 * Marks every object whose properties we define as closed (`additionalProperties: false`), in
 * place, so the OpenAPI document says it from its first fetch. Records (patternProperties),
 * `t.Any()` and objects that state `additionalProperties` themselves stay as they are.
 */
export function closeObjects(schema: unknown, seen = new Set<unknown>()): void {
  if (!schema || typeof schema !== "object" || seen.has(schema)) return;
  seen.add(schema);
  const s = schema as AnySchema;
  if (s.type === "object" && s.properties && !s.patternProperties && !("additionalProperties" in s)) s.additionalProperties = false;
  for (const child of Object.values<unknown>(s.properties ?? {})) closeObjects(child, seen);
  for (const key of ["items", "anyOf", "allOf", "oneOf", "not"]) {
    const v = s[key];
    if (Array.isArray(v)) v.forEach((c) => closeObjects(c, seen));
    else closeObjects(v, seen);
  }
}

/** The bounded records of a body, also inside nested objects and arrays of objects. */
function boundedRecords(schema: AnySchema | undefined, prefix = "", depth = 0): Bounded[] {
  const out: Bounded[] = [];
  if (!schema || depth > 4) return out;
  for (const [name, child] of Object.entries<AnySchema>(schema.properties ?? {})) {
    if (!child) continue;
    const key = `${prefix}${name}`;
    if (MAX_BYTES in child || MAX_KEY_LENGTH in child) out.push({ key, maxBytes: child[MAX_BYTES], maxKeyLength: child[MAX_KEY_LENGTH] });
    else if (child.type === "object") out.push(...boundedRecords(child, `${key}.`, depth + 1));
    else if (child.type === "array" && child.items?.type === "object") out.push(...boundedRecords(child.items, `${key}.*.`, depth + 1));
  }
  return out;
}

/** The values at a bounded record's key, with their concrete paths (`thread.messages.0.metadata`). */
function valuesAt(root: unknown, key: string): { path: string; value: unknown }[] {
  let found = [{ path: "", value: root }];
  for (const segment of key.split(".")) {
    found = found.flatMap(({ path, value }) => {
      if (!value || typeof value !== "object") return [];
      const join = (k: string | number) => (path ? `${path}.${k}` : String(k));
      if (segment === "*") return Array.isArray(value) ? value.map((v, i) => ({ path: join(i), value: v })) : [];
      return [{ path: join(segment), value: (value as Record<string, unknown>)[segment] }];
    });
  }
  return found;
}

/**
 * A copy of a body schema in which a number is a JSON number. Elysia's t.Integer / t.Numeric
 * are unions with a numeric *string* (for query strings); in a JSON body that let `"-0"` or
 * `"5"` pass where the document says integer. Symbol keys (TypeBox's Kind) are kept.
 */
function jsonNumbersOnly(schema: unknown, seen = new Map<object, unknown>()): unknown {
  if (!schema || typeof schema !== "object") return schema;
  if (seen.has(schema)) return seen.get(schema);
  if (Array.isArray(schema)) return schema.map((s) => jsonNumbersOnly(s, seen));
  const out: Record<string | symbol, unknown> = {};
  seen.set(schema, out);
  for (const key of Reflect.ownKeys(schema)) out[key] = jsonNumbersOnly((schema as Record<string | symbol, unknown>)[key], seen);
  const branches = out.anyOf as AnySchema[] | undefined;
  if (Array.isArray(branches) && branches.some((b) => b.type === "integer" || b.type === "number")) {
    out.anyOf = branches.filter((b) => !(b.type === "string" && (b.format === "integer" || b.format === "numeric")));
  }
  return out;
}

const isObjectSchema = (s: unknown): s is AnySchema => !!s && typeof s === "object" && (s as AnySchema).type === "object";

export function createInputContract() {
  const routes = new Map<string, RouteContract>();
  /** Each path template of the API as a pattern, with the methods it answers (405 + Allow). */
  const paths = new Map<string, { pattern: RegExp; methods: Set<string> }>();

  /** Takes the routes of the finished app (before it compiles, before the document is read). */
  function adopt(list: { method: string; path: string; hooks: { body?: unknown; query?: unknown; params?: unknown } }[], opts: { prefix?: string } = {}) {
    for (const route of list) {
      if (opts.prefix && !route.path.startsWith(opts.prefix)) continue;
      const body = route.hooks.body as AnySchema | undefined;
      const query = route.hooks.query as AnySchema | undefined;
      const params = route.hooks.params as AnySchema | undefined;
      if (body && typeof body === "object") closeObjects(body);
      const known = paths.get(route.path) ?? { pattern: pathPattern(route.path), methods: new Set<string>() };
      known.methods.add(route.method);
      paths.set(route.path, known);
      routes.set(`${route.method} ${route.path}`, {
        body: body && Kind in body ? TypeCompiler.Compile(jsonNumbersOnly(body) as TSchema) : undefined,
        bounded: boundedRecords(body),
        params: params && Kind in params ? TypeCompiler.Compile(params as TSchema) : undefined,
        query: new Set(isObjectSchema(query) ? Object.keys(query.properties ?? {}) : []),
      });
    }
  }

  /** Path parameters, then query names, then the body: 404 before 400, as SPEC §4 wants. */
  function check(method: string, route: string, url: string, params: unknown, body: unknown, hasJsonBody: boolean) {
    const q = url.indexOf("?");
    // The hot path (a GET without a query string) costs one indexOf: Elysia checks the path
    // parameters itself, and their failure is rendered as the same 404.
    if (q === -1 && !hasJsonBody) return;
    const contract = routes.get(`${method} ${route}`);
    if (!contract) return;
    if (contract.params && !contract.params.Check(params)) throw paramsError(contract.params.Errors(params), url);
    if (q !== -1) checkQuery(contract, url.slice(q + 1));
    if (hasJsonBody) checkBody(contract, body);
  }

  /** The methods the API answers on `pathname` (empty when no route has that path). */
  function allowedMethods(pathname: string): string[] {
    const methods = new Set<string>();
    for (const { pattern, methods: m } of paths.values()) if (pattern.test(pathname)) for (const x of m) methods.add(x);
    if (methods.has("GET")) methods.add("HEAD");
    return [...methods].sort();
  }

  return { adopt, check, allowedMethods };
}

/** `/v1/agents/:id` → /^\/v1\/agents\/[^/]+$/ */
function pathPattern(template: string): RegExp {
  const source = template.split("/").map((part) => (part.startsWith(":") ? "[^/]+" : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))).join("\\/");
  return new RegExp(`^${source}$`);
}
export type InputContract = ReturnType<typeof createInputContract>;

/** Ids (`id`, `memory_id` …) name what to find: a malformed one is a 404; other path values (a block label) are input, a 400. */
const isIdParam = (name: string) => name === "id" || name.endsWith("_id");

export function paramsError(errors: Iterable<ValueError>, url: string): AppError {
  const list = [...take(errors, 50)];
  if (list.some((e) => isIdParam(fieldOf(e.path)))) return notFoundPath(url);
  return validationError(list, "params");
}

function* take<T>(items: Iterable<T>, n: number): Iterable<T> {
  if (n <= 0) return;
  for (const item of items) {
    yield item;
    if (--n <= 0) return;
  }
}

function notFoundPath(url: string): AppError {
  let path = url;
  try {
    path = new URL(url).pathname;
  } catch {
    /* keep the raw url */
  }
  return new AppError(404, "not_found", `Nothing at ${path.length > 200 ? `${path.slice(0, 200)}…` : path}: an id in the path is not of the right shape or type.`);
}

function checkQuery(contract: RouteContract, search: string) {
  const unknown: UnknownParameter[] = [];
  for (const name of new URLSearchParams(search).keys()) {
    if (!contract.query.has(name) && !unknown.some((u) => u.name === name)) unknown.push({ name, path: name });
  }
  if (unknown.length) throw unknownParameters(unknown, "query");
}

function checkBody(contract: RouteContract, body: unknown) {
  if (!contract.body) {
    // A route that takes no body: every field sent is unknown (an empty object is fine).
    const names = body && typeof body === "object" ? Object.keys(body) : [];
    if (names.length) throw unknownParameters(names.map((name) => ({ name, path: name })), "body");
    return;
  }
  if (!contract.body.Check(body)) throw validationError(contract.body.Errors(body), "body");
  for (const b of contract.bounded) {
    for (const { path, value } of valuesAt(body, b.key)) {
      if (!value || typeof value !== "object") continue;
      const long = b.maxKeyLength ? Object.keys(value).find((k) => k.length > b.maxKeyLength!) : undefined;
      if (long !== undefined) throw validationFailed("body", [{ field: path, message: `keys must be at most ${b.maxKeyLength} characters (one is ${long.length})` }]);
      if (b.maxBytes && Buffer.byteLength(JSON.stringify(value)) > b.maxBytes) {
        throw validationFailed("body", [{ field: path, message: `must be at most ${b.maxBytes} bytes as JSON` }]);
      }
    }
  }
}

export function unknownParameters(unknown: UnknownParameter[], where: "body" | "query") {
  const names = unknown.map((u) => `'${u.path}'`);
  const listed = names.length > 5 ? `${names.slice(0, 5).join(", ")} and ${names.length - 5} more` : names.join(", ");
  return new AppError(400, "unknown_parameter", `Unknown ${where === "query" ? "query parameter" : "field"}${unknown.length > 1 ? "s" : ""} ${listed}; see /swagger for the accepted ones.`, {
    in: where,
    unknown: unknown.slice(0, MAX_LISTED),
  });
}

function validationFailed(where: string, fields: FieldProblem[]) {
  const first = fields[0];
  const summary = first ? `: '${first.field}' ${first.message}${fields.length > 1 ? ` (and ${fields.length - 1} more)` : ""}` : "";
  return new AppError(400, "validation_failed", `The request does not match the schema${summary}. See details.fields.`, { in: where, fields });
}

/** TypeBox errors → `unknown_parameter` when any field is unknown, else `validation_failed`. */
export function validationError(errors: Iterable<ValueError>, where: string): AppError {
  const { unknown, fields } = describeErrors(errors);
  if (unknown.length) return unknownParameters(unknown, where === "query" ? "query" : "body");
  return validationFailed(where, fields);
}

const fieldOf = (path: string) => path.replace(/^\//, "").replace(/\//g, ".").replace(/~1/g, "/").replace(/~0/g, "~") || "(root)";

/**
 * One problem per field, described by the rule it breaks; the value itself is never formatted
 * (it may be anything a client sent). A missing field is reported once, not once more for
 * its type.
 */
export function describeErrors(errors: Iterable<ValueError>): { unknown: UnknownParameter[]; fields: FieldProblem[] } {
  const unknown: UnknownParameter[] = [];
  const byField = new Map<string, FieldProblem>();
  let seen = 0;
  for (const error of errors) {
    if (++seen > 200) break;
    const field = fieldOf(error.path);
    // A union (a string or a list of messages): when only one branch is of the value's JSON
    // type, that branch's problems are the ones to tell (`input.0.role must be one of …`).
    const branch = error.type === ValueErrorType.Union ? branchOfSameType(error) : undefined;
    if (branch) {
      const inner = describeErrors(branch);
      for (const u of inner.unknown) if (unknown.length < MAX_LISTED) unknown.push(u);
      for (const f of inner.fields) if (!byField.has(f.field) && byField.size < MAX_LISTED) byField.set(f.field, f);
      continue;
    }
    if (error.type === ValueErrorType.ObjectAdditionalProperties) {
      if (unknown.length < MAX_LISTED) unknown.push({ name: field.split(".").at(-1)!, path: field });
      continue;
    }
    const problem = describeError(error, field);
    const existing = byField.get(field);
    // The required-property error comes first; the type error TypeBox adds for the same
    // (undefined) value says nothing new.
    if (existing) continue;
    if (byField.size < MAX_LISTED) byField.set(field, problem);
  }
  return { unknown, fields: [...byField.values()] };
}

const jsonTypeOf = (value: unknown) => (value === null ? "null" : Array.isArray(value) ? "array" : Number.isInteger(value) ? "integer" : typeof value);

/**
 * The errors of the one union branch whose `type` is the value's (an array or an object:
 * where nested fields have their own rules), if exactly one is. Scalar unions (Elysia's
 * numeric strings, enums) are described as a whole by `describe`.
 */
function branchOfSameType(error: ValueError): Iterable<ValueError> | undefined {
  const branches = ((error.schema as AnySchema).anyOf ?? []) as AnySchema[];
  const kind = jsonTypeOf(error.value);
  if (kind !== "array" && kind !== "object") return undefined;
  const same = branches.flatMap((b, i) => (b.type === kind ? [i] : []));
  return same.length === 1 ? error.errors[same[0]] : undefined;
}

function describeError(error: ValueError, field: string): FieldProblem {
  const schema = error.schema as AnySchema;
  switch (error.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return { field, message: `is required (${describe(schema)})` };
    case ValueErrorType.ObjectMaxProperties:
      return { field, message: `must have at most ${schema.maxProperties} keys` };
    case ValueErrorType.ObjectMinProperties:
      return { field, message: `must have at least ${schema.minProperties} keys` };
    case ValueErrorType.ArrayMaxItems:
      return { field, message: `must have at most ${schema.maxItems} items` };
    case ValueErrorType.ArrayMinItems:
      return { field, message: `must have at least ${schema.minItems} item${schema.minItems === 1 ? "" : "s"}` };
    case ValueErrorType.ArrayUniqueItems:
      return { field, message: "must not repeat items" };
    case ValueErrorType.StringPattern:
      return { field, message: `must match the pattern ${schema.pattern}` };
    case ValueErrorType.StringFormat:
      return { field, message: `must be a valid ${schema.format}` };
  }
  const allowed = allowedValues(schema);
  return { field, message: `must be ${describe(schema)} (got ${kindOf(error.value)})`, ...(allowed ? { allowed } : {}) };
}

/** What kind of value was sent, in words: safe to print whatever the value is. */
function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  switch (typeof value) {
    case "string":
      return value.length <= 40 ? JSON.stringify(value) : `a string of ${value.length} characters`;
    case "number":
      return Number.isInteger(value) ? `the integer ${value}` : Number.isFinite(value) ? `the number ${value}` : "a non-finite number";
    case "boolean":
      return value ? "true" : "false";
    case "object":
      return "an object";
    case "undefined":
      return "nothing";
  }
  return typeof value;
}

/** The constants an enum or a union of literals allows. */
function allowedValues(schema: AnySchema): unknown[] | undefined {
  if (Array.isArray(schema.enum)) return schema.enum;
  if ("const" in schema) return [schema.const];
  if (Array.isArray(schema.anyOf) && schema.anyOf.length && schema.anyOf.every((s: AnySchema) => "const" in s || Array.isArray(s.enum))) {
    return schema.anyOf.flatMap((s: AnySchema) => ("const" in s ? [s.const] : s.enum));
  }
  return undefined;
}

const quoteAll = (values: unknown[]) => values.map((v) => JSON.stringify(v)).join(", ");

function range(schema: AnySchema, unit = "") {
  const min = schema.minimum ?? schema.exclusiveMinimum;
  const max = schema.maximum ?? schema.exclusiveMaximum;
  const lo = schema.exclusiveMinimum !== undefined ? `> ${min}` : `≥ ${min}`;
  const hi = schema.exclusiveMaximum !== undefined ? `< ${max}` : `≤ ${max}`;
  if (min !== undefined && max !== undefined && schema.exclusiveMinimum === undefined && schema.exclusiveMaximum === undefined) return ` from ${min} to ${max}${unit}`;
  if (min !== undefined && max !== undefined) return ` ${lo} and ${hi}${unit}`;
  if (min !== undefined) return ` ${lo}${unit}`;
  if (max !== undefined) return ` ${hi}${unit}`;
  return "";
}

/** The rule a schema states, in words: "an integer from 1 to 100", "one of: \"asc\", \"desc\"". */
export function describe(schema: AnySchema | undefined): string {
  if (!schema) return "a valid value";
  const allowed = allowedValues(schema);
  if (allowed) return allowed.length === 1 ? JSON.stringify(allowed[0]) : `one of: ${quoteAll(allowed)}`;
  if (Array.isArray(schema.anyOf)) {
    const branches = schema.anyOf as AnySchema[];
    const numeric = branches.some((b) => b.type === "integer" || b.type === "number");
    // Elysia's t.Integer/t.Numeric accept a numeric string too: the numeric branch says it all.
    const relevant = branches.filter((b) => !(numeric && b.type === "string" && (b.format === "integer" || b.format === "numeric")));
    return [...new Set(relevant.map(describe))].join(" or ");
  }
  switch (schema.type) {
    case "integer":
      return `an integer${range(schema)}`;
    case "number":
      return `a number${range(schema)}`;
    case "boolean":
      return "true or false";
    case "null":
      return "null";
    case "array":
      return `an array${schema.maxItems !== undefined ? ` of at most ${schema.maxItems} items` : ""}${schema.items ? ` of ${describe(schema.items)}` : ""}`;
    case "object":
      return "an object";
    case "string": {
      if (schema.format === "integer") return "an integer";
      if (schema.format === "numeric") return "a number";
      if (schema.format) return `a string in ${schema.format} format`;
      const min = schema.minLength;
      const max = schema.maxLength;
      const length = min && max ? ` of ${min} to ${max} characters` : max !== undefined ? ` of at most ${max} characters` : min ? ` of at least ${min} character${min === 1 ? "" : "s"}` : "";
      return `a string${length}${schema.pattern ? ` matching ${schema.pattern}` : ""}`;
    }
  }
  if (schema[Kind] === "Any" || schema[Kind] === "Unknown") return "any value";
  return "a valid value";
}
