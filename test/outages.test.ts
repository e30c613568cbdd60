/**
 * Backend outages on the compiled binary (SPEC §6, issue 9 item 7), each against a private
 * server instance that the test kills and restarts:
 *
 * - PostgreSQL (`pg_ctl stop -m immediate` while runs are in flight): the process never
 *   exits; /readyz is 503 naming the database, then 200 again by itself; an authenticated
 *   request during the outage answers 503 backend_unavailable within 2 s, without the URL's
 *   secret; every accepted run ends exactly once after the restart (one terminal event) and
 *   its usage rows are neither lost nor doubled.
 * - Redis (SIGKILL): login and authenticated reads keep answering (rate limits are counted
 *   per process meanwhile; never a 500), /readyz names the cache, and everything is back on
 *   Redis after the restart.
 * - NATS (split roles: a gateway and a process with every other role): requests that need
 *   another role fail within 2 s with 503 backend_unavailable while NATS is down, /readyz
 *   names nats, and after the restart requests succeed again and a run that completed during
 *   the outage gets its webhook delivered.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { createTestDatabase, describeReal, uniqueName } from "./support/backends";
import { startChild, type ChildProcess } from "./support/binary";
import { http, readRunEvents, startNatsServer, startWebhookReceiver, TERMINAL_RUN_EVENTS, type NatsServer, type WebhookReceiver } from "./support/cluster";
import { startFakeModel, type FakeModel } from "./support/fake-model";
import { TEST_INTERNAL_KEY, TEST_JWT_SECRET } from "./support/harness";
import { startPrivatePostgres, startPrivateRedis, type PrivateServer } from "./support/private-servers";
import { waitFor } from "./support/wait";

/** Short leases and reconcile passes so that recovery takes seconds (read by the process at start). */
const FAST_ENV = {
  AGENTOS_RUN_LEASE_MS: "3000",
  AGENTOS_RECONCILE_INTERVAL_MS: "500",
  AGENTOS_REQUEUE_AFTER_MS: "2000",
  AGENTOS_MODEL_MAX_RETRIES: "1",
  AGENTOS_MODEL_BACKOFF_MS: "20",
  AGENTOS_WEBHOOK_RETRY_BASE_MS: "200",
  AGENTOS_WEBHOOK_POLL_MS: "200",
  AGENTOS_ALLOW_PRIVATE_TARGETS: "true",
  // The tests poll every run several times a second while it recovers: the free plan's 60
  // requests a minute ran out when recovery took a few seconds, and every later poll was a 429.
  AGENTOS_PLAN_LIMITS: JSON.stringify({ free: { requests_per_minute: 1_000_000 } }),
};
const PASSWORD = "correct horse battery";

/** A request that must answer 503 backend_unavailable naming `backend`, within 2 s. */
async function expectFastOutage(base: string, method: string, path: string, token: string, backend: string, body?: unknown) {
  const started = performance.now();
  const r = await http(base, method, path, { token, body, timeoutMs: 5_000 });
  const elapsed = performance.now() - started;
  expect({ path, status: r.status, code: r.body?.error?.code }).toEqual({ path, status: 503, code: "backend_unavailable" });
  expect(r.body.error.details).toEqual({ backend });
  expect(typeof r.body.error.request_id).toBe("string");
  expect(r.headers.get("retry-after")).toBe("1");
  expect(elapsed).toBeLessThan(2_000);
  return r;
}

async function signup(base: string) {
  const r = await http(base, "POST", "/v1/auth/signup", { body: { email: `${uniqueName("outage")}@example.com`, password: PASSWORD } });
  expect(r.status).toBe(201);
  return { token: r.body.access_token as string, email: r.body.user.email as string, orgId: r.body.organization.id as string };
}

const readyz = (base: string) => http(base, "GET", "/readyz", { timeoutMs: 5_000 }).catch(() => null);
/**
 * /readyz reports an outage at its first call after the kill, within a few ms here; under the
 * full suite on 2 cores it once took over 5 s. Fast answers are what expectFastOutage checks.
 */
const OUTAGE_REPORTED_WITHIN_MS = 15_000;

describe("PostgreSQL outage with runs in flight [compiled binary, private PostgreSQL]", () => {
  let pg: PrivateServer;
  let fake: FakeModel;
  let child: ChildProcess;
  let admin: ReturnType<typeof postgres>;

  afterAll(async () => {
    await admin?.end({ timeout: 1 });
    if (child && child.proc.exitCode === null) await child.stop();
    await pg?.destroy();
    fake?.stop();
  });

  test("stays up, answers 503 fast, recovers by itself; every run ends once, usage neither lost nor doubled", async () => {
    pg = await startPrivatePostgres();
    fake = await startFakeModel();
    // Each run: one model call of 700 ms, so several are mid-call when the database dies.
    fake.setDefault({ content: "done", delayMs: 700, usage: { prompt_tokens: 11, completion_tokens: 5, total_tokens: 16 } });
    // A password the server ignores (trust) but that must never appear in an answer.
    const databaseUrl = pg.url.replace("postgres@", "postgres:pw-never-shown@");
    child = await startChild(["serve"], { env: { ...FAST_ENV, DATABASE_URL: databaseUrl, JWT_SECRET: TEST_JWT_SECRET, MODEL_BASE_URL: fake.url } });
    admin = postgres(pg.url, { max: 1, onnotice: () => {} });

    const { token } = await signup(child.url);
    const agent = await http(child.url, "POST", "/v1/agents", { token, body: { name: "outage", model: "fake-model", instructions: "Answer." } });
    expect(agent.status).toBe(201);
    const runIds: string[] = [];
    for (let i = 0; i < 6; i++) {
      const thread = await http(child.url, "POST", "/v1/threads", { token, body: {} });
      const run = await http(child.url, "POST", `/v1/threads/${thread.body.id}/runs`, { token, body: { agent_id: agent.body.id, input: `run ${i}` } });
      expect(run.status).toBe(201);
      runIds.push(run.body.id);
    }
    await fake.waitForRequests(3, 10_000);

    await pg.kill();
    const ready = await waitFor("/readyz to report the database outage", async () => {
      const r = await readyz(child.url);
      return r?.status === 503 && r.body.error.details.checks.database !== "ok" ? r : null;
    }, OUTAGE_REPORTED_WITHIN_MS);
    expect(ready.body.error.message).toMatch(/database: .*(postgresql|PostgreSQL)/);
    const outage = await expectFastOutage(child.url, "GET", "/v1/agents", token, "database");
    expect(outage.body.error.message).toMatch(/PostgreSQL/);
    await expectFastOutage(child.url, "POST", "/v1/threads", token, "database", {});
    await expectFastOutage(child.url, "GET", `/v1/runs/${runIds[0]}`, token, "database");
    for (const r of [ready, outage]) expect(JSON.stringify(r.body)).not.toContain("pw-never-shown");
    // Down longer than the model calls: the workers' writes meet the outage too.
    await Bun.sleep(2_000);
    expect(child.proc.exitCode).toBeNull();
    expect((await http(child.url, "GET", "/healthz")).status).toBe(200);

    await pg.start();
    await waitFor("/readyz 200 after PostgreSQL is back", async () => (await readyz(child.url))?.status === 200, 10_000, 100);
    expect((await http(child.url, "GET", "/v1/agents", { token })).status).toBe(200);

    // Every accepted run ends, exactly once. (Recovery paces its retries up to a few seconds each:
    // on a loaded machine it can take a while; the statuses say where a run stopped if it does not.)
    let statuses: string[] = [];
    await waitFor("every run to end", async () => {
      statuses = await Promise.all(runIds.map(async (id) => {
        const r = await http(child.url, "GET", `/v1/runs/${id}`, { token });
        return r.status === 200 ? r.body.status : `HTTP ${r.status} ${r.body?.error?.code ?? ""}`;
      }));
      return statuses.every((s) => s === "completed") ? statuses : null;
    }, 60_000, 200).catch((err) => {
      throw new Error(`${(err as Error).message}; run statuses: ${statuses.join(", ")}`);
    });
    for (const id of runIds) {
      const { events } = await readRunEvents(child.url, token, id, 10_000);
      expect({ id, terminal: events.filter((e) => TERMINAL_RUN_EVENTS.includes(e.event)).map((e) => e.event) }).toEqual({ id, terminal: ["run.completed"] });
    }
    // Usage: one run row per run and one model_call row per completed model step, nothing twice.
    const expected = await admin`select run_id, count(*)::int as n from run_steps where kind = 'model_call' and status = 'completed' and run_id in ${admin(runIds)} group by run_id`;
    expect(expected.length).toBe(runIds.length);
    const usage = await waitFor("the usage rows of every run", async () => {
      const rows = await admin`select run_id, kind, count(*)::int as n, sum(total_tokens)::int as tokens from usage_records where run_id in ${admin(runIds)} group by run_id, kind`;
      return rows.length === runIds.length * 2 ? rows : null;
    }, 15_000, 200);
    for (const id of runIds) {
      const steps = expected.find((r) => r.run_id === id)!.n;
      expect({ id, run: usage.find((r) => r.run_id === id && r.kind === "run")?.n }).toEqual({ id, run: 1 });
      const model = usage.find((r) => r.run_id === id && r.kind === "model_call");
      expect({ id, model_calls: model?.n, tokens: model?.tokens }).toEqual({ id, model_calls: steps, tokens: 16 * steps });
    }
    expect(child.proc.exitCode).toBeNull();
    expect(await child.stop()).toBe(0);
    const { stderr } = await child.output();
    expect(stderr).not.toContain("unexpected error");
  }, 120_000);
});

describe("Redis outage [compiled binary, private Redis]", () => {
  let redis: PrivateServer;
  let child: ChildProcess;
  let dataDir: string;

  afterAll(async () => {
    if (child && child.proc.exitCode === null) await child.stop();
    await redis?.destroy();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test("login and authenticated reads keep answering (limits per process), /readyz names the cache, Redis is used again after it returns", async () => {
    redis = await startPrivateRedis();
    dataDir = mkdtempSync(join(tmpdir(), "agentos-outage-redis-"));
    child = await startChild(["serve", `--data-dir=${dataDir}`], { env: { REDIS_URL: redis.url } });
    const { token, email } = await signup(child.url);

    await redis.kill();
    const ready = await waitFor("/readyz to report the Redis outage", async () => {
      const r = await readyz(child.url);
      return r?.status === 503 && r.body.error.details.checks.cache !== "ok" ? r : null;
    }, OUTAGE_REPORTED_WITHIN_MS);
    expect(ready.body.error.message).toMatch(/cache: redis unavailable/);
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      const login = await http(child.url, "POST", "/v1/auth/login", { body: { email, password: PASSWORD }, timeoutMs: 5_000 });
      const me = await http(child.url, "GET", "/v1/auth/me", { token, timeoutMs: 5_000 });
      const agents = await http(child.url, "GET", "/v1/agents", { token, timeoutMs: 5_000 });
      expect([login.status, me.status, agents.status]).toEqual([200, 200, 200]);
      // Still limited, by this process alone.
      expect(Number(agents.headers.get("x-ratelimit-limit"))).toBeGreaterThan(0);
      expect(performance.now() - started).toBeLessThan(2_000);
    }
    // A wrong password is still refused (401), and the per-account limit still bites (429), never a 500.
    const statuses = new Set<number>();
    for (let i = 0; i < 12; i++) statuses.add((await http(child.url, "POST", "/v1/auth/login", { body: { email, password: "wrong password!!" } })).status);
    expect([...statuses].every((s) => s === 401 || s === 429)).toBe(true);
    expect(statuses.has(429)).toBe(true);

    await redis.start();
    await waitFor("/readyz 200 after Redis is back", async () => (await readyz(child.url))?.status === 200, 10_000, 100);
    // The limits are shared again: the counter lives in Redis.
    expect((await http(child.url, "GET", "/v1/agents", { token })).status).toBe(200);
    const { default: Redis } = await import("ioredis");
    const r = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    try {
      expect((await r.keys("agentos:rl:*")).length).toBeGreaterThan(0);
    } finally {
      r.disconnect();
    }
    expect(child.proc.exitCode).toBeNull();
    expect(await child.stop()).toBe(0);
  }, 40_000);
});

await describeReal("NATS outage on split roles [compiled binary, private NATS]", () => {
  let nats: NatsServer;
  let fake: FakeModel;
  let hooks: WebhookReceiver;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  const children: ChildProcess[] = [];

  afterAll(async () => {
    for (const c of children) if (c.proc.exitCode === null) await c.stop();
    await nats?.destroy();
    await database?.drop();
    fake?.stop();
    hooks?.stop();
  });

  test("RPC fails fast with 503 while NATS is down, /readyz names nats, it recovers; a run ended during the outage gets its webhook", async () => {
    nats = await startNatsServer();
    database = await createTestDatabase();
    fake = await startFakeModel();
    hooks = startWebhookReceiver();
    const env = { ...FAST_ENV, DATABASE_URL: database.url, NATS_URL: nats.url, JWT_SECRET: TEST_JWT_SECRET, AGENTOS_INTERNAL_KEY: TEST_INTERNAL_KEY, MODEL_BASE_URL: fake.url, AGENTOS_NAMESPACE: uniqueName("out") };
    // The backend first (it applies the migrations), then the gateway.
    const backend = await startChild(["serve", "--role=auth,agents,memory,tools,billing,notify,worker"], { env });
    children.push(backend);
    const gateway = await startChild(["serve", "--role=gateway"], { env });
    children.push(gateway);

    const { token } = await signup(gateway.url);
    const agent = await http(gateway.url, "POST", "/v1/agents", { token, body: { name: "outage", model: "fake-model", instructions: "Answer." } });
    expect(agent.status).toBe(201);
    const hook = await http(gateway.url, "POST", "/v1/webhooks", { token, body: { url: hooks.url, event_types: ["run.completed"] } });
    expect(hook.status).toBe(201);
    hooks.secret = hook.body.secret;
    // The run's model call outlasts the moment NATS goes down: it completes during the outage.
    fake.setDefault({ content: "done", delayMs: 1_500 });
    const thread = await http(gateway.url, "POST", "/v1/threads", { token, body: {} });
    const run = await http(gateway.url, "POST", `/v1/threads/${thread.body.id}/runs`, { token, body: { agent_id: agent.body.id, input: "hello" } });
    expect(run.status).toBe(201);
    await fake.waitForRequests(1, 10_000);

    await nats.stop("SIGKILL");
    for (const c of [gateway, backend]) {
      const r = await waitFor("/readyz to report the NATS outage", async () => {
        const ready = await readyz(c.url);
        return ready?.status === 503 && /bus: nats/.test(ready.body.error.message) ? ready : null;
      }, OUTAGE_REPORTED_WITHIN_MS);
      expect(r.body.error.details.checks.bus).toMatch(/nats disconnected/);
    }
    await expectFastOutage(gateway.url, "GET", "/v1/agents", token, "bus");
    await expectFastOutage(gateway.url, "GET", `/v1/runs/${run.body.id}`, token, "bus");
    // The run ends meanwhile (the worker and the database are up); its events wait in the outbox.
    await waitFor("the run to complete in the database", async () => {
      const sql = postgres(database.url, { max: 1, onnotice: () => {} });
      try {
        const [row] = await sql`select status from runs where id = ${run.body.id}`;
        return row?.status === "completed";
      } finally {
        await sql.end();
      }
    }, 10_000, 200);
    expect(hooks.acknowledged("run.completed").size).toBe(0);

    await nats.start();
    for (const c of [gateway, backend]) await waitFor("/readyz 200 after NATS is back", async () => (await readyz(c.url))?.status === 200, 15_000, 100);
    const after = await http(gateway.url, "GET", `/v1/runs/${run.body.id}`, { token });
    expect([after.status, after.body.status]).toEqual([200, "completed"]);
    const delivered = await waitFor("the run.completed webhook", () => [...hooks.acknowledged("run.completed").values()].find((e) => e.payload?.id === run.body.id || e.payload?.run_id === run.body.id), 20_000, 100);
    expect(delivered.type).toBe("run.completed");
    expect(hooks.deliveries.every((d) => d.signatureOk)).toBe(true);
    for (const c of children) expect(c.proc.exitCode).toBeNull();
  }, 80_000);
});
