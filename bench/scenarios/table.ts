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

/** read / write against the Gin peer (bench/scenarios/versus.ts). */
function versusTable(name: string) {
  const r = load(name);
  if (!r || r.kind !== "versus") return `_no ${name} results against the peer yet: \`bun run bench ${name}\`_\n`;
  const o = r.options;
  const rows = [
    `**${name}: AgentOS vs the Go + Gin peer** (\`bun run bench ${name}\`) — ${machineLine(r.machine)}; load average before each round ${r.load_averages.map((l: number[]) => l[0]).join(", ")}. ${r.route}, ${o.rounds} alternating rounds of ${o.durationS} s per server at ${o.connections} connections (wrk), medians of the rounds; real PostgreSQL + Redis, rate limit lifted.\n`,
    "| server | rps | p50 ms | p99 ms | server CPU µs per request | RSS MiB | errors |",
    "|---|---|---|---|---|---|---|",
    ...[["AgentOS", r.agentos], ["Go + Gin peer", r.peer]].map(([n, x]: any) => `| ${n} | ${x.rps} | ${x.p50_ms} | ${x.p99_ms} | ${x.cpu_us_per_request} | ${x.rss_mib} | ${x.errors} |`),
    "",
    "| figure | value | goal | verdict |",
    "|---|---|---|---|",
    ...r.goals.map((g: any) => `| ${g.figure} | ${g.value} | ${g.goal} | ${g.verdict || "—"} |`),
  ];
  return rows.join("\n") + "\n";
}

function imageTable() {
  const r = load("image");
  if (!r) return "_no image results yet: `bun run bench image`_\n";
  const mb = (b: number) => Math.round(b / 1e5) / 10;
  const rows = [
    `**image** (\`bun run bench image\`, podman-built FROM scratch) — ${machineLine(r.machine)}. Bun's runtime alone: ${mb(r.runtime.raw)} MB raw, ${mb(r.runtime.gzip9)} MB gzip -9, ${mb(r.runtime.zstd19)} MB zstd -19.\n`,
    "| image | binary MB | `podman save \\| gzip -9` MB | goal ≤ 56 | OCI zstd layers (podman default / -19) MB | goal ≤ 45 (zstd -19) | ours on top of Bun, gzip / zstd-19 MB |",
    "|---|---|---|---|---|---|---|",
    ...r.images.map((i: any) => `| ${i.variant} | ${mb(i.binary_bytes)} | ${mb(i.save_gzip9)} | ${i.save_gzip9 / 1e6 <= r.goals.gzip_mb ? "met" : "missed"} | ${mb(i.oci_zstd)} / ${mb(i.oci_zstd19)} | ${i.oci_zstd19 / 1e6 <= r.goals.zstd_mb ? "met" : "missed"} | ${mb(i.save_gzip9 - r.runtime.gzip9)} / ${mb(i.oci_zstd19 - r.runtime.zstd19)} |`),
    "",
    "| what the bundle embeds | raw MB | gzip -9 MB | zstd -19 MB |",
    "|---|---|---|---|",
    ...r.payload.map((f: any) => `| ${f.file} | ${mb(f.raw)} | ${mb(f.gzip9)} | ${mb(f.zstd19)} |`),
  ];
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
  rows.push(`RSS ${r.idle_settle_ms / 1000} s after the first /readyz 200 (\`bun run bench rss\`; goals: ≤ 40 MiB per split role, ≤ 120 MiB \`--role=all\` embedded):\n`, "| process | back ends | start → ready ms | idle RSS MiB | of it anon / file | peak RSS MiB | threads | goal |", "|---|---|---|---|---|---|---|---|");
  // Results written before the split have no anon/file figures.
  const split = (x: { idle_anon_mib?: number; idle_file_mib?: number }) => (x.idle_anon_mib === undefined ? "—" : `${x.idle_anon_mib} / ${x.idle_file_mib}`);
  for (const f of r.floors ?? []) rows.push(`| floor: ${f.program} (${f.binary_mib} MiB binary) | ${f.backends ?? "—"} | ${f.start_ms} | ${f.idle_rss_mib} | ${split(f)} | ${f.peak_rss_mib} | ${f.threads} | — |`);
  for (const p of r.processes) {
    if (p.role === "migrate") rows.push(`| \`agentos migrate\` (fresh database) | real | ${p.run_ms} (run) | — | — | — | — |`);
    else if (p.error) rows.push(`| \`--role=${p.role}\` | ${p.backends} | failed: ${String(p.error).slice(0, 80)} | | | | | |`);
    else {
      const goal = p.role === "all" ? (String(p.backends).startsWith("embedded") ? 120 : undefined) : 40;
      rows.push(`| \`--role=${p.role}\` | ${p.backends} | ${p.start_ms} | ${p.idle_rss_mib} | ${split(p)} | ${p.peak_rss_mib} | ${p.threads} | ${goal === undefined ? "—" : `≤ ${goal}: ${p.idle_rss_mib <= goal ? "met" : "missed"}`} |`);
    }
  }
  return rows.join("\n") + "\n";
}

function runsTable() {
  const r = load("runs");
  if (!r) return "_no runs results yet: `bun run bench runs`_\n";
  const o = r.options;
  const rows = [
    `**runs** — ${machineLine(r.machine)}. Two-step agent (model → \`http\` tool on loopback → model), fake model ${o.latencyMs} ms, worker concurrency ${o.workerConcurrency}; ${o.sequential} runs one at a time, then ${o.runs} created at once.\n`,
    "| back ends | processes | overhead per step, one run at a time: p50 (p90) ms | runs/s (1,000 at once) | run latency p50 / p95 / p99 ms | of which queued p50 ms | worker CPU | worker RSS peak MiB | other CPU (API roles / PostgreSQL / NATS / machine) | target |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const x of r.results) {
    const c = x.concurrent;
    const other = c.api ? `${c.api.cpu_percent}% / ${c.postgres_all_backends?.cpu_percent ?? "?"}% / ${c.nats_server?.cpu_percent ?? "?"}% / ${c.machine.busy_percent}% of ${c.machine.cores * 100}%` : `— (one process) / — / — / ${c.machine.busy_percent}% of ${c.machine.cores * 100}%`;
    rows.push(
      `| ${x.mode} | ${x.processes} | ${x.sequential.overhead_per_step_ms.p50} (${x.sequential.overhead_per_step_ms.p90}) | ${c.runs_per_s} | ${c.run_ms.p50} / ${c.run_ms.p95} / ${c.run_ms.p99} | ${c.queued_ms.p50} | ${c.worker.cpu_percent}% | ${c.worker.rss_peak_mib} | ${other} | — (seed: none; measured) |`,
    );
  }
  return rows.join("\n") + "\n";
}

function wsTable() {
  const r = load("ws");
  if (!r) return "_no ws results yet: `bun run bench ws`_\n";
  const rows = [
    `**ws** — ${machineLine(r.machine)}. ${r.options.clients.toLocaleString("en")} WebSocket clients of one organization in ${r.options.clientProcesses} client processes; ${r.options.events} \`agent.created\` events per phase; latency = receipt − the event's commit time.\n`,
    "| back ends | process measured | sockets open (connect time) | RSS MiB: before / 10k open / peak | events/s (frames/s) | delivered / expected | latency p50 / p95 / p99 / max ms | process CPU | machine CPU |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  for (const x of r.results) {
    for (const p of x.phases) {
      rows.push(
        `| ${x.mode} | ${x.gateway_process} | ${x.opened.toLocaleString("en")} (${x.connect_ms} ms) | ${x.gateway_rss_mib.before_sockets} / ${x.gateway_rss_mib.sockets_open_idle} / ${p.gateway_rss_peak_mib} | ${p.event_rate_per_s} (${p.frames_offered_per_s.toLocaleString("en")}) | ${p.frames_received_agent_created.toLocaleString("en")} / ${p.frames_expected_agent_created.toLocaleString("en")} | ${p.delivery_latency_ms.p50} / ${p.delivery_latency_ms.p95} / ${p.delivery_latency_ms.p99} / ${p.delivery_latency_ms.max} | ${p.gateway_cpu.cpu_percent}% | ${p.machine.busy_percent}% of ${p.machine.cores * 100}% |`,
      );
    }
  }
  return rows.join("\n") + "\n";
}

export function renderTables() {
  return [versusTable("read"), versusTable("write"), httpTable("read-sweep", "read (AgentOS alone, `bench read --sweep`)"), httpTable("write-sweep", "write (`bench write --sweep`)"), footprintTable(), imageTable(), runsTable(), wsTable()].join("\n");
}

if (import.meta.main) console.log(renderTables());
