/**
 * A split deployment of dist/agentos on loopback (built first if stale): 2 gateways, auth,
 * agents, 2 workers, memory, tools, billing, notify — one process each with `--role=<role>` on
 * its own port — on the real PostgreSQL (a fresh database agentos_cluster_<ts>), Redis and
 * NATS (a unique --namespace), with one JWT secret. Prints the URLs and pids once every
 * /readyz answers 200; Ctrl-C (SIGINT) or SIGTERM stops every process with SIGTERM and drops
 * the database, the NATS streams and the Redis keys of the namespace.
 *
 *   bun run scripts/cluster.ts [--model-base-url=URL] [--model-api-key=KEY] [--fake-model]
 *                              [--postgres-url=URL] [--redis-url=URL] [--nats-url=URL | --own-nats]
 *                              [--log-level=warn] [--log-dir=DIR]
 *
 * --fake-model answers every model call with the test suite's scripted fake (a canned reply).
 * NATS: by default (or --own-nats) a private nats-server on a free port running the shipped
 * least-privilege configuration deploy/nats/agentos.conf (AgentOS as the `agentos` user, a
 * `tool-worker` user for customer tool workers, whose URL is printed); --nats-url=URL uses
 * that server as it is instead. RPC between the members is sealed with a fresh internal key.
 */
import { startCluster, startLockedNats, type LockedNats } from "../test/support/cluster";
import { startFakeModel, type FakeModel } from "../test/support/fake-model";
import { redactUrl } from "../src/platform/config";

const USAGE = "usage: bun run scripts/cluster.ts [--model-base-url=URL] [--model-api-key=KEY] [--fake-model] [--postgres-url=URL] [--redis-url=URL] [--nats-url=URL | --own-nats] [--log-level=debug|info|warn|error] [--log-dir=DIR]";
const VALUED = ["model-base-url", "model-api-key", "postgres-url", "redis-url", "nats-url", "log-level", "log-dir"] as const;
const FLAGS = ["fake-model", "own-nats", "help"] as const;

function parseArgs(argv: string[]) {
  const values: Record<string, string> = {};
  const flags = new Set<string>();
  for (const arg of argv) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (m && m[2] !== undefined && (VALUED as readonly string[]).includes(m[1])) values[m[1]] = m[2];
    else if (m && m[2] === undefined && (FLAGS as readonly string[]).includes(m[1])) flags.add(m[1]);
    else {
      console.error(`unknown argument '${arg}'\n${USAGE}`);
      process.exit(2);
    }
  }
  return { values, flags };
}

async function main() {
  const { values, flags } = parseArgs(Bun.argv.slice(2));
  if (flags.has("help")) {
    console.log(USAGE);
    return;
  }
  if (flags.has("own-nats") && values["nats-url"]) {
    console.error("--own-nats and --nats-url exclude each other");
    process.exit(2);
  }
  let fake: FakeModel | undefined;
  let nats: LockedNats | undefined;
  if (flags.has("fake-model")) {
    fake = await startFakeModel();
    fake.setDefault({ content: "Hello from the fake model." });
  }
  const namespace = `cl${Date.now().toString(36)}`;
  if (!values["nats-url"] && !process.env.AGENTOS_TEST_NATS_URL) nats = await startLockedNats(namespace);
  const modelBaseUrl = fake?.url ?? values["model-base-url"] ?? process.env.MODEL_BASE_URL ?? "https://api.openai.com/v1";

  const t0 = performance.now();
  console.log("starting the cluster (building dist/agentos first if it is stale)…");
  const cluster = await startCluster({
    modelBaseUrl,
    modelApiKey: values["model-api-key"] ?? process.env.MODEL_API_KEY,
    postgresUrl: values["postgres-url"] ?? process.env.AGENTOS_TEST_DATABASE_URL,
    redisUrl: values["redis-url"] ?? process.env.AGENTOS_TEST_REDIS_URL,
    natsUrl: nats?.platformUrl ?? values["nats-url"] ?? process.env.AGENTOS_TEST_NATS_URL,
    namespace,
    internalKey: Buffer.from(crypto.getRandomValues(new Uint8Array(48))).toString("base64"),
    logLevel: (values["log-level"] as "warn" | undefined) ?? "warn",
    logDir: values["log-dir"],
  }).catch(async (err) => {
    console.error(`cluster failed to start: ${(err as Error).message}`);
    fake?.stop();
    await nats?.server.destroy();
    process.exit(1);
  });

  console.log(`ready in ${Math.round(performance.now() - t0)} ms`);
  console.log(`database  ${cluster.databaseName}  (${cluster.databaseUrl})`);
  console.log(`nats      ${redactUrl(cluster.natsUrl)}  namespace ${cluster.namespace}${nats ? `  (private nats-server pid ${nats.server.pid()}, deploy/nats/agentos.conf, store ${nats.server.storeDir})` : ""}`);
  if (nats) console.log(`tools     NATS_URL=${nats.toolWorkerUrl} bun examples/nats-tool-worker.ts   (the tool-worker user: tools.> only)`);
  console.log(`redis     ${cluster.redisUrl}  keys ${cluster.namespace}:*`);
  console.log(`model     ${modelBaseUrl}${fake ? "  (fake)" : ""}`);
  console.log(`logs      ${cluster.logDir}`);
  console.log("");
  console.log("member       role      pid      url");
  for (const m of cluster.list()) console.log(`${m.name.padEnd(12)} ${m.role.padEnd(9)} ${String(m.pid).padEnd(8)} ${m.url}`);
  console.log("");
  console.log(`API: ${cluster.liveGateways().map((g) => `${g.url}/v1`).join("  ")}   (Swagger UI: ${cluster.liveGateways()[0].url}/swagger)`);
  console.log("Ctrl-C stops every process and drops the database and namespace.");

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping ${cluster.members.length} processes (SIGTERM)…`);
    await cluster.stop({ keepNatsStreams: nats !== undefined });
    fake?.stop();
    await nats?.server.destroy();
    console.log(`stopped; dropped database ${cluster.databaseName} and namespace ${cluster.namespace}`);
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));

  // Report members that die on their own (the cluster keeps running without them).
  for (const m of cluster.members) {
    void m.proc?.exited.then((code) => {
      if (!stopping) console.error(`${m.name} (pid ${m.proc?.pid}) exited with ${code}; log tail:\n${cluster.logTail(m.name, 1500)}`);
    });
  }
  await new Promise(() => {}); // until a signal
}

await main();
