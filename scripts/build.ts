/**
 * Build the single self-contained executable: src/main.ts -> dist/agentos.
 *
 *   bun run build                                   # host target
 *   bun run build --target=bun-linux-arm64          # cross-compile
 *   bun run scripts/build.ts --entry=x.ts --outfile=/tmp/x   # same options, other entry (tests/experiments)
 *   bun run build --slim                            # dist/agentos-slim: no PGlite, no source map
 *
 * Notes:
 * - Only whitespace+syntax minification: identifier mangling breaks Elysia
 *   (it generates code from handler/function source text).
 * - Every `import x from "..." with { type: "file" }` (PGlite wasm/data,
 *   Swagger UI assets, ...) is embedded by the bundler automatically; at run
 *   time `x` is a `/$bunfs/...` path readable with Bun.file().
 * - The binary is never stripped: the bundled JS + assets live in a section
 *   appended to the executable, and `strip` would destroy it.
 */
import { mkdirSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { postgresPatchPlugin } from "../src/platform/db/postgres-patch";
import { writeConsole } from "./build-console";

const root = resolve(import.meta.dir, "..");

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    entry: { type: "string", default: resolve(root, "src/main.ts") },
    outfile: { type: "string" },
    // e.g. bun-linux-x64, bun-linux-arm64, bun-linux-x64-musl; default: the host
    target: { type: "string" },
    sourcemap: { type: "boolean" },
    // For split deployments, which always have DATABASE_URL: PGlite's wasm and data and the
    // source map left out (≈ 7 MB of the image compressed). See slimPlugin.
    slim: { type: "boolean", default: false },
  },
  strict: true,
  allowPositionals: false,
  allowNegative: true,
});

const entry = resolve(values.entry!);
const slim = values.slim!;
const outfile = resolve(values.outfile ?? resolve(root, slim ? "dist/agentos-slim" : "dist/agentos"));
const sourcemap = values.sourcemap ?? !slim;

/** The slim build: the embedded database (PGlite and Drizzle's PGlite driver) replaced by a stub that asks for DATABASE_URL. */
const slimPlugin: Bun.BunPlugin = {
  name: "agentos-slim",
  setup(build) {
    build.onResolve({ filter: /^\.\/pglite$/ }, (args) => (args.importer.endsWith("/platform/db/index.ts") ? { path: resolve(root, "src/platform/db/pglite-absent.ts") } : undefined));
    build.onResolve({ filter: /^drizzle-orm\/pglite$/ }, () => ({ path: "drizzle-pglite-absent", namespace: "agentos-slim" }));
    build.onLoad({ filter: /.*/, namespace: "agentos-slim" }, () => ({ contents: "export function drizzle() { throw new Error('no embedded database in the slim build'); }", loader: "js" }));
  },
};
mkdirSync(dirname(outfile), { recursive: true });

/** Modules started with `new Worker`: embedded beside the main entry. */
const WORKERS = [resolve(root, "src/roles/tools/schema-worker.ts")];

const started = performance.now();
// The web console first: its hashed files and manifest (dist/console) are embedded by the compile.
try {
  await writeConsole();
} catch (err) {
  console.error(err);
  console.error("build failed: console/");
  process.exit(1);
}
let result: Bun.BuildOutput;
try {
  result = await Bun.build({
    // Worker threads are extra entry points of the same executable (new Worker(new URL(…))).
    entrypoints: [entry, ...WORKERS],
    // Entry points are named by their path under this root (the workers' URLs rely on it).
    ...(entry.startsWith(resolve(root, "src") + "/") ? { root: resolve(root, "src") } : {}),
    compile: {
      outfile,
      ...(values.target ? { target: values.target as Bun.Build.CompileTarget } : {}),
    },
    target: "bun",
    format: "esm",
    // One chunk per dynamically imported module graph: a process loads (parses, evaluates) only
    // the chunks its command and roles import — without it every module of the bundle is loaded.
    splitting: true,
    minify: { whitespace: true, syntax: true, identifiers: false },
    // postgres.js crashes the process on a write after its connection closed (see the patch).
    plugins: slim ? [postgresPatchPlugin, slimPlugin] : [postgresPatchPlugin],
    // "linked": the map is embedded in the executable and used for stack traces.
    sourcemap: sourcemap ? "linked" : "none",
  });
} catch (err) {
  // Bun.build throws an AggregateError of BuildMessages on resolve/parse errors.
  for (const e of (err as AggregateError).errors ?? [err]) console.error(e);
  console.error(`build failed: ${entry}`);
  process.exit(1);
}

for (const log of result.logs) console.error(log);
if (!result.success) {
  console.error(`build failed: ${entry}`);
  process.exit(1);
}

const size = statSync(outfile).size;
const secs = ((performance.now() - started) / 1000).toFixed(1);
console.log(`built ${outfile}: ${size} bytes (${(size / 1024 / 1024).toFixed(1)} MiB) in ${secs}s`);
