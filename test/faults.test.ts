/**
 * Faults on the split cluster (test/support/cluster.ts), with a private nats-server so NATS
 * itself can be restarted. For each role in turn — gateway #1, auth, agents, worker #1,
 * memory, tools, billing, notify — a stream of run creations flows through the live gateways
 * (every create retried on 5xx/429/connection errors/request_in_progress with the SAME
 * Idempotency-Key, authenticated alternately by JWT and API key) while runs, tool calls and
 * webhook deliveries are in flight; the role's process is killed with SIGKILL at a moment
 * chosen for it (e.g. tools: while a tool call is executing; notify: while a delivery is
 * being received), stays down for a moment, and is restarted with the same arguments. Then
 * NATS is stopped mid-load: every process's /readyz turns 503 naming the bus, and after NATS
 * comes back on the same store dir every process is ready again and the runs complete.
 *
 * At the end, over every accepted run: exactly one run per accepted create (no duplicates),
 * exactly one terminal event (run.completed) in GET /v1/runs/:id/events, one usage row per
 * completed model-call step (none lost, none doubled; same tokens), and every run.completed
 * event delivered to the webhook receiver (deduplicated by X-AgentOS-Event-Id).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import postgres from "postgres";
import { describeReal } from "./support/backends";
import {
  http,
  readRunEvents,
  startCluster,
  startNatsServer,
  startSignedToolServer,
  startWebhookReceiver,
  TERMINAL_RUN_EVENTS,
  waitFor,
  type Cluster,
  type HttpReply,
  type NatsServer,
  type SignedToolServer,
  type WebhookReceiver,
} from "./support/cluster";
import { startFakeModel, type FakeModel } from "./support/fake-model";

const RUNS_PER_PHASE = 6;
/** How long a killed role stays down while the load goes on. */
const DOWNTIME_MS = 1500;
/** Short leases and reconcile intervals so recovery takes seconds (read by each process at start). */
const FAST_ENV = {
  AGENTOS_RUN_LEASE_MS: "2500",
  AGENTOS_RECONCILE_INTERVAL_MS: "250",
  AGENTOS_REQUEUE_AFTER_MS: "1500",
  AGENTOS_MODEL_MAX_RETRIES: "2",
  AGENTOS_MODEL_BACKOFF_MS: "20",
  AGENTOS_DELTA_FLUSH_MS: "20",
  AGENTOS_WEBHOOK_RETRY_BASE_MS: "200",
  AGENTOS_WEBHOOK_RETRY_MAX_MS: "2000",
  AGENTOS_WEBHOOK_POLL_MS: "100",
  AGENTOS_WEBHOOK_MAX_ATTEMPTS: "30",
  // A create whose agents process was killed mid-request left its Idempotency-Key claimed; a retry takes it over after this.
  AGENTOS_IDEMPOTENCY_STALE_MS: "5000",
};

interface Accepted {
  runId: string;
  threadId: string;
  phase: string;
}

await describeReal("faults on the split cluster", () => {
  let nats: NatsServer;
  let cluster: Cluster;
  let fake: FakeModel;
  let tool: SignedToolServer;
  let hooks: WebhookReceiver;
  let sql: ReturnType<typeof postgres>;
  let token: string;
  let apiKey: string;
  let orgId: string;
  let agentId: string;
  const accepted: Accepted[] = [];
  const timings: Record<string, unknown>[] = [];
  let rr = 0;

  /** A request to the next live gateway (round robin). */
  const viaGateway = (method: string, path: string, o: { body?: unknown; headers?: Record<string, string>; credential?: string; timeoutMs?: number } = {}) => {
    const gateways = cluster.liveGateways();
    if (gateways.length === 0) throw new Error("no gateway is running");
    return http(gateways[rr++ % gateways.length].url, method, path, { token: o.credential ?? token, body: o.body, headers: o.headers, timeoutMs: o.timeoutMs });
  };

  beforeAll(async () => {
    nats = await startNatsServer();
    fake = await startFakeModel();
    // Each run: the model asks for the tool (300 ms), the tool answers (250 ms), the model answers (150 ms).
    fake.setDefault((req) =>
      req.body.messages.at(-1).role === "tool" ? { content: "done", delayMs: 150 } : { tool_calls: [{ name: "probe", arguments: { q: "status" } }], delayMs: 300 },
    );
    tool = startSignedToolServer(250);
    // Deliveries take 150 ms; about half of the events fail their first attempt (so retries are in flight too).
    hooks = startWebhookReceiver({ delayMs: 150, failFirst: (id) => id.charCodeAt(id.length - 1) % 2 === 0 });
    cluster = await startCluster({ modelBaseUrl: fake.url, natsUrl: nats.url, env: FAST_ENV });
    sql = postgres(cluster.databaseUrl, { max: 2, onnotice: () => {} });

    const signup = await viaGateway("POST", "/v1/auth/signup", { body: { email: `faults-${Date.now()}@example.com`, password: "correct horse battery" } });
    expect(signup.status).toBe(201);
    token = signup.body.access_token;
    orgId = signup.body.organization.id;
    expect((await viaGateway("PUT", "/v1/billing/plan", { body: { plan: "enterprise" } })).status).toBe(200);
    const key = await viaGateway("POST", "/v1/api-keys", { body: { name: "load" } });
    expect(key.status).toBe(201);
    apiKey = key.body.key;
    const probe = await viaGateway("POST", "/v1/tools", {
      body: { name: "probe", kind: "http", config: { url: tool.url }, parameters: { type: "object", properties: { q: { type: "string" } } } },
    });
    expect(probe.status).toBe(201);
    tool.secret = probe.body.signing_secret;
    const agent = await viaGateway("POST", "/v1/agents", { body: { name: "fault agent", model: "fake-model", instructions: "Call probe, then answer.", tools: [probe.body.id] } });
    expect(agent.status).toBe(201);
    agentId = agent.body.id;
    const hook = await viaGateway("POST", "/v1/webhooks", { body: { url: hooks.url, event_types: ["run.completed"] } });
    expect(hook.status).toBe(201);
    hooks.secret = hook.body.secret;
  }, 180_000);

  afterAll(async () => {
    if (timings.length) console.log(`fault phases:\n${timings.map((t) => JSON.stringify(t)).join("\n")}`);
    await sql?.end();
    await cluster?.stop({ keepNatsStreams: true }); // the private NATS and its store go next
    await nats?.destroy();
    fake?.stop();
    tool?.stop();
    hooks?.stop();
  }, 60_000);

  // ---------------------------------------------------------------- the load

  interface Load {
    phase: string;
    accepted: Accepted[];
    inFlight: number;
    retries: string[];
    done: Promise<Accepted[]>;
  }

  /**
   * Creates `n` runs (each on its own thread) with two concurrent creators. Every create is
   * retried until accepted, always under the same Idempotency-Key: a retry after a lost reply
   * must return the run the first attempt created, never make a second one.
   */
  function startLoad(phase: string, n: number): Load {
    const load: Load = { phase, accepted: [], inFlight: 0, retries: [], done: Promise.resolve([]) };
    const credential = (attempt: number) => (attempt % 2 === 0 ? token : apiKey);

    async function reliably(method: string, path: string, body: unknown, key: string): Promise<any> {
      const deadline = Date.now() + 120_000;
      for (let attempt = 1; ; attempt++) {
        let outcome: string;
        load.inFlight++;
        let reply: HttpReply | undefined;
        try {
          reply = await viaGateway(method, path, { body, credential: credential(attempt), headers: { "idempotency-key": key }, timeoutMs: 30_000 });
        } catch (err) {
          reply = undefined;
          outcome = `network: ${(err as Error).message}`;
        } finally {
          load.inFlight--;
        }
        if (reply) {
          if (reply.status === 200 || reply.status === 201) return reply.body;
          const code = reply.body?.error?.code;
          const retryable = reply.status >= 500 || reply.status === 429 || (reply.status === 409 && code === "request_in_progress");
          if (!retryable) throw new Error(`${method} ${path} (Idempotency-Key ${key}) → ${reply.status} ${JSON.stringify(reply.body)}`);
          outcome = `${reply.status} ${code}`;
        }
        load.retries.push(`${key}#${attempt}: ${outcome!}`);
        if (Date.now() > deadline) throw new Error(`${method} ${path} (Idempotency-Key ${key}) not accepted after ${attempt} attempts: ${load.retries.filter((r) => r.startsWith(key)).join(" | ")}`);
        await Bun.sleep(Math.min(1000, 100 * attempt));
      }
    }

    async function createOne(i: number) {
      const thread = await reliably("POST", "/v1/threads", { metadata: { phase } }, `${phase}-thread-${i}`);
      const run = await reliably("POST", `/v1/threads/${thread.id}/runs`, { agent_id: agentId, input: `${phase} run ${i}` }, `${phase}-run-${i}`);
      const a = { runId: run.id, threadId: thread.id, phase };
      load.accepted.push(a);
      accepted.push(a);
    }

    let next = 0;
    const creator = async () => {
      while (next < n) {
        await createOne(next++);
        await Bun.sleep(150);
      }
    };
    load.done = Promise.all([creator(), creator()]).then(() => load.accepted);
    return load;
  }

  /**
   * Runs a phase; if it fails, the error carries the tail of every member's log, because a CI
   * report shows only the failure, and the cluster's log dir is gone by then.
   */
  async function withClusterLogs(body: () => Promise<void>): Promise<void> {
    try {
      await body();
    } catch (err) {
      const tails = cluster.list().map((m) => `--- ${m.name} (${m.alive ? "up" : "down"}, ${m.restarts} restarts):\n${cluster.logTail(m.name, 1200).trim() || "(empty)"}`);
      if (err instanceof Error) err.message += `\ncluster logs, last lines:\n${tails.join("\n")}`;
      throw err;
    }
  }

  const runStatus = async (runId: string) => {
    const r = await viaGateway("GET", `/v1/runs/${runId}`);
    return r.status === 200 ? (r.body.status as string) : null;
  };

  /** Waits until every run is terminal; returns the statuses. */
  async function settle(runs: Accepted[], timeoutMs = 120_000): Promise<Record<string, string>> {
    const statuses: Record<string, string> = {};
    await waitFor(`${runs.length} runs to finish`, async () => {
      for (const r of runs) {
        if (["completed", "failed", "cancelled", "expired"].includes(statuses[r.runId])) continue;
        const s = await runStatus(r.runId).catch(() => null);
        if (s) statuses[r.runId] = s;
      }
      return runs.every((r) => ["completed", "failed", "cancelled", "expired"].includes(statuses[r.runId]));
    }, timeoutMs, 200);
    return statuses;
  }

  const phaseRunning = async (phase: string) =>
    (await sql`select count(*)::int as n from runs where org_id = ${orgId} and status = 'in_progress' and thread_id in (select id from threads where metadata->>'phase' = ${phase})`)[0].n > 0;

  /** The moment to kill each role: when it has work in flight. */
  const triggers: Record<string, (load: Load) => Promise<boolean> | boolean> = {
    "gateway#1": (l) => l.accepted.length >= 2 && l.inFlight > 0,
    auth: (l) => l.accepted.length >= 2,
    agents: (l) => l.accepted.length >= 2 && l.inFlight > 0,
    "worker#1": async (l) => {
      if (l.accepted.length < 1) return false;
      const pid = cluster.member("worker#1").proc!.pid;
      const rows = await sql`select count(*)::int as n from runs where lease_owner like ${`%:${pid}:%`} and status = 'in_progress'`;
      return rows[0].n > 0;
    },
    memory: async (l) => l.accepted.length >= 2 && (await phaseRunning(l.phase)),
    tools: () => tool.inFlight > 0,
    billing: async (l) => l.accepted.length >= 2 && (await phaseRunning(l.phase)),
    notify: (l) => l.accepted.length >= 2 && hooks.inFlight > 0,
  };

  /** After the restart, the role serves again (through a gateway where it has an API). */
  const probes: Record<string, () => Promise<HttpReply>> = {
    "gateway#1": () => http(cluster.member("gateway#1").url, "GET", `/v1/agents/${agentId}`, { token }),
    auth: () => viaGateway("GET", "/v1/auth/me", { credential: apiKey }),
    agents: () => viaGateway("GET", `/v1/agents/${agentId}`),
    "worker#1": () => http(cluster.member("worker#1").url, "GET", "/readyz"),
    memory: () => viaGateway("GET", `/v1/agents/${agentId}/memory/blocks`),
    tools: () => viaGateway("GET", "/v1/tools"),
    billing: () => viaGateway("GET", "/v1/billing/plan"),
    notify: () => viaGateway("GET", "/v1/webhooks"),
  };

  for (const victim of Object.keys(triggers)) {
    test(`kill -9 of ${victim} mid-load, then restart: its runs complete`, async () => {
      const t0 = Date.now();
      const load = startLoad(victim.replace("#", ""), RUNS_PER_PHASE);
      try {
        await withClusterLogs(async () => {
          await waitFor(`work in flight for ${victim}`, () => triggers[victim](load), 60_000, 20);
          const pid = cluster.member(victim).proc!.pid;
          const killedAt = Date.now();
          await cluster.kill(victim, "SIGKILL");
          expect(cluster.member(victim).proc!.signalCode).toBe("SIGKILL");
          const inFlightAtKill = { creates: load.inFlight, tool_calls: tool.inFlight, deliveries: hooks.inFlight, accepted: load.accepted.length };
          await Bun.sleep(DOWNTIME_MS);
          await cluster.restart(victim);
          const readyAt = Date.now();
          expect(cluster.member(victim).proc!.pid).not.toBe(pid);
          const probe = await waitFor(`${victim} to serve again`, async () => {
            const r = await probes[victim]();
            return r.status === 200 ? r : null;
          }, 30_000);
          expect(probe.status).toBe(200);

          const runs = await load.done;
          expect(runs).toHaveLength(RUNS_PER_PHASE);
          const statuses = await settle(runs);
          const settledAt = Date.now();
          timings.push({ victim, kill_after_ms: killedAt - t0, restart_ready_ms: readyAt - killedAt, settled_ms: settledAt - t0, in_flight_at_kill: inFlightAtKill, create_retries: load.retries.length, retry_outcomes: [...new Set(load.retries.map((r) => r.split(": ")[1]))] });
          expect(runs.map((r) => [r.runId, statuses[r.runId]])).toEqual(runs.map((r) => [r.runId, "completed"]));
        });
      } finally {
        if (!cluster.isAlive(victim)) await cluster.restart(victim).catch(() => {});
        await load.done.catch(() => {});
      }
    }, 240_000);
  }

  test("NATS restarted mid-load: /readyz reports the outage while it lasts, processes reconnect, runs complete", async () => {
    const t0 = Date.now();
    const load = startLoad("nats", RUNS_PER_PHASE);
    try {
      await withClusterLogs(async () => {
        await waitFor("runs in flight", () => load.accepted.length >= 2, 60_000, 20);
        const stoppedAt = Date.now();
        await nats.stop("SIGTERM");
        // While NATS is down every process says so on /readyz: 503 naming the bus.
        const reported = new Map<string, any>();
        await waitFor("every process's /readyz to report the NATS outage", async () => {
          await Promise.all(
            cluster.members.filter((m) => !reported.has(m.name)).map(async (m) => {
              const r = await cluster.readyz(m.name).catch(() => null);
              if (r?.status === 503 && /nats|bus/i.test(JSON.stringify(r.body))) reported.set(m.name, r.body);
            }),
          );
          return reported.size === cluster.members.length;
        }, 30_000, 100);
        const example = reported.get("agents");
        expect(example.error.code).toBe("not_ready");
        expect(example.error.message).toMatch(/bus: nats (disconnected|connection closed)/);
        const reportedAt = Date.now();
        // Keep it down a little longer (creates meet the outage), then check /readyz still says so.
        await Bun.sleep(Math.max(0, stoppedAt + DOWNTIME_MS - Date.now()));
        const late = await Promise.all(cluster.members.map((m) => cluster.readyz(m.name).then((r) => r.status, () => 0)));
        expect(late).toEqual(cluster.members.map(() => 503));

        await nats.start();
        const natsBackAt = Date.now();
        await waitFor("every process ready again after NATS came back", async () => {
          const all = await Promise.all(cluster.members.map((m) => cluster.readyz(m.name).then((r) => r.status, () => 0)));
          return all.every((s) => s === 200);
        }, 60_000, 100);
        const readyAgainAt = Date.now();
        expect(cluster.list().every((m) => m.alive)).toBe(true);

        const runs = await load.done;
        // Runs created after the outage complete too: the workers' queue consumers reconnected.
        const after = startLoad("nats-after", 2);
        const runsAfter = await after.done;
        const statuses = await settle([...runs, ...runsAfter]);
        timings.push({
          victim: "nats",
          outage_ms: natsBackAt - stoppedAt,
          all_readyz_503_after_ms: reportedAt - stoppedAt,
          ready_again_after_ms: readyAgainAt - natsBackAt,
          settled_ms: Date.now() - t0,
          create_retries: load.retries.length,
          retry_outcomes: [...new Set(load.retries.map((r) => r.split(": ")[1]))],
        });
        expect([...runs, ...runsAfter].map((r) => statuses[r.runId])).toEqual([...runs, ...runsAfter].map(() => "completed"));
      });
    } finally {
      if (!nats.running()) await nats.start().catch(() => {});
      await load.done.catch(() => {});
    }
  }, 240_000);

  test("every accepted run: created once, one terminal event, usage once per model call, run.completed delivered", async () => {
    expect(accepted.length).toBeGreaterThanOrEqual(RUNS_PER_PHASE * 9);
    const ids = accepted.map((a) => a.runId);
    expect(new Set(ids).size).toBe(ids.length);

    // No create ran twice: the organization has exactly the accepted runs, one per thread.
    const runRows = await sql`select id, thread_id, status from runs where org_id = ${orgId}`;
    expect(runRows.map((r) => r.id).sort()).toEqual([...ids].sort());
    const threadsWithRuns = await sql`select t.id, t.metadata->>'phase' as phase, t.created_at, count(r.id)::int as n from threads t left join runs r on r.thread_id = t.id where t.org_id = ${orgId} group by t.id`;
    expect(threadsWithRuns.filter((t) => t.n !== 1)).toEqual([]);
    expect(threadsWithRuns).toHaveLength(ids.length);

    // Exactly one terminal event per run, and it is run.completed (read through the API, both gateways).
    for (const a of accepted) {
      const { status, events } = await readRunEvents(cluster.liveGateways()[rr++ % 2].url, token, a.runId);
      expect(status).toBe(200);
      expect([a.runId, events.map((e) => e.id)]).toEqual([a.runId, events.map((_, i) => i + 1)]);
      expect([a.runId, events.filter((e) => TERMINAL_RUN_EVENTS.includes(e.event)).map((e) => e.event)]).toEqual([a.runId, ["run.completed"]]);
    }
    // One run.completed domain event per run (the webhook's source).
    const completedEvents = await sql`select id, payload->>'run_id' as run_id from outbox_events where org_id = ${orgId} and type = 'run.completed'`;
    expect(completedEvents.map((e) => e.run_id).sort()).toEqual([...ids].sort());

    // Usage: one ledger row per completed model-call step, with the step's tokens; never more.
    let maxExcess = 0;
    const ledger = await waitFor("the usage ledger to catch up", async () => {
      const rows = await sql`
        select r.id as run_id,
          (select count(*)::int from run_steps s where s.run_id = r.id and s.kind = 'model_call' and s.status = 'completed') as steps,
          (select coalesce(sum((s.usage->>'total_tokens')::int), 0)::int from run_steps s where s.run_id = r.id and s.kind = 'model_call' and s.status = 'completed') as step_tokens,
          (select count(*)::int from usage_records u where u.run_id = r.id and u.kind = 'model_call') as rows,
          (select coalesce(sum(u.total_tokens), 0)::int from usage_records u where u.run_id = r.id and u.kind = 'model_call') as row_tokens,
          (select count(*)::int from usage_records u where u.run_id = r.id and u.kind = 'run') as run_rows
        from runs r where r.org_id = ${orgId}`;
      maxExcess = Math.max(maxExcess, ...rows.map((r) => r.rows - r.steps));
      return rows.every((r) => r.rows === r.steps && r.run_rows === 1) ? rows : null;
    }, 120_000, 500);
    expect(maxExcess).toBe(0);
    for (const r of ledger) {
      expect([r.run_id, r.steps >= 2, r.rows, r.row_tokens]).toEqual([r.run_id, true, r.steps, r.step_tokens]);
    }
    // The same through the usage API.
    const usage = await viaGateway("GET", "/v1/billing/usage?group_by=model");
    expect(usage.status).toBe(200);
    const steps = ledger.reduce((n, r) => n + r.steps, 0);
    const tokens = ledger.reduce((n, r) => n + r.step_tokens, 0);
    expect(usage.body.totals).toMatchObject({ runs: ids.length, model_calls: steps, total_tokens: tokens });

    // Webhooks: every run.completed event id acknowledged by the receiver at least once, all signatures valid.
    await waitFor("every run.completed webhook", () => completedEvents.every((e) => hooks.acknowledged("run.completed").has(e.id)), 120_000, 200);
    const acknowledged = hooks.acknowledged("run.completed");
    expect(new Set([...acknowledged.values()].map((e) => e.payload.run_id))).toEqual(new Set(ids));
    expect(hooks.deliveries.filter((d) => !d.signatureOk)).toEqual([]);
    const duplicates = hooks.deliveries.filter((d) => d.status === 200).length - acknowledged.size;
    console.log(`faults: ${ids.length} runs, ${steps} model calls, ${tool.calls.length} tool calls, ${hooks.deliveries.length} webhook attempts (${acknowledged.size} events acknowledged, ${duplicates} duplicate deliveries deduplicated by event id)`);
    // Every tool call carried a valid signature.
    expect(tool.calls.filter((c) => !c.signatureOk)).toEqual([]);
  }, 240_000);
});
