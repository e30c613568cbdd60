/**
 * Embedded PostgreSQL (PGlite, WASM) for single-binary / dev deployments.
 *
 * Works both under `bun run` and inside the `bun build --compile` executable:
 * PGlite's runtime assets are imported `with { type: "file" }`, so the bundler
 * embeds them into the binary (they live under `/$bunfs/...` at run time) and
 * we hand them to PGlite ourselves instead of letting it `fetch`/`readFile`
 * paths relative to its own module URL (which do not exist in a compiled
 * binary).
 *
 * PGlite 0.3.x ships two runtime assets (no separate initdb.wasm; initdb is
 * linked into pglite.wasm):
 *   - dist/pglite.wasm -> `wasmModule` (compiled once per process, cached)
 *   - dist/pglite.data -> `fsBundle`   (a Blob; Bun.file() is one)
 *
 * Memory: PGlite 0.3.x has no option to pass server settings. Its backend
 * boots with hard-coded command-line GUCs (`shared_buffers=128MB`,
 * `wal_buffers=4MB`, ...), which override postgresql.conf / ALTER SYSTEM.
 * Those GUC strings sit as NUL-terminated C strings in the wasm data segment,
 * so before compiling we rewrite them in place (same byte length, padded with
 * NULs). Measured idle RSS after `select 1`: ~264 MB with 128MB vs ~135 MB
 * with shared_buffers=8MB/wal_buffers=1MB (bare Bun: ~25 MB).
 * If a future PGlite no longer contains the strings we warn and run with its
 * defaults (PGlite >= 0.4 has a real option for this; switch to it then).
 *
 * Extensions shipped as separate tarballs (vector, pg_trgm, ...) are NOT
 * embedded; only the built-in ones (plpgsql, ...) are available.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
// The package's `exports` map hides dist/*, so import by relative path.
// @ts-ignore -- no type declarations for asset imports
import pgliteWasmPath from "../../../node_modules/@electric-sql/pglite/dist/pglite.wasm" with { type: "file" };
// @ts-ignore -- no type declarations for asset imports
import pgliteDataPath from "../../../node_modules/@electric-sql/pglite/dist/pglite.data" with { type: "file" };

export type { PGlite };

export interface OpenPgliteOptions {
  /** Postgres `shared_buffers`; at most 5 characters (e.g. "8MB", "512kB", "32MB"). Default "8MB". */
  sharedBuffers?: string;
  /** Postgres `wal_buffers`; at most 3 characters (e.g. "1MB", "64" = 64 x 8kB). Default "1MB". */
  walBuffers?: string;
  /** PGlite debug level 0..5 (prints the backend log to stderr when > 0). */
  debug?: 0 | 1 | 2 | 3 | 4 | 5;
}

const DEFAULT_SHARED_BUFFERS = "8MB";
const DEFAULT_WAL_BUFFERS = "1MB";

/** GUC strings compiled into pglite.wasm 0.3.x that we rewrite in place. */
const GUC_DEFAULTS = {
  shared_buffers: "128MB",
  wal_buffers: "4MB",
} as const;

const moduleCache = new Map<string, Promise<WebAssembly.Module>>();

function patchGuc(bytes: Uint8Array, name: keyof typeof GUC_DEFAULTS, value: string): boolean {
  const original = `${name}=${GUC_DEFAULTS[name]}`;
  if (value === GUC_DEFAULTS[name]) return true;
  if (!/^\d+(kB|MB|GB)?$/.test(value)) throw new Error(`pglite: invalid ${name} value ${JSON.stringify(value)}`);
  if (value.length > GUC_DEFAULTS[name].length) {
    throw new Error(`pglite: ${name}=${value} is longer than ${GUC_DEFAULTS[name].length} characters (in-place wasm patch)`);
  }
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const needle = Buffer.from(`\0${original}\0`, "latin1");
  const at = buf.indexOf(needle);
  if (at < 0 || buf.indexOf(needle, at + 1) >= 0) return false; // absent or ambiguous: leave untouched
  const start = at + 1;
  buf.fill(0, start, start + original.length);
  buf.write(`${name}=${value}`, start, "latin1");
  return true;
}

function compiledModule(sharedBuffers: string, walBuffers: string): Promise<WebAssembly.Module> {
  const key = `${sharedBuffers}/${walBuffers}`;
  let p = moduleCache.get(key);
  if (!p) {
    p = (async () => {
      const bytes = new Uint8Array(await Bun.file(pgliteWasmPath).arrayBuffer());
      const ok = patchGuc(bytes, "shared_buffers", sharedBuffers) && patchGuc(bytes, "wal_buffers", walBuffers);
      if (!ok) {
        console.warn("pglite: could not find the built-in GUC defaults in pglite.wasm; running with PGlite defaults (shared_buffers=128MB)");
      }
      return WebAssembly.compile(bytes);
    })();
    p.catch(() => moduleCache.delete(key));
    moduleCache.set(key, p);
  }
  return p;
}

/**
 * Open (creating on first use) a persistent PGlite database stored under
 * `${dataDir}/pglite`. Pass `memory://` as dataDir for an in-memory database.
 * Resolves once the database is ready to accept queries.
 */
export async function openPglite(dataDir: string, options: OpenPgliteOptions = {}): Promise<PGlite> {
  let pgDataDir: string;
  if (dataDir.startsWith("memory://")) {
    pgDataDir = dataDir;
  } else {
    pgDataDir = join(dataDir, "pglite");
    mkdirSync(pgDataDir, { recursive: true, mode: 0o700 });
  }
  const wasmModule = await compiledModule(
    options.sharedBuffers ?? DEFAULT_SHARED_BUFFERS,
    options.walBuffers ?? DEFAULT_WAL_BUFFERS,
  );
  const db = await PGlite.create(pgDataDir, {
    wasmModule,
    fsBundle: Bun.file(pgliteDataPath),
    debug: options.debug,
  });
  return db;
}

/** Close a PGlite instance (flushes to disk). Safe to call twice. */
export async function closePglite(db: PGlite | undefined | null): Promise<void> {
  if (!db || db.closed) return;
  await db.close();
}
