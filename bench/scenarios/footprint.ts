/**
 * footprint: the size of what ships and what one process costs at rest.
 *  - binary size; the scratch image's root filesystem (scripts/scratch-rootfs.sh: the binary,
 *    the loader and every library `ldd` lists, CA bundle, /etc files) as a tar compressed with
 *    gzip -9 and zstd -19: what a registry stores and a node pulls;
 *  - for every role alone (`--role=<role>` for each role `agentos roles` lists, on the real
 *    PostgreSQL/NATS/Redis, which split roles require) and for `--role=all` (embedded: first
 *    boot on an empty data dir and a restart on it; real backends): start-up time from spawn
 *    to the first /readyz 200 (polled every 10 ms), and RSS after 5 s idle, split into the
 *    process's own pages (RssAnon) and mapped files' pages (RssFile: the executable's code,
 *    shared by every process of the binary on a host);
 *  - the floors (bench/floor/*.ts, compiled the same way, measured the same way): Bun.serve
 *    alone, with Elysia, with postgres.js + NATS (what a split role needs at the least), and
 *    with PGlite opened as AgentOS opens it (what `--role=all` embedded needs at the least).
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { machineInfo } from "../lib/machine";
import { memoryMiB, round } from "../lib/proc";
import { printTable, writeResults } from "../lib/results";
import { BENCH_INTERNAL_KEY, BENCH_JWT_SECRET, REPO, benchBinary, createRealBackends, onCleanup } from "../lib/target";
import { freePort } from "../../test/support/binary";

const IDLE_SETTLE_MS = 5_000;
/** Issue 15's goals: idle RSS of one split role, and of `--role=all` on the embedded defaults. */
export const RSS_GOALS_MIB = { splitRole: 40, allEmbedded: 120 };
const goalOf = (role: string, backend: string) => (role === "all" ? (backend.startsWith("embedded") ? RSS_GOALS_MIB.allEmbedded : undefined) : RSS_GOALS_MIB.splitRole);
const MiB = 2 ** 20;

function sh(script: string, ...args: string[]): string {
  const r = Bun.spawnSync(["sh", "-c", script, "sh", ...args], { cwd: REPO, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${script} failed (${r.exitCode}): ${r.stderr.toString()}`);
  return r.stdout.toString().trim();
}

function imageSizes(binary: string) {
  const root = mkdtempSync(join(tmpdir(), "agentos-rootfs-"));
  try {
    console.log("   assembling the scratch rootfs (scripts/scratch-rootfs.sh)…");
    sh(`AGENTOS_BINARY="$1" "$2" "$3" >/dev/null 2>&1`, binary, join(REPO, "scripts/scratch-rootfs.sh"), root);
    const tar = `tar --sort=name --numeric-owner --mtime=@0 -C "$1" -cf - .`;
    const rawBytes = Number(sh(`${tar} | wc -c`, root));
    console.log("   compressing with gzip -9…");
    const gzipBytes = Number(sh(`${tar} | gzip -9 | wc -c`, root));
    console.log("   compressing with zstd -19 (a minute or two)…");
    const zstdBytes = Number(sh(`${tar} | zstd -19 -T0 -q -c | wc -c`, root));
    const libraries = sh(`ldd "$1" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\\//) print $i }'`, binary).split("\n").filter(Boolean);
    return { rootfs_tar_mib: round(rawBytes / MiB, 1), gzip9_mib: round(gzipBytes / MiB, 1), zstd19_mib: round(zstdBytes / MiB, 1), libraries };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** Role names from `agentos roles` (first column), `all` excluded. */
function listRoles(binary: string): string[] {
  return sh(`"$1" roles`, binary).split("\n").map((l) => l.trim().split(/\s+/)[0]).filter((r) => r && r !== "all");
}

interface Boot {
  start_ms: number;
  idle_rss_mib: number;
  /** Of the idle RSS: the process's own pages / pages of mapped files (the executable's code, shared by its processes). */
  idle_anon_mib: number;
  idle_file_mib: number;
  peak_rss_mib: number;
  threads: number;
}

async function boot(binary: string, args: string[], opts: { bare?: boolean } = {}): Promise<Boot> {
  // bare: a floor program, given only its port (and `args`).
  const port = await freePort();
  const t0 = performance.now();
  const argv = opts.bare ? [binary, `--port=${port}`, ...args] : [binary, "serve", ...args, `--port=${port}`, "--host=127.0.0.1", `--jwt-secret=${BENCH_JWT_SECRET}`, `--internal-key=${BENCH_INTERNAL_KEY}`, "--log-level=warn"];
  const proc = Bun.spawn(argv, {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp" },
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  const kill = onCleanup(async () => {
    proc.kill("SIGTERM");
    await Promise.race([proc.exited, Bun.sleep(15_000).then(() => proc.kill("SIGKILL"))]);
  });
  try {
    const deadline = Date.now() + 120_000;
    let startMs = -1;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`exited with ${proc.exitCode}: ${(await new Response(proc.stderr).text()).slice(-1500)}`);
      const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status === 200, () => false);
      if (ok) {
        startMs = Math.round(performance.now() - t0);
        break;
      }
      await Bun.sleep(10);
    }
    if (startMs < 0) throw new Error("not ready within 120 s");
    await Bun.sleep(IDLE_SETTLE_MS);
    const mem = memoryMiB(proc.pid);
    const threads = Number(/^Threads:\s+(\d+)/m.exec(await Bun.file(`/proc/${proc.pid}/status`).text())?.[1]);
    return { start_ms: startMs, idle_rss_mib: mem.rss, idle_anon_mib: mem.anon, idle_file_mib: mem.file, peak_rss_mib: mem.peak, threads };
  } finally {
    await kill();
  }
}

/** Compiles a floor program (bench/floor/*.ts) the way scripts/build.ts compiles AgentOS. */
function compileFloor(name: string, dir: string): string {
  const out = join(dir, name);
  const r = Bun.spawnSync([process.execPath, "build", "--compile", "--minify-whitespace", "--minify-syntax", join(REPO, "bench/floor", `${name}.ts`), "--outfile", out], { cwd: REPO, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`compiling bench/floor/${name}.ts failed: ${r.stderr.toString()}`);
  return out;
}

export async function runFootprint(o: { image: boolean } = { image: true }) {
  const machine = machineInfo();
  const binary = benchBinary();
  console.log("\n== footprint");
  const binaryMib = round(statSync(binary).size / MiB, 1);
  const image = o.image ? imageSizes(binary) : null;
  if (image) console.log(`   binary ${binaryMib} MiB; scratch rootfs tar ${image.rootfs_tar_mib} MiB, gzip -9 ${image.gzip9_mib} MiB, zstd -19 ${image.zstd19_mib} MiB`);
  else console.log(`   binary ${binaryMib} MiB (image sizes skipped: --no-image)`);

  const rows: Record<string, unknown>[] = [];
  const floors: Record<string, unknown>[] = [];
  const floorRow = (name: string, bin: string, b: Boot, backends = "-") => {
    floors.push({ program: `bench/floor/${name}.ts`, backends, binary_mib: round(statSync(bin).size / MiB, 1), ...b });
    rows.push({ process: `floor: ${name}`, backends, "start→ready ms": b.start_ms, "idle RSS MiB": b.idle_rss_mib, "anon / file MiB": `${b.idle_anon_mib} / ${b.idle_file_mib}`, "peak RSS MiB": b.peak_rss_mib, threads: b.threads, "goal MiB": "—" });
    console.log(`   floor ${name}: binary ${round(statSync(bin).size / MiB, 1)} MiB, ready in ${b.start_ms} ms, idle RSS ${b.idle_rss_mib} MiB`);
  };
  const processes: Record<string, unknown>[] = [];
  const record = (name: string, backend: string, b: Boot) => {
    processes.push({ role: name, backends: backend, ...b });
    const goal = goalOf(name, backend);
    const verdict = goal === undefined ? "—" : `≤ ${goal}: ${b.idle_rss_mib <= goal ? "met" : "MISSED"}`;
    rows.push({ process: `--role=${name}`, backends: backend, "start→ready ms": b.start_ms, "idle RSS MiB": b.idle_rss_mib, "anon / file MiB": `${b.idle_anon_mib} / ${b.idle_file_mib}`, "peak RSS MiB": b.peak_rss_mib, threads: b.threads, "goal MiB": verdict });
    console.log(`   --role=${name} (${backend}): ready in ${b.start_ms} ms, idle RSS ${b.idle_rss_mib} MiB`);
  };

  // The floors: what Bun alone and Bun + Elysia cost, measured the same way.
  const floorDir = mkdtempSync(join(tmpdir(), "agentos-floor-"));
  try {
    for (const name of ["bun-serve", "elysia-serve"]) {
      const bin = compileFloor(name, floorDir);
      floorRow(name, bin, await boot(bin, [], { bare: true }));
    }
  } catch (err) {
    rmSync(floorDir, { recursive: true, force: true });
    throw err;
  }

  // Embedded: a first boot (creates the database) and a restart on the same data dir; the
  // PGlite floor (PGlite opened as AgentOS opens it, one query, Bun.serve) measured the same way.
  const dataDir = mkdtempSync(join(tmpdir(), "agentos-bench-"));
  const floorDataDir = mkdtempSync(join(tmpdir(), "agentos-bench-"));
  try {
    const pgliteFloor = compileFloor("pglite-serve", floorDir);
    floorRow("pglite-serve", pgliteFloor, await boot(pgliteFloor, [`--data-dir=${floorDataDir}`], { bare: true }), "embedded, first boot");
    floorRow("pglite-serve", pgliteFloor, await boot(pgliteFloor, [`--data-dir=${floorDataDir}`], { bare: true }), "embedded, restart");
    record("all", "embedded, first boot", await boot(binary, ["--role=all", `--data-dir=${dataDir}`]));
    record("all", "embedded, restart", await boot(binary, ["--role=all", `--data-dir=${dataDir}`]));
  } catch (err) {
    console.error(`   --role=all embedded failed: ${(err as Error).message}`);
    processes.push({ role: "all", backends: "embedded", error: (err as Error).message });
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(floorDataDir, { recursive: true, force: true });
  }

  // Real backends: migrate once, so each role's start-up is its own boot, not the migrations.
  const backends = await createRealBackends();
  const scratch = mkdtempSync(join(tmpdir(), "agentos-bench-"));
  try {
    const t0 = performance.now();
    sh(`"$1" migrate "$2" >/dev/null`, binary, `--database-url=${backends.databaseUrl}`);
    const migrateMs = Math.round(performance.now() - t0);
    console.log(`   agentos migrate on a fresh database: ${migrateMs} ms`);
    processes.push({ role: "migrate", backends: "real", run_ms: migrateMs });
    const common = [...backends.args, `--data-dir=${scratch}`];
    // What every split role needs at the least (postgres.js + NATS + Bun.serve), on the same servers.
    const clientsFloor = compileFloor("clients-serve", floorDir);
    floorRow("clients-serve", clientsFloor, await boot(clientsFloor, backends.args.filter((a) => /^--(database|nats)-url=/.test(a)), { bare: true }), "real");
    for (const role of [...listRoles(binary), "all"]) {
      try {
        record(role, "real", await boot(binary, [`--role=${role}`, ...common]));
      } catch (err) {
        console.error(`   --role=${role} failed: ${(err as Error).message}`);
        processes.push({ role, backends: "real", error: (err as Error).message });
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
    rmSync(floorDir, { recursive: true, force: true });
    await backends.drop();
  }

  console.log("");
  printTable(rows);
  const file = writeResults("footprint", {
    scenario: "footprint",
    goals_mib: RSS_GOALS_MIB,
    machine,
    binary: { path: binary, mib: binaryMib },
    image,
    idle_settle_ms: IDLE_SETTLE_MS,
    floors,
    processes,
  });
  console.log(`\nwritten: ${file}`);
}
