/**
 * The server under test: the compiled binary (rebuilt when stale, as the tests do) started
 * on loopback, either on the embedded defaults (PGlite, in-process cache and bus, fresh data
 * dir) or on the real PostgreSQL/Redis/NATS with a fresh database `agentos_bench_<ts>` and a
 * unique namespace, all dropped afterwards.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { dropNatsNamespace, dropRedisNamespace, REAL_URLS } from "../../test/support/backends";
import { BINARY, ensureBinary, REPO, startChild, type ChildProcess } from "../../test/support/binary";

export { REPO };
/**
 * The fd limit set for the server and wrk: 65,536, or the hard limit when lower (raising the
 * hard limit needs CAP_SYS_RESOURCE, which a container often lacks; 10,000 connections need
 * a little over 10,000 on each side).
 */
export const FD_LIMIT = (() => {
  const hard = Bun.spawnSync(["sh", "-c", "ulimit -Hn"]).stdout.toString().trim();
  return hard === "unlimited" ? 65536 : Math.min(65536, Number(hard) || 1024);
})();
export const BENCH_JWT_SECRET = "bench-secret-that-is-long-enough-0123456789abcdef";
export const BENCH_INTERNAL_KEY = "bench-internal-key-that-is-long-enough-0123456789abcdef";
/** The free plan's API rate limit would turn a load test into a 429 test: raised for benches. */
export const BENCH_PLAN_LIMITS = JSON.stringify({ free: { requests_per_minute: 1_000_000_000 } });

export type Mode = "embedded" | "real";

/** Cleanups that must run even on Ctrl-C (databases, namespaces, child processes). */
const cleanups = new Set<() => Promise<void>>();
let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, async () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.error(`\nbench: ${signal}: cleaning up…`);
    for (const fn of [...cleanups].reverse()) await fn().catch(() => {});
    process.exit(130);
  });
}
export function onCleanup(fn: () => Promise<void>): () => Promise<void> {
  const once = async () => {
    if (!cleanups.delete(once)) return;
    await fn();
  };
  cleanups.add(once);
  return once;
}

let binaryChecked = false;
/** dist/agentos, built first if older than the sources (skip with BENCH_NO_BUILD=1). */
export function benchBinary(): string {
  if (process.env.AGENTOS_BINARY) return process.env.AGENTOS_BINARY;
  if (!binaryChecked && process.env.BENCH_NO_BUILD !== "1") {
    console.log("bench: checking dist/agentos is up to date (bun run build when stale)…");
    ensureBinary();
  }
  binaryChecked = true;
  return BINARY;
}

export interface Backends {
  args: string[];
  databaseUrl: string;
  namespace: string;
  drop(): Promise<void>;
}

/** A fresh database and namespace on the real servers. */
export async function createRealBackends(): Promise<Backends> {
  const stamp = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const name = `agentos_bench_${stamp}`;
  const namespace = `bench${stamp}`;
  const admin = postgres(REAL_URLS.postgres, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  const url = new URL(REAL_URLS.postgres);
  url.pathname = `/${name}`;
  const databaseUrl = url.toString();
  const drop = onCleanup(async () => {
    const a = postgres(REAL_URLS.postgres, { max: 1, onnotice: () => {} });
    await a.unsafe(`drop database if exists ${name} with (force)`).catch(() => {});
    await a.end();
    await dropNatsNamespace(namespace).catch(() => {});
    await dropRedisNamespace(namespace).catch(() => {});
  });
  return {
    databaseUrl,
    namespace,
    args: [`--database-url=${databaseUrl}`, `--redis-url=${REAL_URLS.redis}`, `--nats-url=${REAL_URLS.nats}`, `--namespace=${namespace}`],
    drop,
  };
}

export interface Target {
  mode: Mode;
  url: string;
  pid: number;
  child: ChildProcess;
  /** Spawn → first /readyz 200, ms (polled every 100 ms by startChild). */
  startMs: number;
  /** The last lines the server wrote (stdout+stderr), for error reports. */
  tail(): string;
  stop(): Promise<void>;
}

export interface TargetOptions {
  mode: Mode;
  roles?: string;
  /** Use these backends instead of fresh ones (several processes on one database). */
  backends?: Backends;
  extraArgs?: string[];
  /** Command to run instead of the compiled binary (e.g. bun --cpu-prof run src/main.ts). */
  cmd?: string[];
  /** Extra environment of the server (e.g. AGENTOS_WORKER_CONCURRENCY); overrides the defaults below. */
  env?: Record<string, string>;
  readyTimeoutMs?: number;
}

/** Starts the server with a raised fd limit and waits for /readyz 200. */
export async function startTarget(o: TargetOptions): Promise<Target> {
  let backends = o.backends;
  const ownBackends = o.mode === "real" && !backends;
  if (ownBackends) backends = await createRealBackends();
  const dataDir = mkdtempSync(join(tmpdir(), "agentos-bench-"));
  const args = [
    "serve",
    `--role=${o.roles ?? "all"}`,
    `--data-dir=${dataDir}`,
    `--jwt-secret=${BENCH_JWT_SECRET}`,
    `--internal-key=${BENCH_INTERNAL_KEY}`,
    "--access-token-ttl=7200",
    "--log-level=warn",
    ...(o.mode === "real" ? backends!.args : []),
    ...(o.extraArgs ?? []),
  ];
  const inner = o.cmd ?? [benchBinary()];
  const cmd = ["sh", "-c", `ulimit -n ${FD_LIMIT} && exec "$@"`, "sh", ...inner];
  const t0 = performance.now();
  let child: ChildProcess;
  try {
    child = await startChild(args, { cmd, env: { AGENTOS_PLAN_LIMITS: BENCH_PLAN_LIMITS, LOG_LEVEL: "warn", ...o.env }, readyTimeoutMs: o.readyTimeoutMs ?? 120_000 });
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    if (ownBackends) await backends!.drop();
    throw err;
  }
  const startMs = Math.round(performance.now() - t0);
  // Drain the pipes so a chatty server never blocks on a full pipe; keep the tail.
  let tail = "";
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) tail = (tail + decoder.decode(chunk, { stream: true })).slice(-8000);
  };
  void drain(child.proc.stdout).catch(() => {});
  void drain(child.proc.stderr).catch(() => {});
  const stop = onCleanup(async () => {
    const code = await Promise.race([child.stop("SIGTERM"), Bun.sleep(30_000).then(() => null)]);
    if (code === null) {
      child.proc.kill("SIGKILL");
      await child.proc.exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
    if (ownBackends) await backends!.drop();
  });
  return { mode: o.mode, url: child.url, pid: child.proc.pid, child, startMs, tail: () => tail, stop };
}
