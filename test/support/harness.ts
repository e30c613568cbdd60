/**
 * An AgentOS process inside the test process (startProcess on a free port, temp data dir,
 * its own namespace), plus small HTTP helpers. `real: true` points it at a fresh database on
 * the real PostgreSQL and at the real Redis and NATS.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FLAGS, parseConfig, type Config } from "../../src/platform/config";
import { silentLogger } from "../../src/platform/logging";
import { startProcess, type RunningProcess } from "../../src/server";
import { REAL_URLS, createTestDatabase, dropNatsNamespace, dropRedisNamespace, uniqueName } from "./backends";

export const TEST_JWT_SECRET = "test-secret-that-is-long-enough-0123456789";
/** Seals RPC between the processes of a test deployment (split roles need it). */
export const TEST_INTERNAL_KEY = "test-internal-key-that-is-long-enough-0123456789";
/** Encrypts secrets at rest in real-backend test deployments (the embedded default generates one). */
export const TEST_SECRET_KEY = "test-secret-key-at-rest-long-enough-0123456789";

/** The environment that gives a child process the same settings (each flag's environment twin). */
export function configEnv(config: Partial<Config>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const spec of Object.values(FLAGS)) {
    const value = config[spec.key];
    if (value !== undefined && spec.env) env[spec.env] = Array.isArray(value) ? value.join(",") : String(value);
  }
  return env;
}

export interface TestProcess {
  url: string;
  process: RunningProcess;
  config: Config;
  request(method: string, path: string, opts?: { body?: unknown; token?: string; headers?: Record<string, string> }): Promise<{ status: number; body: any; headers: Headers }>;
  signup(email?: string, password?: string): Promise<TestUser>;
  stop(): Promise<void>;
}

export interface TestUser {
  email: string;
  password: string;
  token: string;
  refresh: string;
  userId: string;
  orgId: string;
}

export interface StartOptions {
  real?: boolean;
  /** Reuse an existing database / namespace / data dir (restarts, several processes). */
  databaseUrl?: string;
  namespace?: string;
  dataDir?: string;
  config?: Partial<Config>;
  /** Keep the database and namespace on stop (the test cleans up); a data dir given in `dataDir` is always kept. */
  keep?: boolean;
}

export async function startTestProcess(opts: StartOptions = {}): Promise<TestProcess> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "agentos-test-"));
  const namespace = opts.namespace ?? uniqueName("t");
  let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
  let databaseUrl = opts.databaseUrl;
  if (opts.real && !databaseUrl) {
    database = await createTestDatabase();
    databaseUrl = database.url;
  }
  const config: Config = {
    ...parseConfig([], {}),
    port: 0,
    host: "127.0.0.1",
    dataDir,
    namespace,
    logLevel: "error",
    shutdownTimeoutMs: 5000,
    // Test tool servers and webhook receivers listen on loopback; SSRF tests turn this off.
    allowPrivateTargets: true,
    ...(opts.real ? { databaseUrl, redisUrl: REAL_URLS.redis, natsUrl: REAL_URLS.nats, jwtSecret: TEST_JWT_SECRET, internalKey: TEST_INTERNAL_KEY, secretKey: TEST_SECRET_KEY } : {}),
    ...opts.config,
  };
  const running = await startProcess(config, silentLogger);
  const url = `http://127.0.0.1:${running.port}`;

  const request: TestProcess["request"] = async (method, path, o = {}) => {
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    let body: string | undefined;
    if (o.body !== undefined) {
      body = typeof o.body === "string" ? o.body : JSON.stringify(o.body);
      headers["content-type"] ??= "application/json";
    }
    const res = await fetch(url + path, { method, headers, body });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON: keep the text */
    }
    return { status: res.status, body: parsed as any, headers: res.headers };
  };

  const signup: TestProcess["signup"] = async (email = `${uniqueName("u")}@example.com`, password = "correct horse battery") => {
    const res = await request("POST", "/v1/auth/signup", { body: { email, password } });
    if (res.status !== 201) throw new Error(`signup failed: ${res.status} ${JSON.stringify(res.body)}`);
    return { email, password, token: res.body.access_token, refresh: res.body.refresh_token, userId: res.body.user.id, orgId: res.body.organization.id };
  };

  let stopped = false;
  return {
    url,
    process: running,
    config,
    request,
    signup,
    async stop() {
      if (stopped) return;
      stopped = true;
      await running.shutdown("test");
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
      if (opts.keep) return;
      await database?.drop();
      if (opts.real && !opts.namespace) {
        await dropNatsNamespace(namespace).catch(() => {});
        await dropRedisNamespace(namespace).catch(() => {});
      }
    },
  };
}
