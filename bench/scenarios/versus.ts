/**
 * read / write against the peer, in one run: AgentOS (the compiled binary, real PostgreSQL +
 * Redis + NATS, rate limit lifted) and the Go + Gin peer (bench/peers/gin, same database, same
 * Redis, same JWT secret) serve the same call; wrk alternates between them in short rounds
 * (A B, then B A, …) so that load from anything else on the machine falls on both alike. The
 * medians of the rounds and their ratios are the figures; a ratio from one run is the only
 * comparison that holds on a shared machine. Server CPU per request is printed too: it depends
 * far less on the machine's load than rps does.
 */
import { statSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../../test/support/binary";
import { REAL_URLS } from "../../test/support/backends";
import { checkCall, readCall, signup, writeCall, type Call } from "../lib/fixtures";
import { machineInfo } from "../lib/machine";
import { cpuSeconds, loadAverage, memoryMiB, round } from "../lib/proc";
import { printTable, writeResults } from "../lib/results";
import { BENCH_JWT_SECRET, createRealBackends, onCleanup, REPO, startTarget } from "../lib/target";
import { ensureWrk, runWrk, type WrkResult } from "../lib/wrk";

const PEER_DIR = join(REPO, "bench/peers/gin");
const PEER_BIN = join(PEER_DIR, "bin/gin-peer");
const PEER_PACKAGES = ["golang-go", "golang-github-gin-gonic-gin-dev", "golang-github-golang-jwt-jwt-dev", "golang-github-lib-pq-dev", "golang-github-gomodule-redigo-dev"];

/** The goals of issue 15, per scenario. */
export const GOALS = {
  read: { rpsRatio: 2, p99Ms: 5 },
  write: { rpsRatio: 1.5, p99Ms: undefined as number | undefined },
};

export interface VersusOptions {
  rounds: number;
  durationS: number;
  warmupS: number;
  connections: number;
  path?: string;
  body?: string;
}

const mtime = (f: string) => {
  try {
    return statSync(f).mtimeMs;
  } catch {
    return 0;
  }
};

/** Builds the peer when missing or older than its source; installs Debian's Go packages first as root. */
export function ensurePeer(): string {
  if (mtime(PEER_BIN) > mtime(join(PEER_DIR, "main.go"))) return PEER_BIN;
  if (!Bun.which("go") || !statSafe("/usr/share/gocode/src/github.com/gin-gonic/gin")) {
    if (process.getuid?.() !== 0) {
      console.error(`bench: the Gin peer needs Debian's Go packages: sudo apt-get install -y ${PEER_PACKAGES.join(" ")}`);
      process.exit(1);
    }
    console.log(`bench: installing the peer's packages: apt-get install -y ${PEER_PACKAGES.join(" ")}`);
    let r = Bun.spawnSync(["apt-get", "install", "-y", ...PEER_PACKAGES], { stdout: "inherit", stderr: "inherit" });
    if (r.exitCode !== 0) {
      Bun.spawnSync(["apt-get", "update"], { stdout: "inherit", stderr: "inherit" });
      r = Bun.spawnSync(["apt-get", "install", "-y", ...PEER_PACKAGES], { stdout: "inherit", stderr: "inherit" });
    }
    if (r.exitCode !== 0) throw new Error("apt-get install of the peer's packages failed");
  }
  console.log("bench: building the Gin peer (bench/peers/gin/build.sh)…");
  const r = Bun.spawnSync(["sh", join(PEER_DIR, "build.sh")], { stdout: "inherit", stderr: "inherit" });
  if (r.exitCode !== 0) throw new Error("building the Gin peer failed");
  return PEER_BIN;
}
const statSafe = (p: string) => mtime(p) > 0;

interface Server {
  name: string;
  url: string;
  pid: number;
}

async function startPeer(databaseUrl: string, namespace: string): Promise<Server & { stop(): Promise<void> }> {
  const port = await freePort();
  const db = new URL(databaseUrl);
  db.searchParams.set("sslmode", "disable");
  const redis = new URL(REAL_URLS.redis);
  const proc = Bun.spawn([PEER_BIN], {
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      PEER_ADDR: `127.0.0.1:${port}`,
      DATABASE_URL: db.toString(),
      REDIS_ADDR: `${redis.hostname}:${redis.port || 6379}`,
      // under the bench namespace: dropped with it
      REDIS_PREFIX: `${namespace}:peer`,
      JWT_SECRET: BENCH_JWT_SECRET,
    },
    stdout: "pipe",
    stderr: "pipe",
  });
  const stop = onCleanup(async () => {
    proc.kill("SIGTERM");
    await proc.exited;
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`the Gin peer exited with ${proc.exitCode}: ${await new Response(proc.stderr).text()}`);
    if (await fetch(`${url}/healthz`).then((r) => r.ok, () => false)) return { name: "gin peer", url, pid: proc.pid, stop };
    await Bun.sleep(100);
  }
  await stop();
  throw new Error("the Gin peer did not answer /healthz within 30 s");
}

/** Waits until the process is idle (< 5% of a core over 500 ms, at most 30 s). */
async function settle(pid: number) {
  const t0 = performance.now();
  while (performance.now() - t0 < 30_000) {
    const a = cpuSeconds(pid);
    await Bun.sleep(500);
    if (cpuSeconds(pid) - a < 0.025) return;
  }
}

/** Both servers must answer the call alike (status, and for reads the same JSON body). */
async function sameAnswer(servers: Server[], token: string, call: Call) {
  const bodies: any[] = [];
  for (const s of servers) {
    await checkCall(s.url, token, call);
    const r = await fetch(s.url + call.path, { method: call.method, headers: { authorization: `Bearer ${token}`, ...(call.body ? { "content-type": "application/json" } : {}) }, body: call.body });
    bodies.push(await r.json());
  }
  if (call.method === "GET" && JSON.stringify(bodies[0]) !== JSON.stringify(bodies[1])) {
    throw new Error(`AgentOS and the peer answer ${call.path} differently:\n${JSON.stringify(bodies[0])}\n${JSON.stringify(bodies[1])}`);
  }
  const keys = bodies.map((b) => Object.keys(b).sort().join(","));
  if (keys[0] !== keys[1]) throw new Error(`AgentOS and the peer answer with different fields: ${keys[0]} vs ${keys[1]}`);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export interface Side {
  rounds: WrkResult[];
  rps: number;
  p50_ms: number;
  p99_ms: number;
  cpu_us_per_request: number;
  rss_mib: number;
  errors: number;
}

function summarise(rounds: WrkResult[], rss: number): Side {
  const errors = rounds.reduce((n, r) => n + r.errors.status + r.errors.connect + r.errors.read + r.errors.write + r.errors.timeout, 0);
  return {
    rounds,
    rps: Math.round(median(rounds.map((r) => r.rps))),
    p50_ms: round(median(rounds.map((r) => r.latency_ms.p50)), 2),
    p99_ms: round(median(rounds.map((r) => r.latency_ms.p99)), 2),
    cpu_us_per_request: round(median(rounds.map((r) => (1e6 * (r.server_cpu?.cpu_seconds ?? NaN)) / r.requests)), 1),
    rss_mib: rss,
    errors,
  };
}

export async function runVersus(scenario: "read" | "write", o: VersusOptions) {
  ensureWrk();
  ensurePeer();
  const machine = machineInfo();
  console.log(`\n== ${scenario}: AgentOS vs the Go + Gin peer, same PostgreSQL + Redis, ${o.rounds} alternating rounds of ${o.durationS} s at ${o.connections} connections`);
  const backends = await createRealBackends();
  const agentos = await startTarget({ mode: "real", backends });
  let peer: Awaited<ReturnType<typeof startPeer>> | undefined;
  try {
    peer = await startPeer(backends.databaseUrl, backends.namespace);
    const token = await signup(agentos.url);
    const call = scenario === "read" ? await readCall(agentos.url, token, o.path) : await writeCall(agentos.url, token, o.path ? { path: o.path, body: o.body ?? "{}" } : undefined);
    const servers: Server[] = [{ name: "agentos", url: agentos.url, pid: agentos.pid }, peer];
    await sameAnswer(servers, token, call);
    console.log(`   agentos pid ${agentos.pid}, gin peer pid ${peer.pid}; call: ${call.method} ${call.path}`);
    const wrk = (s: Server, durationS: number) => runWrk({ url: s.url + call.path, connections: o.connections, durationS, token, method: call.method, body: call.body, serverPid: s.pid });
    if (o.warmupS > 0) for (const s of servers) await wrk(s, o.warmupS);
    const results: Record<string, WrkResult[]> = { agentos: [], "gin peer": [] };
    const loads: number[][] = [];
    for (let i = 0; i < o.rounds; i++) {
      // A B, B A, …: neither side always runs first (after the other's queued work).
      for (const s of i % 2 ? [...servers].reverse() : servers) {
        await settle(s.pid);
        loads.push(loadAverage());
        const r = await wrk(s, o.durationS);
        results[s.name].push(r);
        console.log(`   round ${i + 1} ${s.name.padEnd(8)}: ${r.rps} rps, p50 ${r.latency_ms.p50} ms, p99 ${r.latency_ms.p99} ms, server ${r.server_cpu?.cpu_percent}% CPU, wrk ${r.load_tool_cpu.cpu_percent}%`);
      }
    }
    const a = summarise(results.agentos, memoryMiB(agentos.pid).rss);
    const b = summarise(results["gin peer"], memoryMiB(peer.pid).rss);
    const ratios = { rps: round(a.rps / b.rps, 2), p99: round(b.p99_ms / a.p99_ms, 2), cpu_per_request: round(b.cpu_us_per_request / a.cpu_us_per_request, 2) };
    const goal = GOALS[scenario];
    console.log("");
    printTable([
      { server: "agentos", rps: a.rps, "p50 ms": a.p50_ms, "p99 ms": a.p99_ms, "server CPU µs/req": a.cpu_us_per_request, "RSS MiB": a.rss_mib, errors: a.errors },
      { server: "gin peer", rps: b.rps, "p50 ms": b.p50_ms, "p99 ms": b.p99_ms, "server CPU µs/req": b.cpu_us_per_request, "RSS MiB": b.rss_mib, errors: b.errors },
    ]);
    console.log("");
    const verdict = (ok: boolean) => (ok ? "met" : "MISSED");
    const goals = [
      { figure: "rps ratio agentos / peer", value: ratios.rps, goal: `≥ ${goal.rpsRatio}`, verdict: verdict(ratios.rps >= goal.rpsRatio) },
      { figure: "p99 ratio peer / agentos", value: ratios.p99, goal: "> 1 (lower p99)", verdict: verdict(ratios.p99 > 1) },
      ...(goal.p99Ms ? [{ figure: `agentos p99 at ${o.connections} connections (ms)`, value: a.p99_ms, goal: `≤ ${goal.p99Ms}`, verdict: verdict(a.p99_ms <= goal.p99Ms) }] : []),
      { figure: "server CPU per request ratio peer / agentos", value: ratios.cpu_per_request, goal: "(load-independent)", verdict: "" },
    ];
    printTable(goals);
    console.log(`   load average before the rounds: ${loads.map((l) => l[0]).join(", ")} (figures taken under that load)`);
    if (a.errors + b.errors > 0) console.log(`   warning: errors (non-2xx or socket): agentos ${a.errors}, peer ${b.errors}`);
    const file = writeResults(scenario, { scenario, kind: "versus", machine, route: call.route, options: o, agentos: a, peer: b, ratios, goals, load_averages: loads });
    console.log(`\nwritten: ${file}`);
  } catch (err) {
    console.error(`bench: ${scenario} failed: ${(err as Error).message}\n--- AgentOS output (tail) ---\n${agentos.tail()}`);
    throw err;
  } finally {
    await peer?.stop();
    await agentos.stop();
    await backends.drop();
  }
}
