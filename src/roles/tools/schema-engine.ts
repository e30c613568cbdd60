/**
 * The schema engine of the compiler thread (schema-worker.ts): ajv's options, the linear-time
 * regex engine for `pattern`/`patternProperties` (re2js: no user pattern can backtrack, so
 * `^(a+)+$` costs O(n)), and the limits of a tool's parameters schema.
 */
import type { Options } from "ajv";
import { RE2JS } from "re2js";

/** Limits of a parameters schema, checked before it is compiled (compile time grows with them). */
export const SCHEMA_LIMITS = {
  /** JSON text of the schema, in bytes. */
  bytes: 64 * 1024,
  /** Nesting of objects and arrays. */
  depth: 32,
  /** Sum of the `properties` and `patternProperties` entries over the whole schema. */
  properties: 1000,
  /** Objects and arrays in the schema. */
  nodes: 5000,
  /** RE2 program size of one pattern (matching costs up to this many steps per character). */
  patternProgram: 1000,
};

/** `format`s checked by regexes that are not linear on long input, and the longest string they are run on. */
export const SLOW_FORMATS = ["uri", "uri-reference", "uri-template", "url", "regex", "email", "hostname", "relative-json-pointer"] as const;
export const MAX_FORMAT_INPUT = 16 * 1024;

/** JavaScript escapes RE2 does not know, rewritten to its syntax: `\uXXXX` and `\u{X…}` become `\x{…}`. */
export function toRe2Syntax(pattern: string): string {
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c !== "\\") {
      out += c;
      continue;
    }
    const rest = pattern.slice(i + 1, i + 12);
    const fixed = /^u([0-9A-Fa-f]{4})/.exec(rest) ?? /^u\{([0-9A-Fa-f]{1,6})\}/.exec(rest);
    if (fixed) {
      out += `\\x{${fixed[1]}}`;
      i += fixed[0].length;
    } else {
      out += c + (pattern[i + 1] ?? "");
      i++;
    }
  }
  return out;
}

/** ajv's RegExpEngine on re2js: `test` is an unanchored search, like RegExp's. */
export function re2RegExp(pattern: string, _flags?: string): { test(s: string): boolean; toString(): string } {
  const compiled = RE2JS.compile(toRe2Syntax(pattern));
  // ajv keys its cache of compiled patterns by toString(): it must differ per pattern.
  return { test: (s: string) => compiled.test(s), toString: () => `re2:${pattern}` };
}
re2RegExp.code = "re2RegExp"; // only read by ajv's standalone code generator, which is not used

/**
 * The JSON Schema dialects a parameters schema may use, chosen by its `$schema`: draft-07 (the
 * default when `$schema` is absent, as OpenAI function schemas are written) or 2020-12 (MCP's
 * default; `prefixItems`, `$defs`, `dependentRequired`, `unevaluatedProperties`…).
 */
export const SCHEMA_DIALECTS = [
  { dialect: "draft-07", uri: "http://json-schema.org/draft-07/schema#" },
  { dialect: "2020-12", uri: "https://json-schema.org/draft/2020-12/schema" },
] as const;
export type SchemaDialect = (typeof SCHEMA_DIALECTS)[number]["dialect"];

/** The dialect a `$schema` value names (absent: draft-07), or null for any other. A trailing `#` and http/https do not matter. */
export function dialectOf($schema: unknown): SchemaDialect | null {
  if ($schema === undefined) return "draft-07";
  if (typeof $schema !== "string") return null;
  const norm = (u: string) => u.replace(/^https?:\/\//, "").replace(/#$/, "");
  return SCHEMA_DIALECTS.find((d) => norm(d.uri) === norm($schema))?.dialect ?? null;
}

/** ajv's options (on the compiler thread). */
export const AJV_OPTIONS: Options = {
  // strict: false so vendor keywords ("x-…", "example") found in real tool schemas are tolerated;
  // the schema is still checked against its dialect's meta-schema. addUsedSchema: false keeps
  // user `$id`s out of the shared instance (two tools may use the same $id).
  allErrors: true,
  strict: false,
  addUsedSchema: false,
  useDefaults: true,
  code: { regExp: re2RegExp },
};

/** Why `schema` is over a limit or has a pattern RE2 cannot run (naming where), or null. */
export function checkSchemaShape(schema: unknown): string | null {
  let nodes = 0;
  let properties = 0;
  const visit = (value: unknown, path: string, depth: number): string | null => {
    if (value === null || typeof value !== "object") return null;
    if (depth > SCHEMA_LIMITS.depth) return `\`${path}\` is nested deeper than ${SCHEMA_LIMITS.depth} levels.`;
    if (++nodes > SCHEMA_LIMITS.nodes) return `\`parameters\` has more than ${SCHEMA_LIMITS.nodes} objects and arrays.`;
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const problem = visit(value[i], `${path}[${i}]`, depth + 1);
        if (problem) return problem;
      }
      return null;
    }
    const node = value as Record<string, unknown>;
    for (const [key, child] of Object.entries(node)) {
      const at = `${path}.${key}`;
      // Data, not schema: a `pattern` key inside an enum value is not a regex.
      if (key === "enum" || key === "const" || key === "default" || key === "examples") {
        if (typeof child === "object" && child !== null && ++nodes > SCHEMA_LIMITS.nodes) return `\`parameters\` has more than ${SCHEMA_LIMITS.nodes} objects and arrays.`;
        continue;
      }
      if (key === "pattern" && typeof child === "string") {
        const problem = re2Problem(child);
        if (problem) return `\`${at}\` ${problem}`;
        continue;
      }
      if ((key === "properties" || key === "patternProperties") && child && typeof child === "object" && !Array.isArray(child)) {
        const names = Object.keys(child);
        properties += names.length;
        if (properties > SCHEMA_LIMITS.properties) return `\`parameters\` has more than ${SCHEMA_LIMITS.properties} properties in all.`;
        if (key === "patternProperties") {
          for (const name of names) {
            const problem = re2Problem(name);
            if (problem) return `\`${at}\` key '${name.slice(0, 100)}' ${problem}`;
          }
        }
      }
      const problem = visit(child, at, depth + 1);
      if (problem) return problem;
    }
    return null;
  };
  return visit(schema, "parameters", 0);
}

function re2Problem(pattern: string): string | null {
  try {
    const size = RE2JS.compile(toRe2Syntax(pattern)).programSize();
    return size > SCHEMA_LIMITS.patternProgram ? `is too complex (RE2 program size ${size}, the limit is ${SCHEMA_LIMITS.patternProgram}).` : null;
  } catch (err) {
    return `is not a pattern AgentOS can run in linear time (RE2 syntax: no backreferences or lookaround): ${(err as Error).message}.`;
  }
}
