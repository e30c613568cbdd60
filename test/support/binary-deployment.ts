/**
 * The compiled binary as a whole deployment for a test: on a fresh data dir (the embedded
 * default) or on a fresh database and namespace of the real PostgreSQL, Redis and NATS.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ApiClient } from "./api";
import { createTestDatabase, dropNatsNamespace, dropRedisNamespace, REAL_URLS, uniqueName } from "./backends";
import { startChild, type ChildProcess } from "./binary";
import { TEST_JWT_SECRET, TEST_SECRET_KEY } from "./harness";

export interface Deployment {
  child: ChildProcess;
  /** The embedded default's data dir, or the real database's URL. */
  dataDir?: string;
  databaseUrl?: string;
  /** Stops the binary and starts it again on the same data (other flags and environment allowed). */
  restart(args?: string[], env?: Record<string, string>): Promise<ChildProcess>;
  stop(): Promise<void>;
}

/** Starts the binary on a fresh data dir (embedded) or fresh database and namespace (real). */
export async function startBinary(real: boolean, args: string[], env: Record<string, string> = {}): Promise<Deployment> {
  const database = real ? await createTestDatabase() : undefined;
  const namespace = uniqueName("mem");
  const dataDir = real ? undefined : mkdtempSync(join(tmpdir(), "agentos-mem-"));
  const where = real ? [`--database-url=${database!.url}`, `--redis-url=${REAL_URLS.redis}`, `--nats-url=${REAL_URLS.nats}`, `--namespace=${namespace}`] : [`--data-dir=${dataDir}`];
  const baseEnv: Record<string, string> = real ? { JWT_SECRET: TEST_JWT_SECRET, AGENTOS_SECRET_KEY: TEST_SECRET_KEY } : {};
  const launch = (a: string[], e: Record<string, string>) => startChild(["serve", ...where, ...a], { env: { ...baseEnv, ...e } });
  const deployment: Deployment = {
    child: await launch(args, env),
    dataDir,
    databaseUrl: database?.url,
    async restart(a = args, e = env) {
      await deployment.child.stop();
      deployment.child = await launch(a, e);
      return deployment.child;
    },
    async stop() {
      await deployment.child.stop();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
      if (!database) return;
      await database.drop();
      await dropNatsNamespace(namespace);
      await dropRedisNamespace(namespace);
    },
  };
  return deployment;
}

/**
 * A signed-up user on the enterprise plan (these suites send more than 60 requests a minute).
 * Give a function for the client when the deployment restarts on another port.
 */
export async function unlimitedUser(client: ApiClient | (() => ApiClient)) {
  const api = typeof client === "function" ? client : () => client;
  const user = await api().signup();
  const plan = await api().call("PUT", "/v1/billing/plan", { token: user.token, body: { plan: "enterprise" } });
  if (plan.status !== 200) throw new Error(`plan change failed: ${plan.status}`);
  const call = (method: string, path: string, body?: unknown) => api().call(method, path, { token: user.token, body });
  const ok = async (method: string, path: string, body?: unknown) => {
    const r = await call(method, path, body);
    if (r.status >= 300) throw new Error(`${method} ${path} → ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  return { ...user, ok, call };
}
