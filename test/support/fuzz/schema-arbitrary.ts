/**
 * JSON Schema (the subset TypeBox/Elysia put into the OpenAPI document) → fast-check arbitrary
 * of values meant to be VALID. "Meant to": patterns, formats and combinations are approximated,
 * so the fuzz never trusts this generator as the oracle — every generated body is classified
 * with ajv against the documented schema before its reply is judged.
 *
 * Realism hints (what Schemathesis gets from `examples`): `examples`/`default`/`const` values,
 * enumerations written in a description as `a | b | c`, and properties named `<thing>_id(s)` or
 * `<things>` (arrays of strings) filled with ids of resources the test created.
 */
import fc from "fast-check";

export type JsonSchema = Record<string, any>;

export interface ArbitraryContext {
  /** Ids the caller's organization owns, keyed by collection name ("tools", "agents", …). */
  idsFor(collection: string): string[];
  /** Every collection name the document has a POST for. */
  collections: Set<string>;
  /**
   * Integers as JSON numbers only. TypeBox documents t.Integer as anyOf [integer, string of
   * digits]; the string branch carries no bounds, so "0" is "valid" by the document while the
   * server (rightly) checks the bounds. Bodies that must be accepted use typed numbers.
   */
  typedNumbers?: boolean;
  /** Base of every generated URL (a local sink): the fuzz never makes the server call out. */
  urlBase?: string;
}

const URL_PROPERTY = /(^|_)(url|uri|endpoint|callback|webhook)$/i;

const isNumericString = (s: JsonSchema) => s.type === "string" && (s.format === "integer" || s.format === "numeric");

const MAX_DEPTH = 4;

/** `foo_id` → "foos", `foo_ids` → "foos", `tools` → "tools" when a collection has that name. */
export function collectionHint(property: string, ctx: ArbitraryContext): string | undefined {
  const base = property.replace(/_ids?$/, "");
  if (base === property && !ctx.collections.has(property)) return undefined;
  for (const name of [base, `${base}s`, `${base}es`, base.replace(/y$/, "ies")]) if (ctx.collections.has(name)) return name;
  return undefined;
}

/** "http | nats | client" in a description → ["http", "nats", "client"]. */
export function descriptionChoices(description: unknown): string[] {
  if (typeof description !== "string") return [];
  const m = /(?:^|[:(]\s*)([a-z][\w.-]*(?:\s*\|\s*[a-z][\w.-]*)+)/i.exec(description);
  return m ? m[1].split("|").map((s) => s.trim()).filter(Boolean) : [];
}

function typesOf(schema: JsonSchema): string[] {
  if (Array.isArray(schema.type)) return schema.type;
  if (typeof schema.type === "string") return [schema.type];
  if (schema.properties || schema.patternProperties || schema.additionalProperties) return ["object"];
  if (schema.items) return ["array"];
  return [];
}

function stringArb(schema: JsonSchema, hintIds: string[], property = "", urlBase?: string): fc.Arbitrary<string> {
  if (urlBase && (URL_PROPERTY.test(property) || schema.format === "uri" || schema.format === "url")) {
    return fc.stringMatching(/^[a-z0-9]{1,12}$/).map((p) => `${urlBase}/${p}`);
  }
  const minLength = schema.minLength ?? 0;
  const maxLength = Math.min(schema.maxLength ?? 40, Math.max(minLength, 40));
  const fits = (s: string) => s.length >= (schema.minLength ?? 0) && s.length <= (schema.maxLength ?? Infinity);
  const options: fc.Arbitrary<string>[] = [];
  const choices = descriptionChoices(schema.description).filter(fits);
  if (hintIds.length) options.push(fc.constantFrom(...hintIds));
  if (choices.length) options.push(fc.constantFrom(...choices));
  switch (schema.format) {
    case "email":
      options.push(fc.emailAddress().filter((e) => e.length <= (schema.maxLength ?? 254)));
      break;
    case "date-time":
      options.push(fc.date({ min: new Date("2000-01-01"), max: new Date("2100-01-01"), noInvalidDate: true }).map((d) => d.toISOString()));
      break;
    case "date":
      options.push(fc.date({ min: new Date("2000-01-01"), max: new Date("2100-01-01"), noInvalidDate: true }).map((d) => d.toISOString().slice(0, 10)));
      break;
    case "uri":
    case "url":
      options.push(fc.webUrl().filter(fits));
      break;
    case "uuid":
      options.push(fc.uuid());
      break;
    case "integer":
      options.push(fc.integer({ min: -1000, max: 100_000 }).map(String));
      break;
    default:
      if (typeof schema.pattern === "string") {
        let re: RegExp | undefined;
        try {
          re = new RegExp(schema.pattern);
        } catch {
          re = undefined;
        }
        if (re) options.push(fc.stringMatching(re).filter(fits));
      }
  }
  if (options.length === 0 || (choices.length === 0 && !schema.format && !schema.pattern && !hintIds.length)) {
    options.push(fc.string({ minLength, maxLength, unit: "grapheme-ascii" }));
    options.push(fc.string({ minLength, maxLength, unit: "grapheme" }).filter(fits));
  }
  return fc.oneof(...options);
}

function numberArb(schema: JsonSchema, integer: boolean): fc.Arbitrary<number> {
  const lo = schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum + (integer ? 1 : 1e-9) : schema.minimum;
  const hi = schema.exclusiveMaximum !== undefined ? schema.exclusiveMaximum - (integer ? 1 : 1e-9) : schema.maximum;
  const min = lo ?? (hi !== undefined ? hi - 1_000_000 : -1_000_000);
  const max = hi ?? min + 2_000_000;
  if (integer) {
    const around = fc.integer({ min: Math.ceil(min), max: Math.floor(max) });
    const edges = [min, max].filter((v) => Number.isFinite(v)).map((v) => Math.round(v));
    return edges.length ? fc.oneof(around, fc.constantFrom(...edges)) : around;
  }
  return fc.double({ min, max, noNaN: true, noDefaultInfinity: true });
}

/** An arbitrary of values valid for `schema` (best effort; see the module comment). */
export function validArbitrary(schema: JsonSchema | undefined, ctx: ArbitraryContext, property = "", depth = 0): fc.Arbitrary<unknown> {
  if (!schema || typeof schema !== "object" || Object.keys(schema).length === 0) return depth >= MAX_DEPTH ? fc.constant(null) : anyJson();
  if ("const" in schema) return fc.constant(schema.const);
  if (Array.isArray(schema.enum) && schema.enum.length) return fc.constantFrom(...schema.enum);
  const literal: unknown[] = [...(Array.isArray(schema.examples) ? schema.examples : []), ...("default" in schema ? [schema.default] : [])];
  let branches: JsonSchema[] | undefined = schema.anyOf ?? schema.oneOf;
  if (ctx.typedNumbers && branches && branches.some((b) => !isNumericString(b))) branches = branches.filter((b) => !isNumericString(b));
  if (Array.isArray(branches) && branches.length) {
    const { anyOf: _a, oneOf: _o, ...rest } = schema;
    return fc.oneof(...branches.map((b: JsonSchema) => validArbitrary({ ...rest, ...b }, ctx, property, depth)));
  }
  if (Array.isArray(schema.allOf) && schema.allOf.length) return validArbitrary(mergeAllOf(schema), ctx, property, depth);

  const types = typesOf(schema);
  const arbs: fc.Arbitrary<unknown>[] = [];
  const hint = collectionHint(property, ctx);
  const hintIds = hint ? ctx.idsFor(hint) : [];
  for (const type of types.length ? types : ["string", "number", "boolean", "object"]) {
    switch (type) {
      case "string":
        arbs.push(stringArb(schema, hintIds, property, ctx.urlBase));
        break;
      case "integer":
        arbs.push(numberArb(schema, true));
        break;
      case "number":
        arbs.push(numberArb(schema, false));
        break;
      case "boolean":
        arbs.push(fc.boolean());
        break;
      case "null":
        arbs.push(fc.constant(null));
        break;
      case "array":
        arbs.push(arrayArb(schema, ctx, property, depth, hintIds));
        break;
      case "object":
        arbs.push(objectArb(schema, ctx, depth));
        break;
    }
  }
  if (schema.nullable === true) arbs.push(fc.constant(null));
  if (literal.length) arbs.push(fc.constantFrom(...literal));
  return arbs.length === 1 ? arbs[0] : fc.oneof(...arbs);
}

function arrayArb(schema: JsonSchema, ctx: ArbitraryContext, property: string, depth: number, hintIds: string[]) {
  const minLength = schema.minItems ?? 0;
  const maxLength = Math.min(schema.maxItems ?? 4, Math.max(minLength, 4));
  if (hintIds.length && (schema.items?.type === "string" || !schema.items)) {
    return fc.subarray(hintIds, { minLength: Math.min(minLength, hintIds.length), maxLength: Math.min(maxLength, hintIds.length) });
  }
  if (depth >= MAX_DEPTH) return fc.constant([]);
  const item = validArbitrary(schema.items, ctx, property, depth + 1);
  return fc.array(item, { minLength, maxLength, ...(schema.uniqueItems ? {} : {}) }).map((a) => (schema.uniqueItems ? [...new Set(a.map((x) => JSON.stringify(x)))].map((x) => JSON.parse(x)) : a));
}

function objectArb(schema: JsonSchema, ctx: ArbitraryContext, depth: number): fc.Arbitrary<unknown> {
  const props: Record<string, JsonSchema> = schema.properties ?? {};
  const required = new Set<string>(schema.required ?? []);
  if (depth >= MAX_DEPTH) {
    const onlyRequired: Record<string, fc.Arbitrary<unknown>> = {};
    for (const key of required) onlyRequired[key] = validArbitrary(props[key], ctx, key, depth + 1);
    return fc.record(onlyRequired);
  }
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [key, sub] of Object.entries(props)) model[key] = validArbitrary(sub, ctx, key, depth + 1);
  const known = fc.record(model, { requiredKeys: [...required].filter((k) => k in model) });
  const free = schema.patternProperties || (schema.additionalProperties && schema.additionalProperties !== false);
  if (!free || Object.keys(props).length) return known;
  if (/json schema/i.test(String(schema.description ?? ""))) return jsonSchemaArb();
  // A free-form map (metadata, JSON Schema parameters, config): small JSON objects.
  const valueSchema = schema.additionalProperties && typeof schema.additionalProperties === "object" ? schema.additionalProperties : (Object.values(schema.patternProperties ?? {})[0] as JsonSchema | undefined);
  return fc.dictionary(fc.string({ minLength: 1, maxLength: 12, unit: "grapheme-ascii" }), validArbitrary(valueSchema, ctx, "", depth + 1), { maxKeys: 4 });
}

function mergeAllOf(schema: JsonSchema): JsonSchema {
  const { allOf, ...rest } = schema;
  const merged: JsonSchema = { ...rest, properties: { ...(rest.properties ?? {}) }, required: [...(rest.required ?? [])] };
  for (const part of allOf as JsonSchema[]) {
    Object.assign(merged.properties, part.properties ?? {});
    merged.required.push(...(part.required ?? []));
    for (const [k, v] of Object.entries(part)) if (!["properties", "required"].includes(k) && !(k in merged)) merged[k] = v;
  }
  if (!merged.type && Object.keys(merged.properties).length) merged.type = "object";
  return merged;
}

/** Small arbitrary JSON values (free-form fields). */
export function anyJson(): fc.Arbitrary<unknown> {
  return fc.jsonValue({ maxDepth: 2 });
}

/** A small JSON Schema of an object (for fields documented as holding one, e.g. tool parameters). */
export function jsonSchemaArb(): fc.Arbitrary<unknown> {
  const prop = fc.oneof(
    fc.constant({ type: "string" }),
    fc.constant({ type: "integer", minimum: 0 }),
    fc.constant({ type: "number" }),
    fc.constant({ type: "boolean" }),
    fc.constant({ type: "string", enum: ["a", "b"] }),
    fc.constant({ type: "array", items: { type: "string" } }),
  );
  return fc
    .dictionary(fc.stringMatching(/^[a-z][a-z0-9_]{0,11}$/), prop, { minKeys: 1, maxKeys: 4 })
    .chain((properties) => fc.subarray(Object.keys(properties)).map((required) => ({ type: "object", properties, required })));
}
