/**
 * profile: a CPU profile of the read path. The server runs from source under
 * `bun --cpu-prof` (same code as the binary, with readable function names and files), wrk
 * drives the read call at 64 connections, then SIGTERM makes Bun write the .cpuprofile.
 * The samples are summed by function (self time, and inclusive time counted once per
 * sample) and by origin: AgentOS code (src/), each npm package, and the runtime.
 */
import { mkdtempSync, readdirSync, readFileSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { checkCall, readCall, signup, writeCall } from "../lib/fixtures";
import { machineInfo } from "../lib/machine";
import { round } from "../lib/proc";
import { RESULTS_DIR, printTable, writeResults } from "../lib/results";
import { REPO, startTarget, type Mode } from "../lib/target";
import { ensureWrk, runWrk, summaryRow } from "../lib/wrk";
import { runLayers } from "./layers";
import { runWriteCosts } from "./write-cost";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function originOf(url: string): string {
  if (!url) return "runtime (native)";
  const path = url.replace(/^file:\/\//, "");
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (pkg) return `npm:${pkg[1]}`;
  if (path.startsWith(join(REPO, "src"))) return "agentos (src/)";
  if (path.startsWith(REPO)) return `agentos (${relative(REPO, path).split("/")[0]}/)`;
  return "runtime (bun builtins)";
}

function frameKey(n: ProfileNode): string {
  const f = n.callFrame;
  const where = f.url ? `${relative(REPO, f.url.replace(/^file:\/\//, ""))}:${f.lineNumber + 1}` : "";
  return `${f.functionName || "(anonymous)"} ${where}`.trim();
}

export function analyse(profile: CpuProfile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const origins = new Map<string, number>();
  /** Native frames (no url) charged to the nearest JavaScript caller: who asked for the work. */
  const callerOfNative = new Map<string, number>();
  const idle = new Set(["(idle)", "(program)", "(root)"]);
  let busy = 0;
  // timeDeltas[i] is the time before sample i: the sample's weight is the next delta.
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i])!;
    const weight = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0;
    const name = node.callFrame.functionName;
    if (idle.has(name)) continue;
    busy += weight;
    const key = frameKey(node);
    self.set(key, (self.get(key) ?? 0) + weight);
    const origin = name === "(garbage collector)" ? "runtime (GC)" : originOf(node.callFrame.url);
    origins.set(origin, (origins.get(origin) ?? 0) + weight);
    if (!node.callFrame.url) {
      let id = parent.get(node.id);
      while (id !== undefined && !byId.get(id)!.callFrame.url) id = parent.get(id);
      const caller = id === undefined ? "(no JS caller)" : frameKey(byId.get(id)!);
      const k = `${name || "(native)"} ← ${caller}`;
      callerOfNative.set(k, (callerOfNative.get(k) ?? 0) + weight);
    }
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const n = byId.get(id)!;
      if (originOf(n.callFrame.url) !== "agentos (src/)") continue;
      const k = frameKey(n);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + weight);
    }
  }
  const pct = (us: number) => round((100 * us) / busy, 1);
  const top = (m: Map<string, number>, n: number, filter: (k: string) => boolean = () => true) =>
    [...m.entries()].filter(([k]) => filter(k)).sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, us]) => ({ function: k, ms: round(us / 1000, 0), percent_of_busy: pct(us) }));
  return {
    busy_ms: round(busy / 1000, 0),
    by_origin: [...origins.entries()].sort((a, b) => b[1] - a[1]).map(([origin, us]) => ({ origin, ms: round(us / 1000, 0), percent_of_busy: pct(us) })),
    top_self: top(self, 25),
    top_self_agentos: top(self, 15, (k) => k.includes(" src/")),
    top_inclusive_agentos: top(inclusive, 25),
    top_native_by_js_caller: top(callerOfNative, 20),
  };
}

/** Re-analyses a saved profile: bun run bench/scenarios/profile.ts <file.cpuprofile> */
if (import.meta.main) {
  const a = analyse(JSON.parse(readFileSync(Bun.argv[2], "utf8")));
  for (const [title, rows] of Object.entries(a)) if (Array.isArray(rows)) { console.log(`\n${title}`); printTable(rows.slice(0, 20)); }
}

/** `write`: the message write (its in-process costs, then its profile under wrk) instead of the read. */
export async function runProfile(o: { seconds: number; path?: string; mode?: Mode; iterations: number; cpuProfile: boolean; write?: boolean }) {
  ensureWrk();
  const machine = machineInfo();
  const mode = o.mode ?? "real";
  const kind = o.write ? "write" : "read";
  if (o.write) {
    const costs = await runWriteCosts({ iterations: o.iterations });
    writeResults("profile-write-costs", { scenario: "profile", machine, mode: "real", method: "in process, CPU time (process.cpuUsage) over concurrent calls", ...costs });
  } else {
    const layers = await runLayers({ real: mode === "real", iterations: o.iterations });
    writeResults(`profile-layers-${mode}`, { scenario: "profile", machine, mode, method: "in process, CPU time (process.cpuUsage) per call, median of 5 batches", ...layers });
  }
  if (!o.cpuProfile) return;
  const dir = mkdtempSync(join(tmpdir(), "agentos-cpuprof-"));
  console.log(`\n== profile of the ${kind} path: bun --cpu-prof run src/main.ts (${mode} backends), wrk 64 connections for ${o.seconds} s`);
  const target = await startTarget({ mode, cmd: [process.execPath, "--cpu-prof", `--cpu-prof-dir=${dir}`, "run", join(REPO, "src/main.ts")] });
  let load;
  let call;
  try {
    const token = await signup(target.url);
    call = o.write ? await writeCall(target.url, token, o.path ? { path: o.path, body: "{}" } : undefined) : await readCall(target.url, token, o.path);
    await checkCall(target.url, token, call);
    load = await runWrk({ url: target.url + call.path, connections: 64, durationS: o.seconds, token, method: call.method, body: call.body, serverPid: target.pid });
  } finally {
    await target.stop();
  }
  const files = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"));
  if (files.length === 0) throw new Error(`no .cpuprofile written in ${dir}`);
  const raw = join(dir, files[0]);
  const kept = join(RESULTS_DIR, `profile-${kind}-${mode}.cpuprofile`);
  copyFileSync(raw, kept);
  const analysis = analyse(JSON.parse(readFileSync(raw, "utf8")));
  printTable([summaryRow(`profiled ${call.route}`, load)]);
  console.log("\nCPU by origin (% of non-idle samples):");
  printTable(analysis.by_origin);
  console.log("\nTop self time, AgentOS code:");
  printTable(analysis.top_self_agentos);
  console.log("\nTop inclusive time, AgentOS functions (callees included):");
  printTable(analysis.top_inclusive_agentos.slice(0, 15));
  console.log("\nNative time by the JavaScript frame that called it:");
  printTable(analysis.top_native_by_js_caller.slice(0, 15));
  console.log("\nTop self time, everything:");
  printTable(analysis.top_self.slice(0, 15));
  const file = writeResults(o.write ? `profile-write-${mode}` : `profile-${mode}`, { scenario: "profile", machine, route: call.route, mode, load, profile_file: relative(REPO, kept), analysis });
  console.log(`\nwritten: ${file} (raw profile: ${relative(REPO, kept)}; open it in Chrome DevTools → Performance)`);
}
