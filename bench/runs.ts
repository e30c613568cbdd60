/**
 * Run orchestration benchmark.
 *
 *   bun run bench/runs.ts [--real] [--runs=200] [--latency=50]
 *
 * 1. Overhead per step: sequential runs of 3 steps each (model → tool → model) against the
 *    fake model with `latency` ms per call and a local HTTP tool; overhead = run wall time
 *    (created → completed, incl. queueing) minus the model's latency, per step.
 * 2. Concurrency: `runs` runs started at once on one process (one worker); throughput,
 *    run duration percentiles, and the concurrency sustained (Little's law: throughput × mean duration).
 */
import { startFakeModel } from "../test/support/fake-model";
import { startTestProcess } from "../test/support/harness";
import { runApi, signupUnlimited, startToolServer } from "../src/roles/worker/testkit";

const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, "").split("=")).map(([k, v]) => [k, v ?? "true"]));
const real = args.real === "true";
const latency = Number(args.latency ?? 50);
const concurrentRuns = Number(args.runs ?? 200);
const sequentialRuns = Number(args.sequential ?? 30);

process.env.AGENTOS_WORKER_CONCURRENCY ??= "2000";
process.env.AGENTOS_DELTA_FLUSH_MS ??= "50";

const fake = await startFakeModel();
const tools = startToolServer();
fake.setDefault((req) => (req.body.messages.at(-1).role === "tool" ? { content: "done", delayMs: latency } : { tool_calls: [{ name: "probe", arguments: {} }], delayMs: latency }));
const t = await startTestProcess({ real, config: { modelBaseUrl: fake.url } });
try {
  const user = await signupUnlimited(t);
  const api = runApi(t, user.token);
  const probe = await api.tool({ name: "probe", kind: "http", config: { url: tools.url }, parameters: { type: "object", properties: {} } });
  const agent = await api.agent({ tools: [probe.id] });

  const runOnce = async () => {
    const thread = await api.thread();
    const run = await api.run(thread.id, { agent_id: agent.id, input: "bench" });
    const done = await api.wait(run.id, 60);
    if (done.status !== "completed") throw new Error(`run ${run.id} ${done.status} ${JSON.stringify(done.last_error)}`);
    return new Date(done.completed_at).getTime() - new Date(done.created_at).getTime();
  };

  // Warm-up (tokenizer, JIT, connections).
  for (let i = 0; i < 3; i++) await runOnce();

  const walls: number[] = [];
  for (let i = 0; i < sequentialRuns; i++) walls.push(await runOnce());
  const steps = 3;
  const modelMs = 2 * latency;
  const overhead = walls.map((w) => (w - modelMs) / steps).sort((a, b) => a - b);
  const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))];
  console.log(JSON.stringify({
    backend: real ? "postgres+nats" : "embedded (pglite + in-process bus)",
    sequential_runs: sequentialRuns,
    steps_per_run: steps,
    model_latency_ms: latency,
    run_wall_ms_p50: pct([...walls].sort((a, b) => a - b), 0.5),
    overhead_per_step_ms_p50: +pct(overhead, 0.5).toFixed(1),
    overhead_per_step_ms_p90: +pct(overhead, 0.9).toFixed(1),
  }));

  const threads = await Promise.all(Array.from({ length: concurrentRuns }, () => api.thread()));
  const t0 = performance.now();
  const durations = await Promise.all(
    threads.map(async (th) => {
      const run = await api.run(th.id, { agent_id: agent.id, input: "bench" });
      const done = await api.wait(run.id, 60);
      if (done.status !== "completed") throw new Error(`run ${done.id} ${done.status}`);
      return new Date(done.completed_at).getTime() - new Date(done.created_at).getTime();
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  durations.sort((a, b) => a - b);
  const mean = durations.reduce((a, b) => a + b, 0) / durations.length;
  const throughput = concurrentRuns / elapsed;
  console.log(JSON.stringify({
    backend: real ? "postgres+nats" : "embedded (pglite + in-process bus)",
    concurrent_runs: concurrentRuns,
    model_latency_ms: latency,
    elapsed_s: +elapsed.toFixed(2),
    runs_per_s: +throughput.toFixed(1),
    model_calls_per_s: +(throughput * 2).toFixed(1),
    run_ms_p50: pct(durations, 0.5),
    run_ms_p99: pct(durations, 0.99),
    sustained_concurrency: +((throughput * mean) / 1000).toFixed(1),
  }));
} finally {
  await t.stop();
  fake.stop();
  tools.stop();
}
