/**
 * table: the markdown tables of bench/README.md, from the latest bench/results/*.json, with
 * the seed's target beside each figure. Paste the output into the README after a run.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { RESULTS_DIR } from "../lib/results";

const load = (name: string) => {
  const file = join(RESULTS_DIR, `${name}.json`);
  return existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : null;
};

function machineLine(m: any) {
  return `${m.date.slice(0, 16).replace("T", " ")} UTC, ${m.nproc} × ${m.cpu_model}, ${m.memory_gib} GiB, Bun ${m.bun_version}, ${m.wrk_version.split(" [")[0]}, commit ${m.git_commit.slice(0, 8)}${m.git_dirty ? " + uncommitted changes" : ""}, load average at start ${m.load_average_at_start.join(" / ")}`;
}

function httpTable(name: string, title: string) {
  const r = load(name);
  if (!r) return `_no ${name} results yet: \`bun run bench ${name}\`_\n`;
  const rows = [
    `**${title}** — ${machineLine(r.machine)}. Window ${r.options.durationS} s per closed-loop setting (paced: ≥ 3 pace periods).\n`,
    "| back ends | setting | route | rps (req/min) | p50 / p95 / p99 ms | errors | wrk CPU | server CPU | server RSS MiB | /healthz same load: rps, p95 ms | target |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const run of r.runs.filter((x: any) => x.result)) {
    const x = run.result;
    const b = run.baseline_healthz;
    const errors = x.errors.status + x.errors.connect + x.errors.read + x.errors.write + x.errors.timeout;
    const target = run.setting.startsWith("constant") ? "p95 < 15 ms at 10,000 conns; ≥ 100,000 req/min" : run.setting.endsWith("c=64") ? "peer Go+Gin: 12–14k rps, p99 ~22 ms (×2 aimed)" : "—";
    rows.push(
      `| ${run.mode} | ${run.setting}${x.offered_rps ? ` (offered ${x.offered_rps} rps)` : ""} | ${run.route} | ${x.rps} (${x.requests_per_minute.toLocaleString("en")}) | ${x.latency_ms.p50} / ${x.latency_ms.p95} / ${x.latency_ms.p99} | ${errors} | ${x.load_tool_cpu.cpu_percent}% | ${x.server_cpu?.cpu_percent ?? "?"}% | ${run.server_rss_mib.rss} | ${b ? `${b.rps}, ${b.latency_ms.p95}` : "—"} | ${target} |`,
    );
  }
  return rows.join("\n") + "\n";
}

function footprintTable() {
  const r = load("footprint");
  if (!r) return "_no footprint results yet: `bun run bench footprint`_\n";
  const rows = [`**footprint** — ${machineLine(r.machine)}.\n`];
  if (r.image) {
    rows.push(
      "| what | size | target |",
      "|---|---|---|",
      `| dist/agentos | ${r.binary.mib} MiB | — |`,
      `| scratch rootfs (binary + ${r.image.libraries.length} libraries + /etc), tar | ${r.image.rootfs_tar_mib} MiB | — |`,
      `| … gzip -9 | ${r.image.gzip9_mib} MiB | 20–50 MB compressed |`,
      `| … zstd -19 | ${r.image.zstd19_mib} MiB | 20–50 MB compressed |`,
      "",
    );
  }
  rows.push(`RSS ${r.idle_settle_ms / 1000} s after the first /readyz 200 (target: < 30 MB idle RSS per role process):\n`, "| process | back ends | start → ready ms | idle RSS MiB | peak RSS MiB | threads |", "|---|---|---|---|---|---|");
  for (const f of r.floors ?? []) rows.push(`| floor: ${f.program} (${f.binary_mib} MiB binary) | — | ${f.start_ms} | ${f.idle_rss_mib} | ${f.peak_rss_mib} | ${f.threads} |`);
  for (const p of r.processes) {
    if (p.role === "migrate") rows.push(`| \`agentos migrate\` (fresh database) | real | ${p.run_ms} (run) | — | — | — |`);
    else if (p.error) rows.push(`| \`--role=${p.role}\` | ${p.backends} | failed: ${String(p.error).slice(0, 80)} | | | |`);
    else rows.push(`| \`--role=${p.role}\` | ${p.backends} | ${p.start_ms} | ${p.idle_rss_mib} | ${p.peak_rss_mib} | ${p.threads} |`);
  }
  return rows.join("\n") + "\n";
}

export function renderTables() {
  return [httpTable("read", "read"), httpTable("write", "write"), footprintTable()].join("\n");
}

if (import.meta.main) console.log(renderTables());
