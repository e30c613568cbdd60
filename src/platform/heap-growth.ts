/**
 * How far JavaScriptCore lets the heap grow before it collects, set once at start.
 *
 * After a full collection JSC allows the heap to reach `(1 + heapGrowthMaxIncrease) × its size`
 * (Bun sets the increase to 2) before the next one, and "its size" includes the memory it only
 * accounts for. The embedded database is PGlite: a wasm instance whose 128 MiB memory JSC counts
 * twice (the wasm memory and its ArrayBuffer), ~267 MiB of a ~300 MiB heap whose JavaScript
 * objects are ~30 MiB. With Bun's 2 the server may pile up ~600 MiB of garbage before it
 * collects: 1,000 runs in flight peaked at 1.1 GiB RSS (bench/README.md, 2026-12-03). With 0.1
 * it may grow ~30 MiB, about its JavaScript objects again: the peak was ~390 MiB, for ~16%
 * fewer runs/s (more collections); at 0.3 ~450 MiB at no measurable cost. The embedded default
 * is one process on a small machine, so memory wins. 0 collects without end (runs never ended).
 *
 * JSC reads its options from `BUN_JSC_*` only when the runtime starts, so the process
 * re-executes itself once (execve: same pid, same file descriptors) with the variable set.
 * An operator's own `BUN_JSC_heapGrowthMaxIncrease` is left as it is.
 */
import { COMPILED } from "./compiled";
import type { Config } from "./config";

const HEAP_GROWTH_ENV = "BUN_JSC_heapGrowthMaxIncrease";
/** The increase used with the embedded database (`--js-heap-growth=auto`). */
const EMBEDDED_HEAP_GROWTH = 0.1;

/** The increase this process should run with, or null to keep Bun's. */
export function wantedHeapGrowth(config: Pick<Config, "jsHeapGrowth" | "databaseUrl">): number | null {
  if (config.jsHeapGrowth !== "auto") return config.jsHeapGrowth;
  return config.databaseUrl ? null : EMBEDDED_HEAP_GROWTH;
}

/** The command line that starts this program again: a compiled binary's own arguments, or bun's flags + script + arguments. */
function restartArgv(): string[] {
  return COMPILED ? [process.argv0, ...process.argv.slice(2)] : [process.argv0, ...process.execArgv, process.argv[1], ...process.argv.slice(2)];
}

/**
 * Re-executes the process with the wanted heap growth unless it already runs with one (set by
 * the first start, or by the operator). Returns when there is nothing to do, or when the exec
 * failed (then the server starts with Bun's growth and says so on stderr).
 */
export function applyHeapGrowth(config: Pick<Config, "jsHeapGrowth" | "databaseUrl">, env: Record<string, string | undefined> = process.env): void {
  const wanted = wantedHeapGrowth(config);
  if (wanted === null || env[HEAP_GROWTH_ENV] !== undefined) return;
  const keep = (why: string) => process.stderr.write(`agentos: could not restart with ${HEAP_GROWTH_ENV}=${wanted} (${why}); keeping Bun's heap growth\n`);
  if (typeof process.execve !== "function") return void keep("this runtime has no process.execve");
  try {
    process.execve(process.execPath, restartArgv(), { ...env, [HEAP_GROWTH_ENV]: String(wanted) });
  } catch (err) {
    keep((err as Error).message);
  }
}
