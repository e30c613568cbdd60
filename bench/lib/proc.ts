/** Figures of a running process read from /proc (Linux): CPU time and resident memory. */
import { readFileSync } from "node:fs";

const CLK_TCK = Number(Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim()) || 100;

/** User + system CPU seconds the process has used so far (its threads included). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // fields after the ")" that closes the command name; utime and stime are fields 14 and 15
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** VmRSS and VmHWM (peak) in MiB. */
export function memoryMiB(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rss: round(kb("VmRSS") / 1024, 1), peak: round(kb("VmHWM") / 1024, 1) };
}

/** Measures a process's CPU use over an interval: call the returned function at the end. */
export function cpuMeter(pid: number): () => { cpu_seconds: number; cpu_percent: number } {
  const start = cpuSeconds(pid);
  const t0 = performance.now();
  return () => {
    const used = cpuSeconds(pid) - start;
    const wall = (performance.now() - t0) / 1000;
    return { cpu_seconds: round(used, 2), cpu_percent: round((100 * used) / wall, 1) };
  };
}

export function loadAverage(): number[] {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).map(Number);
}

export const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;
