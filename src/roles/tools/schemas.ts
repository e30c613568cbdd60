/**
 * JSON Schema for tool arguments (ajv, draft-07 + formats). A schema is compiled once at
 * registration to reject invalid ones with the reason, and the compiled validator is cached
 * per tool version (id + updated_at) so a call costs one function call.
 */
import Ajv, { type ValidateFunction } from "ajv";
import addFormats from "ajv-formats";
import { badRequest } from "../../platform/errors";

// strict: false so vendor keywords ("x-…", "example") found in real tool schemas are tolerated;
// the schema is still checked against the draft-07 meta-schema. addUsedSchema: false keeps
// user `$id`s out of the shared instance (two tools may use the same $id).
const ajv = new Ajv({ allErrors: true, strict: false, addUsedSchema: false, useDefaults: true });
addFormats(ajv);

const MAX_CACHED = 2000;
const cache = new Map<string, ValidateFunction>();

/** Compiles `schema` or throws 400 `invalid_parameters_schema` with ajv's reason. */
export function compileParameters(schema: Record<string, unknown>): ValidateFunction {
  if (schema === null || typeof schema !== "object" || Array.isArray(schema)) {
    throw badRequest("invalid_parameters_schema", "`parameters` must be a JSON Schema object.");
  }
  if (schema.type !== "object") {
    throw badRequest("invalid_parameters_schema", '`parameters` must be an object schema (`"type": "object"`, with `properties`): models pass arguments as a JSON object.');
  }
  try {
    return ajv.compile(schema);
  } catch (err) {
    throw badRequest("invalid_parameters_schema", `\`parameters\` is not a valid JSON Schema: ${(err as Error).message}`);
  }
}

/** The cached validator of one version of a tool's schema. */
export function validatorFor(key: string, schema: Record<string, unknown>): ValidateFunction {
  let v = cache.get(key);
  if (v) return v;
  v = compileParameters(schema);
  if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value as string);
  cache.set(key, v);
  return v;
}

/** Human-readable ajv errors, e.g. "arguments must have required property 'city'". */
export function describeErrors(v: ValidateFunction): string {
  return ajv.errorsText(v.errors, { dataVar: "arguments", separator: "; " });
}
