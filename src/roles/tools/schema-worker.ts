/**
 * The schema thread: checks tool parameter schemas (limits, RE2 patterns, draft-07 or 2020-12), compiles
 * them with ajv and validates arguments against them — all of it user-controlled CPU work (a
 * large schema compiles for hundreds of ms) kept off the event loop that serves requests.
 * Validators are cached per tool version. Built into the binary as a second entry point
 * (scripts/build.ts); the protocol is in schemas.ts.
 */
import { dlopen, FFIType } from "bun:ffi";
import Ajv, { type ValidateFunction } from "ajv";
import Ajv2020 from "ajv/dist/2020";
import addFormats from "ajv-formats";
import { fullFormats } from "ajv-formats/dist/formats";
import { AJV_OPTIONS, checkSchemaShape, dialectOf, MAX_FORMAT_INPUT, SCHEMA_DIALECTS, SLOW_FORMATS, type SchemaDialect } from "./schema-engine";
import type { SchemaReply, SchemaRequest } from "./schemas";

declare const self: Worker;

/**
 * Lowers this thread's CPU priority (Linux: `setpriority` on the calling thread): on a busy
 * machine a long compile here must not take CPU time from the thread that serves requests.
 */
function yieldCpuToRequests() {
  try {
    const libc = dlopen(process.platform === "darwin" ? "libc.dylib" : "libc.so.6", { setpriority: { args: [FFIType.i32, FFIType.u32, FFIType.i32], returns: FFIType.i32 } });
    libc.symbols.setpriority(0 /* PRIO_PROCESS */, 0 /* this thread */, 10);
  } catch {
    // No libc to call (another platform): the thread keeps the process's priority.
  }
}
yieldCpuToRequests();

/** One ajv instance per dialect, each with the same formats and the same bounded slow formats. */
function withFormats<T extends Ajv>(ajv: T): T {
  addFormats(ajv);
  // These formats' regexes grow faster than linearly on long input (uri: ~1 s for 100 kB): longer strings fail them.
  for (const name of SLOW_FORMATS) {
    const format = fullFormats[name] as RegExp | ((s: string) => boolean);
    const test = typeof format === "function" ? format : (s: string) => format.test(s);
    ajv.addFormat(name, (s: string) => s.length <= MAX_FORMAT_INPUT && test(s));
  }
  return ajv;
}
const engines: Record<SchemaDialect, Ajv> = { "draft-07": withFormats(new Ajv(AJV_OPTIONS)), "2020-12": withFormats(new Ajv2020(AJV_OPTIONS)) };

const MAX_CACHED = 2000;
const validators = new Map<string, ValidateFunction>();

/** The validator of `schema`, or the reason it is refused. */
function compile(schema: Record<string, unknown>): ValidateFunction | string {
  const problem = checkSchemaShape(schema);
  if (problem) return problem;
  const dialect = dialectOf(schema.$schema);
  if (!dialect) return `\`parameters.$schema\` must be ${SCHEMA_DIALECTS.map((d) => `'${d.uri}'`).join(" or ")} (or absent: draft-07).`;
  const ajv = engines[dialect];
  try {
    return ajv.compile(schema);
  } catch (err) {
    return `\`parameters\` is not a valid JSON Schema: ${(err as Error).message}`;
  } finally {
    ajv.removeSchema(schema); // ajv caches by schema object, and every schema here is a new one
  }
}

function cached(key: string, schema: Record<string, unknown>): ValidateFunction | string {
  const known = validators.get(key);
  if (known) return known;
  const v = compile(schema);
  if (typeof v === "string") return v;
  if (validators.size >= MAX_CACHED) validators.delete(validators.keys().next().value as string);
  validators.set(key, v);
  return v;
}

function handle(req: SchemaRequest): SchemaReply {
  if (req.op === "check") {
    const v = compile(req.schema);
    return typeof v === "string" ? { id: req.id, error: v } : { id: req.id };
  }
  const v = cached(req.key, req.schema);
  if (typeof v === "string") return { id: req.id, error: v };
  const valid = v(req.args) as boolean;
  // useDefaults fills defaults into the arguments: they travel back.
  return valid ? { id: req.id, valid, args: req.args } : { id: req.id, valid, message: engines["draft-07"].errorsText(v.errors, { dataVar: req.dataVar ?? "arguments", separator: "; " }) };
}

self.onmessage = (event: MessageEvent<SchemaRequest>) => {
  try {
    self.postMessage(handle(event.data));
  } catch (err) {
    self.postMessage({ id: event.data.id, error: `the schema could not be used: ${(err as Error).message}` } satisfies SchemaReply);
  }
};
