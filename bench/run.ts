/**
 * bun run bench <scenario> [options]      (see bench/README.md)
 *
 *   read        authenticated GET /v1/agents/:id: AgentOS vs the Go + Gin peer, alternating rounds
 *   write       POST /v1/threads/:id/messages: AgentOS vs the Go + Gin peer, alternating rounds
 *   footprint   binary and image size, idle RSS and start-up time of every role alone
 *   rss         idle RSS of every role alone against the goals (footprint without the image part)
 *   image       the FROM scratch image built with podman (full and slim): gzip and zstd sizes vs goals
 *   profile     per-layer CPU cost of the read (in process), then its CPU profile (bun --cpu-prof under wrk)
 *   runs        1,000 concurrent two-step runs (model → http tool → model) against the fake model
 *   ws          10,000 WebSocket clients on one gateway receiving the organization's events
 *   bus         the embedded in-process bus: 10,000 domain events per round to two consumers, cost and retention as they add up
 *   quota       the month's usage as the quota check reads it: sum over usage_records vs the usage_months counter
 *   table       the markdown tables of bench/README.md from the latest results
 *
 * Options of read/write (against the peer, real back ends): --rounds=4 (per server, alternating)
 *   --duration=5 --warmup=3 (seconds per round / per server before the rounds) --connections=64
 *   --sweep                  instead: the settings below, AgentOS alone (results read-sweep.json)
 * Options of read/write --sweep:
 *   --modes=embedded,real    server back ends (default: both)
 *   --connections=64,1000,10000   closed-loop settings
 *   --rate=2000 --rate-connections=10000   the constant-rate setting (--rate=0 skips it)
 *   --duration=30 --warmup=5 --hold=2000   seconds measured / warm-up seconds / ms of connection set-up
 *   --no-baseline            skip the /healthz run after each setting
 *   --quick                  --duration=5 --warmup=2 (to validate the scripts)
 *   --path=/v1/...           read: the path to GET instead of the agent
 *   --path=... --body='{}'   write: the path and JSON body to POST instead of the message
 * Options of footprint: --no-image (skip the gzip/zstd image estimate, the slow part)
 * Options of profile: first the per-layer cost table (in process, CPU µs per request of each
 *   layer; --iterations=50000 calls per layer), then the CPU profile under wrk (--no-cpu-profile
 *   skips it): --seconds=20 (load duration), --path=/v1/... (instead of the agent),
 *   --modes=real (default) or --modes=embedded; --write: the message write instead (its CPU per request
 *   in process, whole and service alone, group commit vs --message-batch-max=1; then its profile)
 * Options of runs: --runs=1000 (concurrent runs) --sequential=30 (runs one at a time, for the
 *   overhead per step) --latency=50 (fake model ms) --worker-concurrency=1000 --modes=embedded,real
 *   --profile (API roles and worker from source under bun --cpu-prof: prints each profile, writes no results)
 *   --run-options (every run created with per-run overrides: model, instructions, sampling, limits, tool_choice)
 * Options of ws: --clients=10000 --client-processes=2 --events=100 (per phase)
 *   --event-rate=2,10 (events/s, one phase each: 10,000 sockets × 10/s = 100,000 frames/s) --modes=real,embedded
 * Options of bus: --rounds=4 (of 10,000 events each)
 * Options of quota: --rows=100000 (usage rows of one org this month) --iterations=200 (calls of each query)
 *   --modes=real,embedded
 * read, write, footprint, runs, ws, bus and quota write bench/results/<scenario>.json; profile writes
 * bench/results/profile-<mode>.json and the raw profile-read-<mode>.cpuprofile.
 */
import { parseArgs } from "node:util";
import { readCall, writeCall } from "./lib/fixtures";
import type { Mode } from "./lib/target";
import { runHttpLoad } from "./scenarios/http-load";

const { values, positionals } = parseArgs({
  args: Bun.argv.slice(2),
  allowPositionals: true,
  options: {
    modes: { type: "string" },
    connections: { type: "string" },
    rounds: { type: "string" },
    sweep: { type: "boolean", default: false },
    iterations: { type: "string" },
    "cpu-profile": { type: "boolean", default: true },
    write: { type: "boolean", default: false },
    rate: { type: "string", default: "2000" },
    "rate-connections": { type: "string", default: "10000" },
    duration: { type: "string" },
    warmup: { type: "string" },
    hold: { type: "string", default: "2000" },
    baseline: { type: "boolean", default: true },
    quick: { type: "boolean", default: false },
    path: { type: "string" },
    body: { type: "string" },
    seconds: { type: "string" },
    image: { type: "boolean", default: true },
    runs: { type: "string" },
    sequential: { type: "string" },
    latency: { type: "string" },
    "worker-concurrency": { type: "string" },
    profile: { type: "boolean", default: false },
    "run-options": { type: "boolean", default: false },
    clients: { type: "string" },
    "client-processes": { type: "string" },
    events: { type: "string" },
    "event-rate": { type: "string" },
    rows: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
  allowNegative: true,
});

const usage = () => {
  const text = Bun.file(import.meta.path).text();
  return text.then((t) => /\/\*\*([\s\S]*?)\*\//.exec(t)![1].replace(/^ \* ?/gm, "").trim());
};

const scenario = positionals[0];
if (!scenario || values.help) {
  console.log(await usage());
  process.exit(values.help ? 0 : 1);
}

const list = (s: string) => s.split(",").map((x) => x.trim()).filter(Boolean);
const num = (s: string | undefined, fallback: number) => (s === undefined ? fallback : Number(s));
const load = {
  modes: list(values.modes ?? "embedded,real") as Mode[],
  connections: list(values.connections ?? "64,1000,10000").map(Number),
  rate: Number(values.rate),
  rateConnections: Number(values["rate-connections"]),
  durationS: num(values.duration, values.quick ? 5 : 30),
  warmupS: num(values.warmup, values.quick ? 2 : 5),
  holdMs: Number(values.hold),
  baseline: values.baseline!,
};
for (const m of load.modes) if (m !== "embedded" && m !== "real") throw new Error(`--modes: unknown mode '${m}' (embedded, real)`);

const versus = (kind: "read" | "write") =>
  import("./scenarios/versus").then(({ runVersus }) =>
    runVersus(kind, {
      rounds: num(values.rounds, values.quick ? 2 : 4),
      durationS: num(values.duration, values.quick ? 3 : 5),
      warmupS: num(values.warmup, values.quick ? 1 : 3),
      connections: num(values.connections, 64),
      path: values.path,
      body: values.body,
    }),
  );

switch (scenario) {
  case "read":
    if (!values.sweep) {
      await versus("read");
      break;
    }
    await runHttpLoad("read-sweep", { ...load, call: (base, token) => readCall(base, token, values.path) });
    break;
  case "write":
    if (!values.sweep) {
      await versus("write");
      break;
    }
    await runHttpLoad("write-sweep", {
      ...load,
      call: (base, token) => writeCall(base, token, values.path ? { path: values.path, body: values.body ?? "{}" } : undefined),
    });
    break;
  case "image": {
    const { runImage } = await import("./scenarios/image");
    await runImage();
    break;
  }
  case "rss": {
    const { runFootprint } = await import("./scenarios/footprint");
    await runFootprint({ image: false });
    break;
  }
  case "footprint": {
    const { runFootprint } = await import("./scenarios/footprint");
    await runFootprint({ image: values.image! });
    break;
  }
  case "runs": {
    const { reexecWithFetchLimit, runRuns } = await import("./scenarios/runs");
    if (await reexecWithFetchLimit()) process.exit(process.exitCode ?? 0);
    await runRuns({
      modes: load.modes,
      runs: num(values.runs, 1000),
      sequential: num(values.sequential, 30),
      latencyMs: num(values.latency, 50),
      workerConcurrency: num(values["worker-concurrency"], 1000),
      profile: values.profile!,
      runOptions: values["run-options"]!,
    });
    break;
  }
  case "ws": {
    const { runWs } = await import("./scenarios/ws");
    await runWs({
      modes: values.modes ? load.modes : ["real", "embedded"],
      clients: num(values.clients, 10_000),
      clientProcesses: num(values["client-processes"], 2),
      events: num(values.events, 100),
      eventRates: list(values["event-rate"] ?? "2,10").map(Number),
    });
    break;
  }
  case "table": {
    const { renderTables } = await import("./scenarios/table");
    console.log(renderTables());
    break;
  }
  case "bus": {
    const { runBus } = await import("./scenarios/bus");
    await runBus({ rounds: num(values.rounds, 4) });
    break;
  }
  case "quota": {
    const { runQuota } = await import("./scenarios/quota");
    await runQuota({ modes: values.modes ? load.modes : ["real", "embedded"], rows: num(values.rows, 100_000), iterations: num(values.iterations, 200) });
    break;
  }
  case "profile": {
    const { runProfile } = await import("./scenarios/profile");
    await runProfile({ seconds: num(values.seconds, 20), path: values.path, mode: values.modes ? load.modes[0] : "real", iterations: num(values.iterations, 50_000), cpuProfile: values["cpu-profile"]!, write: values.write });
    break;
  }
  default:
    console.error(`bench: unknown scenario '${scenario}'\n\n${await usage()}`);
    process.exit(1);
}
process.exit(0);
