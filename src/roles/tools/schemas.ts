/**
 * JSON Schema for tool arguments (ajv, draft-07 or 2020-12 by `$schema`, + formats; `pattern` and `patternProperties`
 * on re2js, in linear time). Everything a schema costs — its checks at registration (limits,
 * RE2 syntax, the meta-schema), its compilation, each validation — runs on one worker thread
 * (schema-worker.ts), bounded in time, so no schema or argument a tenant sends stalls the
 * event loop. The worker caches validators per tool version (id + updated_at).
 */
import { COMPILED } from "../../platform/compiled";
import { badRequest } from "../../platform/errors";
import { SCHEMA_LIMITS } from "./schema-engine";

type Job =
  | { op: "check"; schema: Record<string, unknown> }
  | { op: "validate"; key: string; schema: Record<string, unknown>; args: Record<string, unknown>; dataVar?: string };
export type SchemaRequest = Job & { id: number };
export type SchemaReply = { id: number; error?: string; valid?: boolean; args?: Record<string, unknown>; message?: string };

/** Bounds of one job on the worker; past it the worker is replaced (its other jobs retried) and the job refused. */
const CHECK_TIMEOUT_MS = 10_000;
const VALIDATE_TIMEOUT_MS = 2_000;

type Pending = { resolve: (r: SchemaReply) => void; reject: (err: Error) => void; timer: ReturnType<typeof setTimeout> };
class Replaced extends Error {}

/**
 * Where the worker's module is: beside this file when run from source; inside the compiled
 * binary, the extra entry point that scripts/build.ts embeds (its path under the build root `src`).
 */
const WORKER_MODULE = COMPILED ? "/$bunfs/root/roles/tools/schema-worker.js" : new URL("./schema-worker.ts", import.meta.url).href;

/** The schema thread, started on first use and replaced when a job overruns. */
class SchemaThread {
  private worker: Worker | undefined;
  private pending = new Map<number, Pending>();
  private nextId = 1;

  /** Runs `job`; retried once when another job's overrun replaced the worker under it. */
  async run(job: Job, timeoutMs: number, onTimeout: () => Error): Promise<SchemaReply> {
    try {
      return await this.send(job, timeoutMs, onTimeout);
    } catch (err) {
      if (!(err instanceof Replaced)) throw err;
      return this.send(job, timeoutMs, onTimeout);
    }
  }

  private send(job: Job, timeoutMs: number, onTimeout: () => Error): Promise<SchemaReply> {
    const worker = this.ensureWorker();
    const id = this.nextId++;
    return new Promise<SchemaReply>((resolve, reject) => {
      const timer = setTimeout(() => this.replace(id, onTimeout()), timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      worker.postMessage({ ...job, id });
    });
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(WORKER_MODULE);
    worker.unref(); // never keeps the process alive
    worker.onmessage = (event: MessageEvent<SchemaReply>) => {
      const p = this.pending.get(event.data.id);
      if (!p) return;
      this.pending.delete(event.data.id);
      clearTimeout(p.timer);
      p.resolve(event.data);
    };
    worker.onerror = (event) => this.replace(undefined, new Error(`the schema thread failed: ${event.message}`));
    this.worker = worker;
    return worker;
  }

  /** Ends the worker: job `culprit` fails with `err`, the others get Replaced (and are retried). */
  private replace(culprit: number | undefined, err: Error) {
    this.worker?.terminate();
    this.worker = undefined;
    const pending = [...this.pending.entries()];
    this.pending.clear();
    for (const [id, p] of pending) {
      clearTimeout(p.timer);
      p.reject(culprit === undefined || id === culprit ? err : new Replaced());
    }
  }
}

const thread = new SchemaThread();

/** Checks `schema` at registration, or throws 400 `invalid_parameters_schema` naming the reason (a limit, a pattern, ajv's message). */
export async function checkParameters(schema: Record<string, unknown>): Promise<void> {
  await checkObjectSchema(schema, { code: "invalid_parameters_schema", field: "parameters", why: "models pass arguments as a JSON object" });
}

/** Checks the schema of a run's `response_format` the way tool parameters are checked (400 `invalid_response_format`). */
export async function checkOutputSchema(schema: Record<string, unknown>): Promise<void> {
  await checkObjectSchema(schema, { code: "invalid_response_format", field: "response_format.json_schema.schema", why: "the final answer is a JSON object, as OpenAI's structured outputs require" });
}

async function checkObjectSchema(schema: Record<string, unknown>, what: { code: string; field: string; why: string }): Promise<void> {
  const { code, field } = what;
  if (schema === null || typeof schema !== "object" || Array.isArray(schema)) {
    throw badRequest(code, `\`${field}\` must be a JSON Schema object.`);
  }
  if (schema.type !== "object") {
    throw badRequest(code, `\`${field}\` must be an object schema (\`"type": "object"\`, with \`properties\`): ${what.why}.`);
  }
  const bytes = Buffer.byteLength(JSON.stringify(schema));
  if (bytes > SCHEMA_LIMITS.bytes) {
    throw badRequest(code, `\`${field}\` is ${bytes} bytes of JSON; the limit is ${SCHEMA_LIMITS.bytes}.`, { limit: "bytes", max: SCHEMA_LIMITS.bytes });
  }
  const tooSlow = () => badRequest(code, `\`${field}\` did not compile within ${CHECK_TIMEOUT_MS / 1000} s; simplify it.`);
  const reply = await thread.run({ op: "check", schema }, CHECK_TIMEOUT_MS, tooSlow);
  if (reply.error) throw badRequest(code, reply.error.replace("`parameters`", `\`${field}\``));
}

export type ArgumentsCheck = { valid: true; args: Record<string, unknown> } | { valid: false; message: string };

/**
 * Validates `args` against one version of a tool's schema (`key` = tool id + updated_at).
 * `args` comes back with the schema's defaults filled in. A schema that cannot be compiled
 * (stored before a limit existed) or a validation over its time bound is a 400.
 */
export async function validateArguments(key: string, schema: Record<string, unknown>, args: Record<string, unknown>, dataVar = "arguments"): Promise<ArgumentsCheck> {
  const tooSlow = () => badRequest(`invalid_${dataVar}`, `Validating the ${dataVar} took longer than ${VALIDATE_TIMEOUT_MS / 1000} s.`);
  const reply = await thread.run({ op: "validate", key, schema, args, dataVar }, VALIDATE_TIMEOUT_MS, tooSlow);
  if (reply.error) throw badRequest("invalid_parameters_schema", reply.error);
  return reply.valid ? { valid: true, args: reply.args ?? args } : { valid: false, message: reply.message ?? "invalid arguments" };
}
