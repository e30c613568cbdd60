/** The machine a result came from: written into every results file. */
import { readFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { loadAverage } from "./proc";

const REPO = new URL("../..", import.meta.url).pathname;

function sh(cmd: string[]): string {
  try {
    const r = Bun.spawnSync(cmd, { cwd: REPO, stdout: "pipe", stderr: "pipe" });
    return (r.stdout.toString() || r.stderr.toString()).trim();
  } catch {
    return "";
  }
}

export function machineInfo() {
  const nproc = Number(sh(["nproc"])) || cpus().length;
  const model = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? cpus()[0]?.model ?? "unknown";
  const commit = sh(["git", "rev-parse", "HEAD"]);
  const dirty = sh(["git", "status", "--porcelain", "--untracked-files=no"]).length > 0;
  return {
    date: new Date().toISOString(),
    nproc,
    cpu_model: model,
    memory_gib: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: sh(["uname", "-r"]),
    bun_version: Bun.version,
    wrk_version: sh(["wrk", "-v"]).split("\n")[0] ?? "",
    git_commit: commit,
    git_dirty: dirty,
    load_average_at_start: loadAverage(),
  };
}
