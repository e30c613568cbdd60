/**
 * Embedded PostgreSQL (PGlite 0.5.x = PostgreSQL 18, WASM) for single-binary / dev deployments.
 *
 * Works both under `bun run` and inside the `bun build --compile` executable:
 * PGlite's runtime assets are imported `with { type: "file" }`, so the bundler
 * embeds them into the binary (they live under `/$bunfs/...` at run time) and
 * we hand them to PGlite ourselves instead of letting it `fetch`/`readFile`
 * paths relative to its own module URL (which do not exist in a compiled
 * binary):
 *   - dist/pglite.wasm -> `pgliteWasmModule` (compiled once per process)
 *   - dist/initdb.wasm -> `initdbWasmModule` (only run when creating a new data dir)
 *   - dist/pglite.data -> `fsBundle`         (a Blob; Bun.file() is one)
 *
 * Memory: the backend runs with PGlite's defaults (`PGlite.defaultStartParams`)
 * plus `-c shared_buffers=… -c wal_buffers=…` on its command line (`startParams`).
 * Command-line settings win over postgresql.conf, apply to existing data dirs,
 * and leave the postgresql.conf that initdb wrote alone. (PGlite's
 * `postgresqlconf` option is not used: it replaces that whole file on every
 * open, losing initdb's settings such as default_text_search_config=english.)
 * Measured (compiled binary, --role=all, idle after restart): ~165 MB RSS with
 * shared_buffers=8MB/wal_buffers=1MB vs ~300 MB with PGlite's defaults (128MB/4MB).
 * Creating a new data dir peaks near 1 GB RSS (PGlite runs initdb in extra wasm
 * instances and snapshots a whole 128 MB heap); that memory is collected right after.
 *
 * Extensions: the built-in ones (plpgsql, full-text search, ...) and pgvector, whose
 * tarball (@electric-sql/pglite-pgvector's vector.tar.gz, ~50 kB) is embedded the same way.
 * PGlite reads extension bundles with fs.createReadStream, which cannot read `/$bunfs/...`,
 * so the bundle is copied once to a content-named file in the temp dir and that path is
 * handed over. Archival memory's similarity search uses it (`create extension vector` runs
 * at the memory role's start). Other tarballs (pg_trgm, ...) are not embedded.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
// The package's `exports` map hides dist/*, so import by relative path.
import pgliteWasmPath from "../../../node_modules/@electric-sql/pglite/dist/pglite.wasm" with { type: "file" };
import initdbWasmPath from "../../../node_modules/@electric-sql/pglite/dist/initdb.wasm" with { type: "file" };
import pgliteDataPath from "../../../node_modules/@electric-sql/pglite/dist/pglite.data" with { type: "file" };
import vectorBundlePath from "../../../node_modules/@electric-sql/pglite-pgvector/dist/vector.tar.gz" with { type: "file" };

/** pgvector as a PGlite extension: what `@electric-sql/pglite-pgvector` exports, with the embedded bundle. */
const vector = {
  name: "vector",
  setup: async (_pg: unknown, emscriptenOpts: any) => ({ emscriptenOpts, bundlePath: (await extractedBundle(vectorBundlePath)) as unknown as URL }),
};

/** The embedded bundle as a real file: `<tmp>/agentos-<sha256 prefix>-<name>` (written once, atomically). */
async function extractedBundle(embeddedPath: string): Promise<string> {
  const bytes = await Bun.file(embeddedPath).bytes();
  const digest = new Bun.CryptoHasher("sha256").update(bytes).digest("hex").slice(0, 16);
  const file = join(tmpdir(), `agentos-${digest}-${basename(embeddedPath)}`);
  if (!existsSync(file)) {
    const partial = `${file}.${process.pid}.tmp`;
    writeFileSync(partial, bytes, { mode: 0o644 });
    renameSync(partial, file);
  }
  return file;
}

export type { PGlite };

export interface OpenPgliteOptions {
  /** Postgres `shared_buffers` (e.g. "8MB", "512kB", "32MB", "1024" = 1024 x 8kB). Default "8MB". */
  sharedBuffers?: string;
  /** Postgres `wal_buffers` (e.g. "1MB", "64" = 64 x 8kB, "-1" = derived from shared_buffers). Default "1MB". */
  walBuffers?: string;
  /** PGlite debug level 0..5 (prints the backend log to stderr when > 0). */
  debug?: 0 | 1 | 2 | 3 | 4 | 5;
}

const DEFAULT_SHARED_BUFFERS = "8MB";
const DEFAULT_WAL_BUFFERS = "1MB";
/** A Postgres memory setting: an integer with an optional unit. */
const MEMORY_SETTING = /^-?\d+\s*(B|kB|MB|GB|TB)?$/;

const modules = new Map<string, Promise<WebAssembly.Module>>();

/** Compile a wasm asset once per process (a failed compile is retried on the next call). */
function compiled(path: string): Promise<WebAssembly.Module> {
  let p = modules.get(path);
  if (!p) {
    p = Bun.file(path)
      .arrayBuffer()
      .then((bytes) => WebAssembly.compile(bytes));
    p.catch(() => modules.delete(path));
    modules.set(path, p);
  }
  return p;
}

function memorySetting(name: string, value: string): string {
  if (!MEMORY_SETTING.test(value)) throw new Error(`pglite: invalid ${name} value ${JSON.stringify(value)}`);
  return `${name}=${value.replace(/\s+/g, "")}`;
}

/**
 * Open (creating on first use) a persistent PGlite database stored under
 * `${dataDir}/pglite`. Pass `memory://` as dataDir for an in-memory database.
 * Resolves once the database is ready to accept queries.
 *
 * A data dir written by another PostgreSQL major version (e.g. by PGlite 0.3.x,
 * PostgreSQL 17) is refused with an explanatory error; it is never modified.
 */
export async function openPglite(dataDir: string, options: OpenPgliteOptions = {}): Promise<PGlite> {
  const settings = [
    memorySetting("shared_buffers", options.sharedBuffers ?? DEFAULT_SHARED_BUFFERS),
    memorySetting("wal_buffers", options.walBuffers ?? DEFAULT_WAL_BUFFERS),
  ];
  let pgDataDir: string;
  if (dataDir.startsWith("memory://")) {
    pgDataDir = dataDir;
  } else {
    pgDataDir = join(dataDir, "pglite");
    mkdirSync(pgDataDir, { recursive: true, mode: 0o700 });
  }
  const created = pgDataDir.startsWith("memory://") || pgVersionOf(pgDataDir) === null;
  const [pgliteWasmModule, initdbWasmModule] = await Promise.all([compiled(pgliteWasmPath), compiled(initdbWasmPath)]);

  // The backend's log (FATAL reasons included) only reaches us through onStderr;
  // keep the tail of it while opening so a failure can say why.
  let opening = true;
  const log: string[] = [];
  const onStderr = (line: string): boolean => {
    if (opening) {
      log.push(line);
      if (log.length > 50) log.shift();
    }
    return false;
  };

  let db: PGlite;
  try {
    db = await PGlite.create(pgDataDir, {
      pgliteWasmModule,
      initdbWasmModule,
      fsBundle: Bun.file(pgliteDataPath),
      extensions: { vector },
      startParams: [...PGlite.defaultStartParams, ...settings.flatMap((s) => ["-c", s])],
      // Also used by initdb (its bootstrap runs, and the postgresql.conf it writes).
      initDbStartParams: settings.flatMap((s) => ["-c", s]),
      debug: options.debug,
      onStderr,
    });
  } catch (err) {
    throw openError(pgDataDir, log.join("\n"), err);
  } finally {
    opening = false;
  }
  // Creating a data dir runs initdb in two throwaway wasm instances (several hundred MB of RSS)
  // that are garbage once open, but an idle server may not collect them for ~20 s. Collect soon
  // (not synchronously here: the async frames still hold them until this call has returned).
  if (created) setTimeout(() => Bun.gc(true), 50).unref();
  return db;
}

/** Turn a failed open into an actionable error (version mismatch, or the backend's FATAL line). */
function openError(pgDataDir: string, backendLog: string, err: unknown): Error {
  const message = err instanceof Error ? err.message : String(err);
  const onDisk = pgDataDir.startsWith("memory://") ? null : pgVersionOf(pgDataDir);
  const mismatch = /database files are incompatible with server/.test(backendLog);
  const detail = backendLog.match(/initialized by PostgreSQL version (\S+?),? which is not compatible with this version (\d+)/);
  if (mismatch || detail) {
    const was = detail?.[1] ?? onDisk ?? "another version";
    const now = detail?.[2] ?? "another version";
    const age = Number.parseInt(was, 10) > Number.parseInt(now, 10) ? "a newer" : "an older";
    return new Error(
      `the embedded database in ${pgDataDir} was created by ${age} embedded PostgreSQL (${was}); this build embeds ` +
        `PostgreSQL ${now} and cannot open it (the data dir was left untouched). To migrate: dump it with a ` +
        `PostgreSQL ${was} pg_dump (for PGlite 0.3.16 data: pgDump from @electric-sql/pglite-tools@0.2.21), move ` +
        `${pgDataDir} aside, start this build on the empty data dir, then load the dump. To start over, delete ${pgDataDir}.`,
      { cause: err },
    );
  }
  const fatal = backendLog
    .split("\n")
    .filter((l) => /\b(FATAL|PANIC|ERROR|DETAIL|HINT):/.test(l))
    .map((l) => l.replace(/^.*?\b(FATAL|PANIC|ERROR|DETAIL|HINT):\s*/, "$1: "))
    .join("; ");
  return new Error(fatal ? `${message}: ${fatal}` : message, { cause: err });
}

function pgVersionOf(pgDataDir: string): string | null {
  const file = join(pgDataDir, "PG_VERSION");
  try {
    return existsSync(file) ? readFileSync(file, "utf8").trim() : null;
  } catch {
    return null;
  }
}

/**
 * The types Drizzle reads as text (timestamps, dates, intervals and their arrays), by oid:
 * Drizzle passes `parsers` for them with every query, and PGlite answers each such query by
 * spreading that over its own table of ~320 parsers (sparse integer keys: ~55 µs and a large
 * object of garbage per statement — a fifth of the embedded server's CPU with 1,000 runs in
 * flight). Installed once in the instance's table instead, the per-query option is dropped.
 */
const TEXT_TYPE_OIDS = [1114, 1184, 1186, 1082, 1231, 1115, 1185, 1187, 1182];
const asText = (value: string) => value;

type QueryFn = (query: string, params?: unknown[], options?: { parsers?: Record<number, unknown> }) => Promise<unknown>;

/** A query options object without `parsers` when they only name the types read as text. */
function withoutTextParsers<O extends { parsers?: Record<number, unknown> } | undefined>(options: O): O {
  const parsers = options?.parsers;
  if (!parsers) return options;
  for (const oid in parsers) if (!TEXT_TYPE_OIDS.includes(Number(oid))) return options;
  return { ...options, parsers: undefined };
}

/**
 * Every query of the instance and of its transactions: the text parsers installed once (the
 * per-query option dropped), each statement and transaction told to `counted`.
 */
export function instrumentQueries(db: PGlite, counted: (kind: "statement" | "transaction") => void): PGlite {
  const own = db as unknown as { parsers: Record<number, unknown>; query: QueryFn; transaction: (fn: (tx: any) => Promise<unknown>) => Promise<unknown> };
  for (const oid of TEXT_TYPE_OIDS) own.parsers[oid] = asText;
  const instrumented = (query: QueryFn): QueryFn => (q, params, options) => {
    counted("statement");
    return query(q, params, withoutTextParsers(options));
  };
  own.query = instrumented(own.query.bind(db));
  const transaction = own.transaction.bind(db);
  own.transaction = (fn) => {
    counted("transaction");
    return transaction((tx: { query: QueryFn }) => {
      tx.query = instrumented(tx.query);
      return fn(tx);
    });
  };
  return db;
}

/** Close a PGlite instance (flushes to disk). Safe to call twice. */
export async function closePglite(db: PGlite | undefined | null): Promise<void> {
  if (!db || db.closed) return;
  await db.close();
}
