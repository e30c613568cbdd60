/**
 * The HTTP load scenarios (read, write): for each server mode (embedded, real backends) the
 * same call at each setting — closed-loop at 64 / 1,000 / 10,000 connections (as fast as the
 * server answers) and open-loop-like at 10,000 connections and a constant offered rate (the
 * seed's "10,000 concurrent users": 10,000 open connections sharing 100,000+ requests per
 * minute) — each followed by the same run against GET /healthz, the trivial endpoint that
 * shows what the load tool and the HTTP stack alone can do on this machine.
 */
import { checkCall, signup, type Call } from "../lib/fixtures";
import { machineInfo } from "../lib/machine";
import { cpuSeconds, memoryMiB, loadAverage } from "../lib/proc";
import { printTable, writeResults } from "../lib/results";
import { startTarget, type Mode } from "../lib/target";
import { ensureWrk, runWrk, summaryRow, type WrkResult } from "../lib/wrk";

export interface LoadOptions {
  modes: Mode[];
  connections: number[];
  /** The constant offered rate (rps) of the paced 10,000-connection setting; 0 = skip. */
  rate: number;
  rateConnections: number;
  durationS: number;
  warmupS: number;
  holdMs: number;
  baseline: boolean;
  /** Picks the call on a started server (after signup). */
  call(base: string, token: string): Promise<Call>;
}

interface Setting {
  name: string;
  connections: number;
  paceMs?: number;
}

function settingsOf(o: LoadOptions): Setting[] {
  const s: Setting[] = o.connections.map((c) => ({ name: `closed-loop c=${c}`, connections: c }));
  if (o.rate > 0) s.push({ name: `constant ${o.rate} rps c=${o.rateConnections}`, connections: o.rateConnections, paceMs: (o.rateConnections * 1000) / o.rate });
  return s;
}

/**
 * Waits until the server is idle (< 5% of a core over 500 ms, at most 60 s): when wrk stops,
 * the server still works off what it had queued, which would otherwise burden the next run.
 */
async function settle(pid: number): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < 60_000) {
    const a = cpuSeconds(pid);
    await Bun.sleep(500);
    if (cpuSeconds(pid) - a < 0.025) break;
  }
  return Math.round(performance.now() - t0);
}

/** A paced run must last several pace periods to be a steady state. */
const durationOf = (o: LoadOptions, s: Setting) => (s.paceMs ? Math.max(o.durationS, Math.ceil((3 * s.paceMs) / 1000)) : o.durationS);

export async function runHttpLoad(scenario: string, o: LoadOptions) {
  ensureWrk();
  const machine = machineInfo();
  const runs: Record<string, unknown>[] = [];
  const table: Record<string, unknown>[] = [];
  for (const mode of o.modes) {
    console.log(`\n== ${scenario} on ${mode === "real" ? "real PostgreSQL + Redis + NATS" : "the embedded defaults (PGlite, in-process cache and bus)"}`);
    const target = await startTarget({ mode });
    try {
      const token = await signup(target.url);
      const call = await o.call(target.url, token);
      await checkCall(target.url, token, call);
      console.log(`   server pid ${target.pid} ready in ${target.startMs} ms; call: ${call.method} ${call.path}`);
      if (o.warmupS > 0) {
        console.log(`   warm-up ${o.warmupS} s at 64 connections (not recorded)`);
        await runWrk({ url: target.url + call.path, connections: 64, durationS: o.warmupS, token, method: call.method, body: call.body });
      }
      const idle = memoryMiB(target.pid);
      for (const setting of settingsOf(o)) {
        const hold = setting.connections >= 1000 ? o.holdMs : 0;
        const common = { connections: setting.connections, durationS: durationOf(o, setting), paceMs: setting.paceMs, holdMs: hold, serverPid: target.pid };
        const settledMs = await settle(target.pid);
        const load = loadAverage();
        const result = await runWrk({ ...common, url: target.url + call.path, token, method: call.method, body: call.body });
        const mem = memoryMiB(target.pid);
        let baseline: WrkResult | undefined;
        if (o.baseline) await settle(target.pid);
        if (o.baseline) baseline = await runWrk({ ...common, url: `${target.url}/healthz` });
        runs.push({ mode, setting: setting.name, route: call.route, result, baseline_healthz: baseline, server_rss_mib: mem, load_average_before: load, waited_for_idle_ms: settledMs });
        table.push(summaryRow(`${mode} ${setting.name}`, result, { "rss MiB": mem.rss }));
        if (baseline) table.push(summaryRow(`  └ /healthz same load`, baseline));
        const bad = result.errors.status + result.errors.connect + result.errors.read + result.errors.write + result.errors.timeout;
        if (bad > 0) console.log(`   warning: ${setting.name}: ${JSON.stringify(result.errors)} (non-2xx/socket errors: the figures include failures)`);
        console.log(`   ${setting.name}: ${result.rps} rps, p50 ${result.latency_ms.p50} ms, p95 ${result.latency_ms.p95} ms, p99 ${result.latency_ms.p99} ms; wrk ${result.load_tool_cpu.cpu_percent}% CPU, server ${result.server_cpu?.cpu_percent}% CPU`);
      }
      runs.push({ mode, setting: "idle after warm-up", server_rss_mib: idle, start_ms: target.startMs });
    } catch (err) {
      console.error(`bench: ${scenario}/${mode} failed: ${(err as Error).message}\n--- server output (tail) ---\n${target.tail()}`);
      throw err;
    } finally {
      await target.stop();
    }
  }
  console.log("");
  printTable(table);
  const file = writeResults(scenario, {
    scenario,
    machine,
    load_tool: "wrk (Debian) with bench/lua/http.lua; closed-loop = every connection sends its next request when the previous answer arrives; constant = paced per connection (see the Lua header)",
    options: { ...o, call: undefined },
    runs,
  });
  console.log(`\nwritten: ${file}`);
}
