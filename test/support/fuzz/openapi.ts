/**
 * The OpenAPI 3.1 document as the fuzz sees it: every operation with its parameters, JSON
 * request body and documented responses ($refs resolved), plus ajv validators compiled from
 * those schemas — the oracle that classifies generated input and checks every reply.
 */
import Ajv, { type ValidateFunction } from "ajv";
import addFormats from "ajv-formats";
import type { JsonSchema } from "./schema-arbitrary";

export interface Parameter {
  name: string;
  in: "path" | "query" | "header" | "cookie";
  required: boolean;
  schema: JsonSchema;
}

export interface Operation {
  method: string;
  /** The document's template, e.g. /v1/tools/{id}. */
  path: string;
  key: string;
  params: Parameter[];
  /** The application/json request body schema, when the operation takes a body. */
  body?: JsonSchema;
  bodyRequired: boolean;
  /** Other content types the document claims the operation accepts. */
  otherBodyTypes: string[];
  /** Documented statuses → the JSON schema of the reply (undefined: no content documented). */
  responses: Map<number, JsonSchema | undefined>;
  authenticated: boolean;
  /** Set by calibration: the route answers 401 to a valid request without credentials. */
  strictAuth?: boolean;
}

export const ERROR_SHAPE: JsonSchema = {
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["code", "message", "request_id"],
      properties: { code: { type: "string", pattern: "^[a-z][a-z0-9_]*$" }, message: { type: "string", minLength: 1 }, request_id: { type: "string", minLength: 1 } },
    },
  },
};

function deref(doc: any, schema: any, seen = new Set<string>()): any {
  if (Array.isArray(schema)) return schema.map((s) => deref(doc, s, seen));
  if (!schema || typeof schema !== "object") return schema;
  if (typeof schema.$ref === "string") {
    if (seen.has(schema.$ref)) return {};
    const target = schema.$ref.replace(/^#\//, "").split("/").reduce((o: any, k: string) => o?.[k.replace(/~1/g, "/").replace(/~0/g, "~")], doc);
    return normalize(deref(doc, target ?? {}, new Set([...seen, schema.$ref])));
  }
  const out: any = {};
  for (const [k, v] of Object.entries(schema)) out[k] = deref(doc, v, seen);
  return normalize(out);
}

/** OpenAPI 3.0's `nullable` without a `type` (ajv refuses it) → anyOf [schema, null]. */
function normalize(schema: any): any {
  if (Array.isArray(schema)) return schema.map(normalize);
  if (!schema || typeof schema !== "object") return schema;
  const out: any = {};
  for (const [k, v] of Object.entries(schema)) out[k] = normalize(v);
  if (out.nullable === true && out.type === undefined) {
    const { nullable: _n, description, ...rest } = out;
    return { ...(description ? { description } : {}), anyOf: [rest, { type: "null" }] };
  }
  return out;
}

const METHODS = ["get", "post", "put", "patch", "delete"];

export function operationsOf(doc: any): Operation[] {
  const ops: Operation[] = [];
  const globalSecurity = Array.isArray(doc.security) && doc.security.length > 0;
  for (const [path, item] of Object.entries<any>(doc.paths ?? {})) {
    for (const method of METHODS) {
      const op = item[method];
      // A WebSocket upgrade (101, GET /v1/ws) is not an HTTP operation to fuzz or contract-check.
      if (!op || op.responses?.["101"]) continue;
      const params: Parameter[] = [...(item.parameters ?? []), ...(op.parameters ?? [])].map((p: any) => {
        const r = deref(doc, p);
        return { name: r.name, in: r.in, required: !!r.required, schema: r.schema ?? {} };
      });
      const content = op.requestBody ? deref(doc, op.requestBody).content ?? {} : {};
      const responses = new Map<number, JsonSchema | undefined>();
      for (const [status, resp] of Object.entries<any>(op.responses ?? {})) {
        const r = deref(doc, resp);
        const code = Number(status);
        if (Number.isInteger(code)) responses.set(code, r?.content?.["application/json"]?.schema);
      }
      const security = op.security ?? (globalSecurity ? doc.security : []);
      ops.push({
        method: method.toUpperCase(),
        path,
        key: `${method.toUpperCase()} ${path}`,
        params,
        body: content["application/json"]?.schema,
        bodyRequired: !!op.requestBody?.required,
        otherBodyTypes: Object.keys(content).filter((c) => c !== "application/json"),
        responses,
        authenticated: path.startsWith("/v1/") && Array.isArray(security) && security.length > 0,
      });
    }
  }
  return ops;
}

/** Ajv for the document's dialect: TypeBox's `format: "integer"` strings, OpenAPI's `nullable`. */
export function createAjv(opts: { coerceTypes?: boolean; useDefaults?: boolean } = {}): Ajv {
  const ajv = new Ajv({ strict: false, allErrors: false, validateFormats: true, coerceTypes: opts.coerceTypes ?? false, useDefaults: opts.useDefaults ?? false });
  addFormats(ajv);
  ajv.addFormat("integer", /^-?\d+$/);
  ajv.addFormat("numeric", /^-?\d+(\.\d+)?$/);
  return ajv;
}

/** Caches compiled validators by schema identity. */
export class Validators {
  private cache = new WeakMap<object, ValidateFunction>();
  constructor(private ajv: Ajv) {}
  get(schema: JsonSchema): ValidateFunction {
    let v = this.cache.get(schema);
    if (!v) {
      v = this.ajv.compile(schema);
      this.cache.set(schema, v);
    }
    return v;
  }
  errors(schema: JsonSchema, value: unknown): string | null {
    const v = this.get(schema);
    return v(value) ? null : this.ajv.errorsText(v.errors, { separator: "; " });
  }
}

/** "/v1/agents/{id}/memories/{memory_id}" → ["id", "memory_id"]. */
export function pathParamNames(path: string): string[] {
  return [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
}

/** The collection a path parameter names: "/v1/agents/{id}/memories/{memory_id}", "memory_id" → "/v1/agents/{id}/memories". */
export function collectionOf(path: string, param: string): string | undefined {
  const i = path.indexOf(`/{${param}}`);
  return i > 0 ? path.slice(0, i) : undefined;
}

export function lastSegment(path: string): string {
  return path.split("/").filter(Boolean).pop() ?? "";
}
