/** Figures of a running process read from /proc (Linux): CPU time and resident memory. */
import { readdirSync, readFileSync } from "node:fs";

const CLK_TCK = Number(Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim()) || 100;

/** User and system CPU seconds the process has used so far (its threads included). */
export function cpuTimes(pid: number): { user: number; sys: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // fields after the ")" that closes the command name; utime and stime are fields 14 and 15
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { user: Number(fields[11]) / CLK_TCK, sys: Number(fields[12]) / CLK_TCK };
}

/** User + system CPU seconds the process has used so far (its threads included). */
export function cpuSeconds(pid: number): number {
  const t = cpuTimes(pid);
  return t.user + t.sys;
}

/** VmRSS and VmHWM (peak) in MiB. */
/**
 * RSS, its peak, and RSS split in two: `anon`, the process's own memory (heap, stacks, wasm
 * memory), and `file`, pages of mapped files — mostly the executable's code, which every process
 * running the same binary on a host shares and the kernel can drop and read again.
 */
export function memoryMiB(pid: number): { rss: number; peak: number; anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rss: round(kb("VmRSS") / 1024, 1), peak: round(kb("VmHWM") / 1024, 1), anon: round(kb("RssAnon") / 1024, 1), file: round(kb("RssFile") / 1024, 1) };
}

/** Measures a process's CPU use over an interval: call the returned function at the end. */
/** The kernel's share (sys_seconds) tells syscalls (socket reads and writes: round trips) from JavaScript work. */
export function cpuMeter(pid: number): () => { cpu_seconds: number; cpu_percent: number; sys_seconds: number } {
  const start = cpuTimes(pid);
  const t0 = performance.now();
  return () => {
    const now = cpuTimes(pid);
    const user = now.user - start.user;
    const sys = now.sys - start.sys;
    const wall = (performance.now() - t0) / 1000;
    return { cpu_seconds: round(user + sys, 2), cpu_percent: round((100 * (user + sys)) / wall, 1), sys_seconds: round(sys, 2) };
  };
}

export function loadAverage(): number[] {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).map(Number);
}

export const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

/** Busy share of the whole machine (all cores, from /proc/stat) over an interval: call the returned function at the end. */
export function machineCpuMeter(): () => { busy_percent: number; cores: number } {
  const read = () => {
    const lines = readFileSync("/proc/stat", "utf8").split("\n");
    const f = lines[0].split(/\s+/).slice(1).map(Number);
    const idle = f[3] + (f[4] ?? 0);
    const total = f.reduce((a, b) => a + b, 0);
    return { idle, total, cores: lines.filter((l) => /^cpu\d/.test(l)).length };
  };
  const a = read();
  return () => {
    const b = read();
    return { busy_percent: round((100 * (1 - (b.idle - a.idle) / Math.max(1, b.total - a.total))) * a.cores, 1), cores: a.cores };
  };
}

/** CPU seconds of every process with this command name (e.g. all PostgreSQL backends), over an interval. */
export function commandCpuMeter(comm: string): () => { cpu_seconds: number; cpu_percent: number } {
  const sum = () => {
    let s = 0;
    for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
      try {
        if (readFileSync(`/proc/${pid}/comm`, "utf8").trim() === comm) s += cpuSeconds(Number(pid));
      } catch {
        /* exited */
      }
    }
    return s;
  };
  const start = sum();
  const t0 = performance.now();
  return () => {
    const used = sum() - start;
    return { cpu_seconds: round(used, 2), cpu_percent: round((100 * used) / ((performance.now() - t0) / 1000), 1) };
  };
}
