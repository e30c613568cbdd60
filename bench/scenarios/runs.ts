/**
 * runs: run orchestration under load. A two-step agent (model → one `http` tool call answered
 * by a loopback server → model) against the fake model (test/support/fake-model.ts) answering
 * after `latency` ms, on the compiled binary:
 *
 *   - real: `--role=gateway,auth,agents,memory,tools,billing,notify` in one process and
 *     `--role=worker` alone in another (its CPU and RSS are the worker's), on the real
 *     PostgreSQL/NATS/Redis (fresh database and namespace);
 *   - embedded: `--role=all` in one process (PGlite, in-process bus).
 *
 * Phases, per mode:
 *   1. sequential: `sequential` runs one after the other (nothing else running): the
 *      orchestration overhead per step = (run time − model time) / 3 steps, where run time is
 *      the server's created_at → completed_at and model time = 2 × latency.
 *   2. concurrent: `runs` runs created at once (one thread each, threads made beforehand),
 *      every one awaited with GET /v1/runs/:id/wait: runs/s over first created_at → last
 *      completed_at, run time p50/p95/p99, the part of it spent queued (created_at →
 *      started_at), overhead per step at p50, and the worker's CPU and RSS meanwhile.
 *
 * The fake model and the tool server live in this (client) process, not in the server's.
 * Bun's fetch runs at most 256 requests at once unless BUN_CONFIG_MAX_HTTP_REQUESTS says
 * otherwise: this script re-executes itself with it raised (1,000 waits in flight), and the
 * worker gets it too (1,000 model calls in flight).
 */
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { startFakeModel, type FakeModel } from "../../test/support/fake-model";
import { startToolServer, type ToolServer } from "../../test/support/testkit";
import { machineInfo } from "../lib/machine";
import { commandCpuMeter, cpuMeter, machineCpuMeter, memoryMiB, round } from "../lib/proc";
import { printTable, writeResults } from "../lib/results";
import { createRealBackends, REPO, startTarget, type Mode, type Target } from "../lib/target";
import { analyse } from "./profile";

export const RUN_PLAN_LIMITS = JSON.stringify({ free: { runs_per_month: 100_000_000, tokens_per_month: 100_000_000_000, requests_per_minute: 1_000_000_000 } });
const FETCH_LIMIT = "8192";
const STEPS = 3;

export interface RunsOptions {
  modes: Mode[];
  runs: number;
  sequential: number;
  latencyMs: number;
  workerConcurrency: number;
  /** Run the server from source under `bun --cpu-prof`: the API roles and the worker each (real) / the whole server (embedded). */
  profile: boolean;
  /** Create every run with per-run overrides (RUN_OVERRIDES): their cost on the overhead per step. */
  runOptions: boolean;
}

/** Every per-run override that keeps the two-step shape (model → tool → model). */
export const RUN_OVERRIDES = {
  model: "fake-model", instructions: "You call the probe tool, then answer.", additional_instructions: "Be brief.",
  temperature: 0.5, top_p: 0.9, max_output_tokens: 256, max_steps: 5, max_tool_calls: 5, tool_choice: "auto", parallel_tool_calls: true, metadata: { bench: "runs" },
};

/** Re-runs this command with Bun's fetch limit raised; true when the caller should stop. */
export async function reexecWithFetchLimit(): Promise<boolean> {
  if (process.env.BUN_CONFIG_MAX_HTTP_REQUESTS) return false;
  const child = Bun.spawn([process.execPath, ...process.argv.slice(1)], {
    env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: FETCH_LIMIT },
    stdio: ["inherit", "inherit", "inherit"],
  });
  process.exitCode = await child.exited;
  return true;
}

interface Client {
  url: string;
  token: string;
  req(method: string, path: string, body?: unknown): Promise<any>;
}

async function client(url: string): Promise<Client> {
  const req = async (method: string, path: string, body?: unknown, token?: string) => {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    if (res.status >= 300) throw new Error(`${method} ${path} → ${res.status} ${text.slice(0, 300)}`);
    return text ? JSON.parse(text) : null;
  };
  const email = `bench-runs-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}@example.com`;
  const signup = await req("POST", "/v1/auth/signup", { email, password: "correct horse battery staple" });
  const token = signup.access_token as string;
  return { url, token, req: (m, p, b) => req(m, p, b, token) };
}

interface Timed {
  id: string;
  status: string;
  total_ms: number;
  queued_ms: number;
  created: number;
  completed: number;
}

function timing(run: any): Timed {
  const created = Date.parse(run.created_at);
  const completed = Date.parse(run.completed_at ?? run.updated_at);
  const started = Date.parse(run.started_at ?? run.created_at);
  return { id: run.id, status: run.status, total_ms: completed - created, queued_ms: started - created, created, completed };
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
const sortNum = (xs: number[]) => [...xs].sort((a, b) => a - b);

let extraRunBody: Record<string, unknown> = {};

async function oneRun(c: Client, agentId: string, threadId?: string): Promise<Timed> {
  const thread = threadId ?? (await c.req("POST", "/v1/threads", {})).id;
  const run = await c.req("POST", `/v1/threads/${thread}/runs`, { agent_id: agentId, input: "What does the probe say?", ...extraRunBody });
  for (;;) {
    const done = await c.req("GET", `/v1/runs/${run.id}/wait?timeout_s=60`);
    if (done.status === "completed") return timing(done);
    if (["failed", "cancelled", "expired", "requires_action"].includes(done.status)) throw new Error(`run ${run.id} ended ${done.status}: ${JSON.stringify(done.last_error)}`);
  }
}

/**
 * Where the overhead of sequential runs goes, from each run's own trace (GET /v1/runs/:id/trace,
 * the server's timestamps): queued (created → picked up), model steps beyond the model's
 * latency (HTTP, prompt, the step's writes inside its span), tool steps (the loopback tool
 * answers at once), and the rest between steps (loading the run, the writes at step boundaries,
 * finishing). Medians over the runs, in ms per run.
 */
async function overheadBreakdown(c: Client, runIds: string[], latencyMs: number) {
  const parts = { queued: [] as number[], model_steps_beyond_latency: [] as number[], tool_steps: [] as number[], between_steps: [] as number[] };
  for (const id of runIds) {
    const trace = await c.req("GET", `/v1/runs/${id}/trace`);
    const steps = trace.steps as { kind: string; duration_ms: number | null }[];
    const of = (kind: string) => steps.filter((s) => s.kind === kind);
    const ms = (list: typeof steps) => list.reduce((n, s) => n + (s.duration_ms ?? 0), 0);
    const [models, tools] = [of("model_call"), of("tool_call")];
    parts.queued.push(trace.queued_ms);
    parts.model_steps_beyond_latency.push(ms(models) - models.length * latencyMs);
    parts.tool_steps.push(ms(tools));
    parts.between_steps.push(trace.total_ms - trace.queued_ms - ms(models) - ms(tools));
  }
  return Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, pct(sortNum(v), 0.5)])) as Record<keyof typeof parts, number>;
}

/** Samples RSS every 100 ms: the peak while the load runs (VmHWM would include start-up). */
function rssSampler(pid: number) {
  let peak = 0;
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, memoryMiB(pid).rss);
    } catch {
      /* exited */
    }
  }, 100);
  return () => {
    clearInterval(timer);
    return { peak_mib: peak, end_mib: memoryMiB(pid).rss };
  };
}

/** Sum and count of the worker's step-duration histogram per kind (its /metrics). */
async function stepTimes(url: string): Promise<Record<string, { sum: number; count: number }>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out: Record<string, { sum: number; count: number }> = {};
  for (const m of text.matchAll(/^agentos_run_step_duration_seconds_(sum|count)\{kind="(\w+)"\} ([\d.e+-]+)$/gm)) {
    const entry = (out[m[2]] ??= { sum: 0, count: 0 });
    entry[m[1] as "sum" | "count"] = Number(m[3]);
  }
  return out;
}

type DbPerRun = ReturnType<typeof dbPerRun>;
const perRunText = (c: { statements: number; transactions: number }) => `${c.statements} / ${c.transactions}`;
const dbText = (d: DbPerRun) => (d.api ? `worker ${perRunText(d.worker)}, API roles ${perRunText(d.api)} (statements / transactions)` : `${perRunText(d.worker)} (statements / transactions)`);
const dbColumns = (d: DbPerRun) => ({ "worker (or --role=all)": perRunText(d.worker), "API roles": d.api ? perRunText(d.api) : "—" });

/** agentos_db_statements_total of one process: statements and transactions sent so far. */
async function dbCounts(url: string): Promise<{ statements: number; transactions: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const of = (kind: string) => Number(new RegExp(`^agentos_db_statements_total\\{kind="${kind}"\\} (\\d+)$`, "m").exec(text)?.[1] ?? NaN);
  return { statements: of("statement"), transactions: of("transaction") };
}
type DbCounts = Awaited<ReturnType<typeof dbCounts>>;

/** The counts of the worker and (split) of the API roles. */
async function dbSnapshot(urls: { worker: string; api: string | null }) {
  return { worker: await dbCounts(urls.worker), api: urls.api ? await dbCounts(urls.api) : null };
}

/** Statements and transactions per run of each process between two snapshots (background work included). */
function dbPerRun(after: Awaited<ReturnType<typeof dbSnapshot>>, before: Awaited<ReturnType<typeof dbSnapshot>>, runs: number) {
  const per = (a: DbCounts, b: DbCounts) => ({ statements: round((a.statements - b.statements) / runs, 1), transactions: round((a.transactions - b.transactions) / runs, 1) });
  return { worker: per(after.worker, before.worker), api: after.api && before.api ? per(after.api, before.api) : null };
}

/** Mean ms per call of each kind between two readings. */
function meanStepMs(before: Awaited<ReturnType<typeof stepTimes>>, after: Awaited<ReturnType<typeof stepTimes>>, kind: string) {
  const a = after[kind];
  const b = before[kind] ?? { sum: 0, count: 0 };
  if (!a || a.count === b.count) return null;
  return round((1000 * (a.sum - b.sum)) / (a.count - b.count), 1);
}

/** CPU of this (client) process: the fake model, the tool server and the waits. */
function selfCpu() {
  const start = process.cpuUsage();
  const t0 = performance.now();
  return () => {
    const u = process.cpuUsage(start);
    const s = (u.user + u.system) / 1e6;
    return { cpu_seconds: round(s, 2), cpu_percent: round((100 * s) / ((performance.now() - t0) / 1000), 1) };
  };
}

async function inBatches<T>(n: number, width: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, n) }, async () => {
    while (next < n) {
      const i = next++;
      out[i] = await fn(i);
    }
  }));
  return out;
}

interface Servers {
  api: Target;
  worker: Target;
  /** One directory per profiled process (real: the API roles' and the worker's). */
  profileDirs: { name: string; dir: string }[];
  stop(): Promise<void>;
}

async function startServers(mode: Mode, fake: FakeModel, o: RunsOptions): Promise<Servers> {
  const env = {
    AGENTOS_PLAN_LIMITS: RUN_PLAN_LIMITS,
    AGENTOS_WORKER_CONCURRENCY: String(o.workerConcurrency),
    BUN_CONFIG_MAX_HTTP_REQUESTS: FETCH_LIMIT,
    // Passed through for experiments (default 10 per process).
    ...(process.env.DATABASE_POOL_SIZE ? { DATABASE_POOL_SIZE: process.env.DATABASE_POOL_SIZE } : {}),
  };
  const extraArgs = [`--model-base-url=${fake.url}`];
  const profileDirs: { name: string; dir: string }[] = [];
  const profCmd = (name: string) => {
    if (!o.profile) return undefined;
    const dir = mkdtempSync(join(tmpdir(), `agentos-runs-prof-${name}-`));
    profileDirs.push({ name, dir });
    return [process.execPath, "--cpu-prof", `--cpu-prof-dir=${dir}`, "run", join(REPO, "src/main.ts")];
  };
  if (mode === "embedded") {
    const all = await startTarget({ mode, roles: "all", env, extraArgs, cmd: profCmd("all") });
    return { api: all, worker: all, profileDirs, stop: () => all.stop() };
  }
  const backends = await createRealBackends();
  try {
    const api = await startTarget({ mode, roles: "gateway,auth,agents,memory,tools,billing,notify", backends, env, extraArgs, cmd: profCmd("api") });
    const worker = await startTarget({ mode, roles: "worker", backends, env, extraArgs, cmd: profCmd("worker") }).catch(async (err) => {
      await api.stop();
      throw err;
    });
    return {
      api,
      worker,
      profileDirs,
      async stop() {
        await worker.stop();
        await api.stop();
        await backends.drop();
      },
    };
  } catch (err) {
    await backends.drop();
    throw err;
  }
}

async function measureMode(mode: Mode, o: RunsOptions) {
  const fake = await startFakeModel();
  const tools: ToolServer = startToolServer();
  // Step 1 asks for the tool, step 3 (after the tool result) answers: two model calls, one tool call.
  fake.setDefault((req) => (req.body?.messages?.at(-1)?.role === "tool" ? { content: "The probe answered.", delayMs: o.latencyMs } : { tool_calls: [{ name: "probe", arguments: { q: "status" } }], delayMs: o.latencyMs }));
  const servers = await startServers(mode, fake, o);
  const split = servers.api !== servers.worker;
  console.log(`\n== runs, ${mode}: ${split ? `API roles pid ${servers.api.pid} + worker pid ${servers.worker.pid}` : `--role=all pid ${servers.api.pid}`}, worker concurrency ${o.workerConcurrency}, model latency ${o.latencyMs} ms`);
  try {
    const c = await client(servers.api.url);
    const tool = await c.req("POST", "/v1/tools", { name: "probe", description: "Reports the probe status.", kind: "http", config: { url: tools.url }, parameters: { type: "object", properties: { q: { type: "string" } } } });
    const agent = await c.req("POST", "/v1/agents", { name: "bench-runs", model: "fake-model", instructions: "You call the probe tool, then answer.", tools: [tool.id] });

    for (let i = 0; i < 5; i++) await oneRun(c, agent.id); // warm-up: JIT, tokenizer, pools

    // 1. Sequential: the overhead of one run alone.
    const seqSteps = await stepTimes(servers.worker.url);
    const dbUrls = { worker: servers.worker.url, api: split ? servers.api.url : null };
    const seqDb = await dbSnapshot(dbUrls);
    const seq: Timed[] = [];
    const seqWorkerCpu = cpuMeter(servers.worker.pid);
    const seqApiCpu = split ? cpuMeter(servers.api.pid) : null;
    for (let i = 0; i < o.sequential; i++) seq.push(await oneRun(c, agent.id));
    const seqCpuMs = (m: ReturnType<typeof cpuMeter> | null) => (m ? round((1000 * m().cpu_seconds) / Math.max(1, o.sequential), 1) : null);
    const [seqWorkerCpuMs, seqApiCpuMs] = [seqCpuMs(seqWorkerCpu), seqCpuMs(seqApiCpu)];
    const seqStepsAfter = await stepTimes(servers.worker.url);
    await Bun.sleep(500); // the last run's background work (relay, event consumers)
    const seqDbPerRun = dbPerRun(await dbSnapshot(dbUrls), seqDb, o.sequential);
    const seqTotal = sortNum(seq.map((r) => r.total_ms));
    const modelMs = 2 * o.latencyMs;
    const overhead = (ms: number) => round((ms - modelMs) / STEPS, 1);
    const sequential = {
      runs: o.sequential,
      run_ms: { p50: pct(seqTotal, 0.5), p90: pct(seqTotal, 0.9), min: seqTotal[0] },
      overhead_per_step_ms: { p50: overhead(pct(seqTotal, 0.5)), p90: overhead(pct(seqTotal, 0.9)), min: overhead(seqTotal[0]) },
      queued_ms_p50: pct(sortNum(seq.map((r) => r.queued_ms)), 0.5),
      /** What the worker measured around each call (HTTP to the fake model / the tool included). */
      model_call_ms_mean: meanStepMs(seqSteps, seqStepsAfter, "model"),
      tool_call_ms_mean: meanStepMs(seqSteps, seqStepsAfter, "tool"),
      /** CPU per run alone (its own, plus the background of the process: relays, polls, timers). */
      cpu_ms_per_run: { worker: seqWorkerCpuMs, api: seqApiCpuMs },
      /** agentos_db_statements_total per run (its background work included). */
      db_per_run: seqDbPerRun,
      /** The run time beyond the model's latency, by part (medians, ms per run; see overheadBreakdown). */
      overhead_ms_p50: await overheadBreakdown(c, seq.map((r) => r.id), o.latencyMs),
    };
    console.log(`sequential: ${o.sequential} runs, run p50 ${sequential.run_ms.p50} ms → overhead per step p50 ${sequential.overhead_per_step_ms.p50} ms (p90 ${sequential.overhead_per_step_ms.p90}, min ${sequential.overhead_per_step_ms.min}); model call ${sequential.model_call_ms_mean} ms, tool call ${sequential.tool_call_ms_mean} ms as the worker timed them; CPU per run ${split ? `worker ${seqWorkerCpuMs} ms, API roles ${seqApiCpuMs} ms` : `${seqWorkerCpuMs} ms`}; database per run ${dbText(seqDbPerRun)}`);
    const b = sequential.overhead_ms_p50;
    console.log(`sequential: where a run's time beyond its model's latency goes (p50 ms per run, from GET /v1/runs/:id/trace): queued ${b.queued}, model steps beyond latency ${b.model_steps_beyond_latency}, tool steps ${b.tool_steps}, between steps ${b.between_steps}`);

    // 2. Concurrent: all runs created at once.
    const threads = await inBatches(o.runs, 32, async () => (await c.req("POST", "/v1/threads", {})).id as string);
    await Bun.sleep(1000);
    const modelCallsBefore = fake.requests.length;
    const toolCallsBefore = tools.calls.length;
    const workerCpu = cpuMeter(servers.worker.pid);
    const apiCpu = split ? cpuMeter(servers.api.pid) : null;
    const workerRss = rssSampler(servers.worker.pid);
    const apiRss = split ? rssSampler(servers.api.pid) : null;
    const clientCpu = selfCpu();
    const machineCpu = machineCpuMeter();
    const postgresCpu = mode === "real" ? commandCpuMeter("postgres") : null;
    const natsCpu = mode === "real" ? commandCpuMeter("nats-server") : null;
    const loadSteps = await stepTimes(servers.worker.url);
    const loadDb = await dbSnapshot(dbUrls);
    const t0 = performance.now();
    const results = await Promise.all(threads.map((th) => oneRun(c, agent.id, th)));
    const wallS = (performance.now() - t0) / 1000;
    const cpu = workerCpu();
    const rss = workerRss();
    const apiCpuUse = apiCpu?.();
    const apiRssUse = apiRss?.();
    const clientCpuUse = clientCpu();
    const machineUse = machineCpu();
    const postgresUse = postgresCpu?.();
    const natsUse = natsCpu?.();
    const loadStepsAfter = await stepTimes(servers.worker.url);
    await Bun.sleep(1000);
    const loadDbPerRun = dbPerRun(await dbSnapshot(dbUrls), loadDb, o.runs);
    const modelMean = meanStepMs(loadSteps, loadStepsAfter, "model");
    const totals = sortNum(results.map((r) => r.total_ms));
    const queued = sortNum(results.map((r) => r.queued_ms));
    const spanS = (Math.max(...results.map((r) => r.completed)) - Math.min(...results.map((r) => r.created))) / 1000;
    const concurrent = {
      runs: o.runs,
      completed: results.filter((r) => r.status === "completed").length,
      model_calls: fake.requests.length - modelCallsBefore,
      tool_calls: tools.calls.length - toolCallsBefore,
      span_s: round(spanS, 2),
      client_wall_s: round(wallS, 2),
      runs_per_s: round(o.runs / spanS, 1),
      run_ms: { p50: pct(totals, 0.5), p95: pct(totals, 0.95), p99: pct(totals, 0.99), max: totals.at(-1) },
      queued_ms: { p50: pct(queued, 0.5), p95: pct(queued, 0.95), p99: pct(queued, 0.99) },
      overhead_per_step_ms_p50: overhead(pct(totals, 0.5)),
      model_call_ms_mean: modelMean,
      tool_call_ms_mean: meanStepMs(loadSteps, loadStepsAfter, "tool"),
      /** Run time p50 minus the two model calls as the worker timed them, per step. */
      overhead_per_step_ms_p50_measured_model: modelMean === null ? null : round((pct(totals, 0.5) - 2 * modelMean) / STEPS, 1),
      executing_ms_p50: pct(sortNum(results.map((r) => r.total_ms - r.queued_ms)), 0.5),
      worker: { ...cpu, rss_peak_mib: rss.peak_mib, rss_end_mib: rss.end_mib },
      api: apiCpuUse ? { ...apiCpuUse, rss_peak_mib: apiRssUse!.peak_mib, rss_end_mib: apiRssUse!.end_mib } : null,
      client: clientCpuUse,
      db_per_run: loadDbPerRun,
      postgres_all_backends: postgresUse ?? null,
      nats_server: natsUse ?? null,
      /** The whole machine (every process, incl. anything else running), in % of one core. */
      machine: machineUse,
    };
    console.log(`concurrent: ${o.runs} runs in ${concurrent.span_s} s = ${concurrent.runs_per_s} runs/s; run ms p50/p95/p99 ${concurrent.run_ms.p50}/${concurrent.run_ms.p95}/${concurrent.run_ms.p99} (queued p50 ${concurrent.queued_ms.p50}); model call mean ${modelMean} ms as the worker saw it; ${split ? "worker" : "server"} CPU ${cpu.cpu_percent}%, RSS peak ${rss.peak_mib} MiB${apiCpuUse ? `; API roles CPU ${apiCpuUse.cpu_percent}%` : ""}; client CPU ${clientCpuUse.cpu_percent}%${postgresUse ? `; PostgreSQL ${postgresUse.cpu_percent}%, NATS ${natsUse!.cpu_percent}%` : ""}; machine ${machineUse.busy_percent}% of ${machineUse.cores * 100}%`);
    return { mode, processes: split ? "API roles + worker (2 processes)" : "--role=all (1 process)", sequential, concurrent, worker_start_ms: servers.worker.startMs };
  } catch (err) {
    console.error(`server output (last lines):\n${servers.worker.tail()}`);
    throw err;
  } finally {
    await servers.stop();
    fake.stop();
    tools.stop();
    for (const p of servers.profileDirs) reportProfile(p.dir, `${mode}, ${p.name}`);
  }
}

function reportProfile(dir: string, mode: string) {
  const files = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"));
  if (!files.length) return console.log(`no .cpuprofile in ${dir}`);
  const file = join(dir, files[0]);
  const a = analyse(JSON.parse(readFileSync(file, "utf8")));
  console.log(`\nCPU profile (${mode}, ${relative(REPO, file) || file}): busy ${a.busy_ms} ms`);
  printTable(a.by_origin.slice(0, 12));
  printTable(a.top_inclusive_agentos.slice(0, 25));
  printTable(a.top_self.slice(0, 20));
}

/** Issue 15's goals on this machine. */
export const RUNS_GOALS = { runsPerS: 200, overheadPerStepMs: 2, embeddedPeakRssMiB: 400 };

/** ms of CPU per run of each process measured (shared servers: PostgreSQL and NATS include anything else they served). */
type CpuUse = { cpu_seconds: number; sys_seconds?: number };
function cpuPerRun(c: { runs: number; worker: CpuUse; api: CpuUse | null; postgres_all_backends: CpuUse | null; nats_server: CpuUse | null; client: CpuUse }) {
  const ms = (x: CpuUse | null) => (x ? round((1000 * x.cpu_seconds) / c.runs, 2) : "—");
  // The kernel's part of our own processes: socket reads and writes (round trips), not JavaScript.
  const sys = (x: CpuUse | null) => (x?.sys_seconds !== undefined ? ` (sys ${round((1000 * x.sys_seconds) / c.runs, 1)})` : "");
  const total = [c.worker, c.api, c.postgres_all_backends, c.nats_server].reduce((s, x) => s + (x?.cpu_seconds ?? 0), 0);
  return {
    "worker (or --role=all)": `${ms(c.worker)}${sys(c.worker)}`, "API roles": c.api ? `${ms(c.api)}${sys(c.api)}` : "—",
    PostgreSQL: ms(c.postgres_all_backends), NATS: ms(c.nats_server), client: ms(c.client), "server side total": round((1000 * total) / c.runs, 2),
  };
}

export async function runRuns(o: RunsOptions) {
  const machine = machineInfo();
  extraRunBody = o.runOptions ? RUN_OVERRIDES : {};
  const results = [];
  for (const mode of o.modes) results.push(await measureMode(mode, o));
  printTable(results.map((r) => ({
    mode: r.mode,
    "seq overhead/step p50 ms": r.sequential.overhead_per_step_ms.p50,
    [`goal ≤ ${RUNS_GOALS.overheadPerStepMs}`]: r.sequential.overhead_per_step_ms.p50 <= RUNS_GOALS.overheadPerStepMs ? "met" : "MISSED",
    runs: r.concurrent.runs,
    "runs/s": r.concurrent.runs_per_s,
    [`goal ≥ ${RUNS_GOALS.runsPerS}`]: r.concurrent.runs_per_s >= RUNS_GOALS.runsPerS ? "met" : "MISSED",
    "run p50/p95/p99 ms": `${r.concurrent.run_ms.p50}/${r.concurrent.run_ms.p95}/${r.concurrent.run_ms.p99}`,
    "queued p50 ms": r.concurrent.queued_ms.p50,
    "overhead/step p50 ms (load)": r.concurrent.overhead_per_step_ms_p50,
    "worker CPU %": r.concurrent.worker.cpu_percent,
    "worker RSS peak MiB": r.concurrent.worker.rss_peak_mib,
    ...(r.mode === "embedded" ? { [`RSS goal ≤ ${RUNS_GOALS.embeddedPeakRssMiB}`]: r.concurrent.worker.rss_peak_mib <= RUNS_GOALS.embeddedPeakRssMiB ? "met" : "MISSED" } : {}),
  })));
  console.log("\nCPU per run, per process (CPU seconds of the concurrent phase / its runs, in ms):");
  printTable(results.map((r) => ({ mode: r.mode, ...cpuPerRun(r.concurrent) })));
  console.log("\nDatabase per run, per process (agentos_db_statements_total: statements / transactions, background work included):");
  printTable(results.flatMap((r) => [
    { mode: r.mode, phase: "sequential", ...dbColumns(r.sequential.db_per_run) },
    { mode: r.mode, phase: "concurrent", ...dbColumns(r.concurrent.db_per_run) },
  ]));
  if (o.profile) return; // a profiled server is slower: its figures are not the results
  const file = writeResults("runs", { scenario: "runs", machine, options: o, results });
  console.log(`\nwritten: ${file}`);
}
