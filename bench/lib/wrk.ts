/**
 * wrk (Debian's package) as the load generator, in its own process. The fd limit is raised
 * in a wrapper shell (`ulimit -n`) because 10,000 connections need more than the default.
 * Its own CPU use is read from its rusage when it exits, to show whether it was the bottleneck.
 */
import { FD_LIMIT, REPO } from "./target";
import { cpuMeter, round } from "./proc";

const LUA = new URL("../lua/http.lua", import.meta.url).pathname;

/** Installs wrk on first use (apt-get, as root) or says exactly how to. */
export function ensureWrk() {
  if (Bun.which("wrk")) return;
  if (process.getuid?.() === 0 && Bun.which("apt-get")) {
    console.log("bench: wrk is missing; installing Debian's package: apt-get install -y wrk");
    let r = Bun.spawnSync(["apt-get", "install", "-y", "wrk"], { stdout: "inherit", stderr: "inherit" });
    if (r.exitCode !== 0) {
      Bun.spawnSync(["apt-get", "update"], { stdout: "inherit", stderr: "inherit" });
      r = Bun.spawnSync(["apt-get", "install", "-y", "wrk"], { stdout: "inherit", stderr: "inherit" });
    }
    if (r.exitCode === 0 && Bun.which("wrk")) return;
  }
  console.error("bench: wrk is required. Install it with: sudo apt-get update && sudo apt-get install -y wrk");
  process.exit(1);
}

export interface WrkOptions {
  url: string;
  connections: number;
  durationS: number;
  threads?: number;
  token?: string;
  method?: string;
  body?: string;
  /** Pause (ms) before each request on each connection: a constant offered rate. */
  paceMs?: number;
  /** All connections open first; requests start after this many ms (excluded from rps). */
  holdMs?: number;
  /** pid of the server: its CPU use over the run is reported too. */
  serverPid?: number;
  timeoutS?: number;
}

export interface WrkResult {
  url: string;
  method: string;
  connections: number;
  threads: number;
  /** The measured window (wrk's run minus the connection hold). */
  duration_s: number;
  hold_ms?: number;
  pace_ms?: number;
  offered_rps?: number;
  requests: number;
  rps: number;
  requests_per_minute: number;
  latency_ms: { p50: number; p75: number; p90: number; p95: number; p99: number; p999: number; max: number; mean: number };
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  /** wrk's own CPU: user+system seconds and % of one core over the run. */
  load_tool_cpu: { cpu_seconds: number; cpu_percent: number };
  server_cpu?: { cpu_seconds: number; cpu_percent: number };
}

export async function runWrk(o: WrkOptions): Promise<WrkResult> {
  const threads = Math.min(o.threads ?? 2, o.connections);
  const timeoutS = o.timeoutS ?? 30;
  const args = ["-t", String(threads), "-c", String(o.connections), "-d", `${o.durationS + (o.holdMs ?? 0) / 1000}s`, "--timeout", `${timeoutS}s`, "-s", LUA, o.url];
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", BENCH_METHOD: o.method ?? "GET" };
  if (o.token) env.BENCH_TOKEN = o.token;
  if (o.body) env.BENCH_BODY = o.body;
  if (o.paceMs) env.BENCH_PACE_MS = String(Math.round(o.paceMs));
  if (o.holdMs) env.BENCH_HOLD_MS = String(Math.round(o.holdMs));
  env.BENCH_CONNS_PER_THREAD = String(Math.floor(o.connections / threads));
  const server = o.serverPid ? cpuMeter(o.serverPid) : undefined;
  const t0 = performance.now();
  const proc = Bun.spawn(["sh", "-c", `ulimit -n ${FD_LIMIT} && exec wrk "$@"`, "wrk", ...args], { cwd: REPO, env, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  const code = await proc.exited;
  const wall = (performance.now() - t0) / 1000;
  const serverCpu = server?.();
  const line = stdout.split("\n").find((l) => l.startsWith("WRK_JSON "));
  if (code !== 0 || !line) throw new Error(`wrk failed (exit ${code}):\n${stdout}\n${stderr}`);
  const r = JSON.parse(line.slice("WRK_JSON ".length));
  const usage = proc.resourceUsage();
  const toolCpu = usage ? (Number(usage.cpuTime.user) + Number(usage.cpuTime.system)) / 1e6 : NaN;
  // the hold is connection set-up with no request sent: not part of the measured window
  const seconds = r.duration_us / 1e6 - (o.holdMs ?? 0) / 1000;
  const ms = (us: number) => round(us / 1000, 2);
  const L = r.latency_us;
  return {
    url: o.url,
    method: o.method ?? "GET",
    connections: o.connections,
    threads,
    duration_s: round(seconds, 2),
    ...(o.holdMs ? { hold_ms: o.holdMs } : {}),
    ...(o.paceMs ? { pace_ms: o.paceMs, offered_rps: Math.round((o.connections * 1000) / o.paceMs) } : {}),
    requests: r.requests,
    rps: Math.round(r.requests / seconds),
    requests_per_minute: Math.round((r.requests / seconds) * 60),
    latency_ms: { p50: ms(L.p50), p75: ms(L.p75), p90: ms(L.p90), p95: ms(L.p95), p99: ms(L.p99), p999: ms(L.p999), max: ms(L.max), mean: ms(L.mean) },
    errors: r.errors,
    load_tool_cpu: { cpu_seconds: round(toolCpu, 2), cpu_percent: round((100 * toolCpu) / wall, 1) },
    ...(serverCpu ? { server_cpu: serverCpu } : {}),
  };
}

/** One line per run for the console. */
export function summaryRow(label: string, r: WrkResult, extra: Record<string, unknown> = {}) {
  const err = r.errors.connect + r.errors.read + r.errors.write + r.errors.timeout;
  return {
    run: label,
    conns: r.connections,
    ...(r.offered_rps ? { offered: r.offered_rps } : { offered: "max" }),
    "window s": r.duration_s,
    rps: r.rps,
    "req/min": r.requests_per_minute,
    p50: r.latency_ms.p50,
    p95: r.latency_ms.p95,
    p99: r.latency_ms.p99,
    max: r.latency_ms.max,
    non2xx: r.errors.status,
    sockerr: err,
    "wrk cpu%": r.load_tool_cpu.cpu_percent,
    "srv cpu%": r.server_cpu?.cpu_percent ?? "",
    ...extra,
  };
}
