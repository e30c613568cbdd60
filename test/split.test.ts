/**
 * Split mode on real PostgreSQL + NATS: child processes of `bun run src/main.ts serve`
 * (--role=gateway, --role=agents, two --role=worker, plus one process with the auth,
 * memory, tools and billing roles they call). A batch of runs, each a tool call and two
 * model calls, runs to completion while the worker holding leases is killed with SIGKILL:
 * every run completes exactly once and no completed tool call is executed again.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import postgres from "postgres";
import { createTestDatabase, describeReal, dropNatsNamespace, REAL_URLS, uniqueName } from "./support/backends";
import { apiClient } from "./support/api";
import { startChild, type ChildProcess } from "./support/binary";
import { startFakeModel, type FakeModel } from "./support/fake-model";
import { TEST_INTERNAL_KEY, TEST_JWT_SECRET } from "./support/harness";
import { TEST_RUN_ENV } from "./support/run-suite";
import { runApi, startToolServer, type ToolServer } from "./support/testkit";

const RUNS = 16;

await describeReal("split mode", () => {
  let fake: FakeModel;
  let tools: ToolServer;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  const namespace = uniqueName("t");
  const children: ChildProcess[] = [];
  let gateway: ChildProcess;
  let workerA: ChildProcess;
  let workerB: ChildProcess;

  const start = (role: string) =>
    startChild(
      ["serve", `--role=${role}`, `--database-url=${db.url}`, `--nats-url=${REAL_URLS.nats}`, `--redis-url=${REAL_URLS.redis}`, `--namespace=${namespace}`, `--jwt-secret=${TEST_JWT_SECRET}`, `--internal-key=${TEST_INTERNAL_KEY}`, `--model-base-url=${fake.url}`],
      { cmd: [process.execPath, "run", "src/main.ts"], env: { ...TEST_RUN_ENV, LOG_LEVEL: "error" } },
    ).then((c) => {
      children.push(c);
      return c;
    });

  beforeAll(async () => {
    fake = await startFakeModel();
    tools = startToolServer();
    db = await createTestDatabase();
    // One process applies the migrations first; the others then find the schema ready.
    await start("auth,memory,tools,billing");
    [gateway, , workerA, workerB] = await Promise.all([start("gateway"), start("agents"), start("worker"), start("worker")]);
  }, 90_000);

  afterAll(async () => {
    await Promise.all(children.map((c) => c.stop("SIGKILL").catch(() => {})));
    fake?.stop();
    tools?.stop();
    await db?.drop();
    await dropNatsNamespace(namespace).catch(() => {});
  }, 30_000);

  test("a batch of runs completes exactly once while a worker is killed with SIGKILL", async () => {
    const client = { url: gateway.url, request: apiClient(gateway.url).call };
    const signup = await client.request("POST", "/v1/auth/signup", { body: { email: `${uniqueName("u")}@example.com`, password: "correct horse battery" } });
    expect(signup.status).toBe(201);
    const token = signup.body.access_token;
    expect((await client.request("PUT", "/v1/billing/plan", { token, body: { plan: "enterprise" } })).status).toBe(200);
    const api = runApi(client, token);
    const probe = await api.tool({ name: "probe", kind: "http", config: { url: tools.url }, parameters: { type: "object", properties: {} } });
    const agent = await api.agent({ tools: [probe.id] });
    // Each run: the model asks for the tool (slowly), then answers after the tool result.
    fake.setDefault((req) =>
      req.body.messages.at(-1).role === "tool" ? { content: "done", delayMs: 200 } : { tool_calls: [{ name: "probe", arguments: {} }], delayMs: 400 },
    );

    const runIds: string[] = [];
    for (let i = 0; i < RUNS; i++) {
      const thread = await api.thread();
      runIds.push((await api.run(thread.id, { agent_id: agent.id, input: `run ${i}` })).id);
    }

    // Kill the worker that holds leases right now, mid-run.
    await fake.waitForRequests(RUNS / 2, 20_000);
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      const owners = (await sql`select distinct lease_owner from runs where lease_owner is not null`).map((r) => String(r.lease_owner));
      const victim = [workerA, workerB].find((w) => owners.some((o) => o.includes(`:${w.proc.pid}:`)))!;
      expect(victim).toBeDefined();
      const killedAt = Date.now();
      victim.proc.kill("SIGKILL");
      await victim.proc.exited;

      for (const id of runIds) {
        const run = await api.wait(id, 60);
        expect([id, run.status]).toEqual([id, "completed"]);
      }
      const counts = await sql`select r.id,
          (select count(*) from run_events e where e.run_id = r.id and e.type = 'run.completed')::int as completed_events,
          (select count(*) from messages m where m.run_id = r.id and m.role = 'assistant')::int as answers,
          r.attempts
        from runs r`;
      expect(counts).toHaveLength(RUNS);
      for (const c of counts) expect([c.id, c.completed_events, c.answers]).toEqual([c.id, 1, 1]);
      // The kill interrupted at least one run, which another worker resumed.
      expect(counts.some((c) => c.attempts >= 2)).toBe(true);

      // A tool call is repeated only if the crash interrupted it; a completed one never runs again.
      const toolSteps = await sql`select tool_call_id, completed_at from run_steps where kind = 'tool_call'`;
      expect(toolSteps).toHaveLength(RUNS);
      for (const s of toolSteps) {
        const calls = tools.calls.filter((c) => c.tool_call_id === s.tool_call_id);
        expect(calls.length).toBeGreaterThanOrEqual(1);
        const completedAt = new Date(s.completed_at).getTime();
        expect(calls.filter((c) => c.at > completedAt + 5)).toHaveLength(0);
        // The tool server stamps a call when it handles it, which on a loaded machine can be a
        // little after the killed worker sent it: allow that lag, not a later first call.
        if (calls.length > 1) expect(calls[0].at).toBeLessThan(killedAt + 500);
      }
      // Events of every run are contiguous 1..n.
      const gaps = await sql`select run_id, count(*)::int as n, max(seq) as max from run_events group by run_id`;
      for (const g of gaps) expect(g.n).toBe(g.max);
    } finally {
      await sql.end();
    }
  }, 120_000);
});

