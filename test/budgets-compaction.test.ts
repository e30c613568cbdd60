/**
 * Run budgets, API-key daily spend caps and context compaction (issue 12, items 6 and 7), on
 * the compiled binary against the fake model, on the embedded default (PGlite data dir) and on
 * real PostgreSQL + NATS + Redis. Includes kill -9 of the process in the middle of a budgeted
 * run: after the restart the run resumes, its usage is neither doubled nor lost (the run's
 * usage, its steps and the billing ledger agree) and the budget still stops it in time.
 *
 * Prices: the fake model costs 1 cent per prompt token and 2 cents per completion token
 * (AGENTOS_MODEL_PRICES), so cents and tokens are easy to relate.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { countPromptTokens } from "../src/platform/model/tokens";
import { createTestDatabase, describeReal, dropNatsNamespace, dropRedisNamespace, REAL_URLS, uniqueName } from "./support/backends";
import { startChild, type ChildProcess } from "./support/binary";
import { defaultSummary, startFakeModel, type FakeModel } from "./support/fake-model";
import { TEST_JWT_SECRET } from "./support/harness";
import { TEST_RUN_ENV } from "./support/run-suite";
import { runApi, startToolServer, type ToolServer } from "./support/testkit";

const PRICES = { "fake-model": { input_cents_per_million: 1_000_000, output_cents_per_million: 2_000_000 } };
const centsOf = (u: { prompt_tokens: number; completion_tokens: number }) => u.prompt_tokens + 2 * u.completion_tokens;

interface Backend {
  /** Starts (or restarts) the binary on the same data. */
  start(): Promise<ChildProcess>;
  /** SQL on the run's database (real backend only). */
  sql?: postgres.Sql;
  cleanup(): Promise<void>;
}

function embedded(fake: FakeModel): Backend {
  const dataDir = mkdtempSync(join(tmpdir(), "agentos-budget-"));
  return {
    start: () => startChild(["serve", `--data-dir=${dataDir}`, `--model-base-url=${fake.url}`], { env: env() }),
    async cleanup() {
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function real(fake: FakeModel): Promise<Backend> {
  const database = await createTestDatabase();
  const namespace = uniqueName("t");
  const sql = postgres(database.url, { max: 2, onnotice: () => {} });
  return {
    sql,
    start: () =>
      startChild(["serve", `--database-url=${database.url}`, `--redis-url=${REAL_URLS.redis}`, `--nats-url=${REAL_URLS.nats}`, `--namespace=${namespace}`, `--model-base-url=${fake.url}`], {
        env: { ...env(), JWT_SECRET: TEST_JWT_SECRET },
      }),
    async cleanup() {
      await sql.end();
      await database.drop();
      await dropNatsNamespace(namespace).catch(() => {});
      await dropRedisNamespace(namespace).catch(() => {});
    },
  };
}

const env = () => ({ ...TEST_RUN_ENV, LOG_LEVEL: "error", AGENTOS_MODEL_PRICES: JSON.stringify(PRICES) });

function client(url: string) {
  return async (method: string, path: string, o: { body?: unknown; token?: string; headers?: Record<string, string> } = {}) => {
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    if (o.body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(url + path, { method, headers, body: o.body === undefined ? undefined : JSON.stringify(o.body) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
  };
}

function defineSuite(name: string, makeBackend: (fake: FakeModel) => Backend | Promise<Backend>) {
  describe(name, () => {
    let fake: FakeModel;
    let tools: ToolServer;
    let backend: Backend;
    let child: ChildProcess;
    let token: string;
    let api: ReturnType<typeof runApi>;
    const request = (method: string, path: string, o: { body?: unknown; token?: string } = {}) => client(child.url)(method, path, { token, ...o });

    const connect = async () => {
      child = await backend.start();
      api = runApi({ url: child.url, request: client(child.url) }, token);
    };

    test("setup: the binary starts, an enterprise organization", async () => {
      fake = await startFakeModel();
      tools = startToolServer();
      backend = await makeBackend(fake);
      child = await backend.start();
      const signup = await client(child.url)("POST", "/v1/auth/signup", { body: { email: `${uniqueName("b")}@example.com`, password: "correct horse battery" } });
      expect(signup.status).toBe(201);
      token = signup.body.access_token;
      expect((await request("PUT", "/v1/billing/plan", { body: { plan: "enterprise" } })).status).toBe(200);
      api = runApi({ url: child.url, request: client(child.url) }, token);
    }, 120_000);

    afterAll(async () => {
      await child?.stop("SIGKILL").catch(() => {});
      await backend?.cleanup();
      fake?.stop();
      tools?.stop();
    }, 60_000);

    const loopingAgent = async () => {
      const probe = await api.tool({ name: uniqueName("probe"), kind: "http", config: { url: tools.url }, parameters: { type: "object", properties: {} } });
      // Every reply asks for the tool again: only a limit ends the run.
      fake.setDefault({ tool_calls: [{ name: probe.name, arguments: {} }] });
      return Object.assign(await api.agent({ tools: [probe.id], max_steps: 100 }), { toolName: probe.name as string });
    };
    const sumStepUsage = (steps: any[]) =>
      steps.filter((s) => s.usage).reduce(
        (a, s) => ({ prompt_tokens: a.prompt_tokens + s.usage.prompt_tokens, completion_tokens: a.completion_tokens + s.usage.completion_tokens, total_tokens: a.total_tokens + s.usage.total_tokens, estimated: a.estimated || s.usage.estimated }),
        { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, estimated: false },
      );

    test("budget on run create: validated, persisted, shown on the run", async () => {
      const agent = await api.agent();
      const thread = await api.thread();
      for (const [budget, field] of [[{}, "budget"], [{ max_tokens: 0 }, "budget.max_tokens"], [{ max_cost_cents: -1 }, "budget.max_cost_cents"], [{ max_tokens: 1.5 }, "budget.max_tokens"]] as const) {
        const r = await api.call("POST", `/v1/threads/${thread.id}/runs`, { agent_id: agent.id, input: "hi", budget });
        expect({ budget, status: r.status }).toEqual({ budget, status: 400 });
        expect(JSON.stringify(r.body.error)).toContain(field);
      }
      const unknown = await api.call("POST", `/v1/threads/${thread.id}/runs`, { agent_id: agent.id, input: "hi", budget: { max_tokens: 10_000, max_calls: 3 } });
      expect(unknown.status).toBe(400);
      expect(unknown.body.error.code).toBe("unknown_parameter");
      fake.setDefault({ content: "fine" });
      const run = await api.run(thread.id, { agent_id: agent.id, input: "hi", budget: { max_tokens: 10_000, max_cost_cents: 50_000 } });
      expect(run.budget).toEqual({ max_tokens: 10_000, max_cost_cents: 50_000 });
      const done = await api.wait(run.id);
      expect(done.status).toBe("completed");
      expect(done.budget).toEqual({ max_tokens: 10_000, max_cost_cents: 50_000 });
      expect((await api.get(run.id)).budget).toEqual({ max_tokens: 10_000, max_cost_cents: 50_000 });
      const unbudgeted = await api.run((await api.thread()).id, { agent_id: agent.id, input: "hi" });
      expect(unbudgeted.budget).toBeNull();
      expect((await api.wait(unbudgeted.id)).status).toBe("completed");
    }, 60_000);

    test("max_tokens: the run fails budget_exceeded before the call that could go over, and never went over", async () => {
      fake.reset();
      const agent = await loopingAgent();
      const thread = await api.thread();
      const maxTokens = 4000;
      const run = await api.run(thread.id, { agent_id: agent.id, input: "loop until the budget stops you", budget: { max_tokens: maxTokens } });
      const done = await api.wait(run.id, 60);
      expect(done.status).toBe("failed");
      expect(done.last_error.code).toBe("budget_exceeded");
      expect(done.usage.total_tokens).toBeLessThanOrEqual(maxTokens);
      expect(done.usage.total_tokens).toBeGreaterThan(0);
      const steps = await api.steps(run.id);
      const models = steps.filter((s) => s.kind === "model_call");
      expect(models.length).toBeGreaterThanOrEqual(2);
      // Refused before it started: no step was opened for it, the model was not asked.
      expect(models.every((s) => s.status === "completed")).toBe(true);
      expect(fake.requests).toHaveLength(models.length);
      expect(done.usage).toEqual(sumStepUsage(steps));
    }, 90_000);

    test("max_cost_cents at billing's prices", async () => {
      fake.reset();
      const agent = await loopingAgent();
      const maxCents = 5000;
      const run = await api.run((await api.thread()).id, { agent_id: agent.id, input: "spend", budget: { max_cost_cents: maxCents } });
      const done = await api.wait(run.id, 60);
      expect(done.status).toBe("failed");
      expect(done.last_error.code).toBe("budget_exceeded");
      expect(done.last_error.message).toContain("max_cost_cents");
      expect(centsOf(done.usage)).toBeLessThanOrEqual(maxCents);
      expect(done.step_count).toBeGreaterThanOrEqual(2);
      const trace = await api.ok("GET", `/v1/runs/${run.id}/trace`);
      expect(trace.cost_cents).toBe(centsOf(done.usage));
    }, 90_000);

    test("daily_spend_cap_cents on an API key: set on create, changed with PATCH, enforced across the key's runs", async () => {
      const bad = await request("POST", "/v1/api-keys", { body: { name: "k", daily_spend_cap_cents: -5 } });
      expect(bad.status).toBe(400);
      expect(JSON.stringify(bad.body.error)).toContain("daily_spend_cap_cents");
      const created = await request("POST", "/v1/api-keys", { body: { name: "capped", daily_spend_cap_cents: 1 } });
      expect(created.status).toBe(201);
      expect(created.body.daily_spend_cap_cents).toBe(1);
      const keyId = created.body.id;
      expect((await request("PATCH", `/v1/api-keys/${keyId}`, { body: {} })).status).toBe(400);
      expect((await request("PATCH", `/v1/api-keys/${keyId}`, { body: { daily_spend_cap_cents: 1.5 } })).status).toBe(400);
      expect((await request("PATCH", `/v1/api-keys/key_doesnotexist000000`, { body: { name: "x" } })).status).toBe(404);
      const capCents = 4000;
      const patched = await request("PATCH", `/v1/api-keys/${keyId}`, { body: { daily_spend_cap_cents: capCents, name: "capped-4000" } });
      expect(patched.status).toBe(200);
      expect(patched.body).toMatchObject({ id: keyId, name: "capped-4000", daily_spend_cap_cents: capCents });
      const listed = await request("GET", "/v1/api-keys");
      expect(listed.body.data.find((k: any) => k.id === keyId).daily_spend_cap_cents).toBe(capCents);

      fake.reset();
      const agent = await loopingAgent();
      const withKey = runApi({ url: child.url, request: client(child.url) }, created.body.key);
      // Runs one after the other on the key: together they stop at the cap.
      const spent: number[] = [];
      for (let i = 0; i < 3; i++) {
        const run = await withKey.run((await withKey.thread()).id, { agent_id: agent.id, input: `spend ${i}` });
        const done = await withKey.wait(run.id, 60);
        expect(done.status).toBe("failed");
        expect(done.last_error.code).toBe("budget_exceeded");
        spent.push(centsOf(done.usage));
      }
      expect(spent.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(capCents);
      expect(spent[0]).toBeGreaterThan(0);
      expect(spent.at(-1)).toBe(0); // the cap was reached: the last run could not even start a call
      // The same agent through the session token (no key): not capped.
      fake.setDefault({ content: "done" });
      const free = await api.run((await api.thread()).id, { agent_id: agent.id, input: "free" });
      expect((await api.wait(free.id)).status).toBe("completed");
      // null removes the cap.
      const uncapped = await request("PATCH", `/v1/api-keys/${keyId}`, { body: { daily_spend_cap_cents: null } });
      expect(uncapped.body.daily_spend_cap_cents).toBeNull();
      const again = await withKey.run((await withKey.thread()).id, { agent_id: agent.id, input: "after the cap was removed" });
      expect((await withKey.wait(again.id)).status).toBe("completed");
      if (backend.sql) {
        const [{ n }] = await backend.sql`select count(*)::int as n from budget_reservations where status = 'reserved'`;
        expect(n).toBe(0);
        const [day] = await backend.sql`select micro_cents::bigint as micro from api_key_daily_spend where api_key_id = ${keyId}`;
        expect(Number(day.micro)).toBe(spent.reduce((a, b) => a + b, 0) * 1_000_000);
      }
    }, 180_000);

    test("concurrent runs of one capped key stay under the cap together (one atomic counter per key and day)", async () => {
      const capCents = 5000;
      const created = await request("POST", "/v1/api-keys", { body: { name: "burst", daily_spend_cap_cents: capCents } });
      expect(created.status).toBe(201);
      fake.reset();
      const agent = await loopingAgent();
      const withKey = runApi({ url: child.url, request: client(child.url) }, created.body.key);
      const runs = await Promise.all(Array.from({ length: 5 }, async (_, i) => withKey.run((await withKey.thread()).id, { agent_id: agent.id, input: `burst ${i}` })));
      const done = await Promise.all(runs.map((r) => withKey.wait(r.id, 60)));
      expect(done.map((d) => d.last_error?.code)).toEqual(done.map(() => "budget_exceeded"));
      const total = done.reduce((n, d) => n + centsOf(d.usage), 0);
      expect(total).toBeGreaterThan(0);
      expect(total).toBeLessThanOrEqual(capCents);
      if (backend.sql) {
        const [day] = await backend.sql`select micro_cents::bigint as micro from api_key_daily_spend where api_key_id = ${created.body.id}`;
        expect(Number(day.micro)).toBe(total * 1_000_000);
      }
    }, 180_000);

    test("kill -9 in the middle of a budgeted run: resumed, usage neither doubled nor lost, the budget still holds", async () => {
      fake.reset();
      const agent = await loopingAgent();
      const toolName = agent.toolName;
      const thread = await api.thread();
      const maxTokens = 6000;
      fake.script({ tool_calls: [{ name: toolName, arguments: {} }] }, { delayMs: 60_000, content: "never delivered" });
      const run = await api.run(thread.id, { agent_id: agent.id, input: "survive a crash on a budget", budget: { max_tokens: maxTokens } });
      await fake.waitForRequests(2, 30_000);
      child.proc.kill("SIGKILL");
      await child.proc.exited;
      await connect();
      const done = await api.wait(run.id, 60);
      expect(done.status).toBe("failed");
      expect(done.last_error.code).toBe("budget_exceeded");
      expect(done.usage.total_tokens).toBeLessThanOrEqual(maxTokens);
      const steps = await api.steps(run.id);
      // The interrupted call was made again under the same step: one step, its usage once.
      const models = steps.filter((s) => s.kind === "model_call");
      expect(models.every((s) => s.status === "completed")).toBe(true);
      expect(fake.requests).toHaveLength(models.length + 1);
      expect(done.usage).toEqual(sumStepUsage(steps));
      // The billing ledger recorded each model call once (it consumes step.completed events asynchronously).
      const deadline = Date.now() + 30_000;
      let ledger: any;
      do {
        ledger = (await api.ok("GET", `/v1/billing/usage?group_by=agent`)).data.find((r: any) => r.key === agent.id);
        if (ledger?.total_tokens === done.usage.total_tokens) break;
        await Bun.sleep(200);
      } while (Date.now() < deadline);
      expect(ledger.total_tokens).toBe(done.usage.total_tokens);
      expect(ledger.model_calls).toBe(models.length);
      if (backend.sql) {
        const rows = await backend.sql`select status, tokens from budget_reservations where run_id = ${run.id}`;
        expect(rows.every((r) => r.status === "settled")).toBe(true);
        expect(rows.reduce((n, r) => n + r.tokens, 0)).toBe(done.usage.total_tokens);
        expect(rows).toHaveLength(models.length);
      }
    }, 180_000);

    test("kill -9 during a summarize step: the step is done again under its id, the summary kept once, metered once", async () => {
      fake.reset();
      fake.setDefault({ content: "answered after the restart" });
      let held = 0;
      fake.setSummarizer((req) => (held++ === 0 ? { delayMs: 60_000, content: "never delivered" } : defaultSummary(req)));
      const agent = await api.agent({ context_window: 1024, context_strategy: "summarize" });
      const thread = await api.thread();
      for (let i = 1; i <= 24; i++) await api.ok("POST", `/v1/threads/${thread.id}/messages`, { role: "user", content: `fact-${i} ${"lorem ipsum dolor sit amet ".repeat(12)}` });
      const run = await api.run(thread.id, { agent_id: agent.id, input: "summarize through a crash" });
      await fake.waitForRequests(1, 30_000);
      child.proc.kill("SIGKILL");
      await child.proc.exited;
      await connect();
      const done = await api.wait(run.id, 60);
      fake.setSummarizer(defaultSummary);
      expect(done.status).toBe("completed");
      const steps = await api.steps(run.id);
      const summarizes = steps.filter((s) => s.kind === "summarize");
      expect(summarizes.every((s) => s.status === "completed")).toBe(true);
      // The interrupted request and its redo, then one request per further step.
      expect(fake.summarizeRequests()).toHaveLength(summarizes.length + 1);
      expect(fake.summarizeRequests()[1].body.messages).toEqual(fake.summarizeRequests()[0].body.messages);
      expect(done.usage).toEqual(sumStepUsage(steps));
      expect(fake.chatRequests().at(-1)!.body.messages[0].content).toContain("fact-1 ");
      const next = await api.run(thread.id, { agent_id: agent.id, input: "still there?" });
      expect((await api.wait(next.id, 60)).status).toBe("completed");
      expect((await api.steps(next.id)).map((s) => s.kind)).toEqual(["model_call"]);
    }, 180_000);

    test("context_strategy summarize: the oldest messages are folded by a metered summarize step, kept for the next run, the prompt never exceeds the window", async () => {
      fake.reset();
      fake.setDefault({ content: "answered" });
      const window = 1024;
      const agent = await api.agent({ context_window: window, context_strategy: "summarize" });
      expect(agent.context_strategy).toBe("summarize");
      expect((await api.agent()).context_strategy).toBe("truncate");
      expect((await api.call("POST", "/v1/agents", { name: "x", model: "fake-model", context_strategy: "fold" })).status).toBe(400);
      const thread = await api.thread();
      const padding = "lorem ipsum dolor sit amet ".repeat(12);
      for (let i = 1; i <= 30; i++) await api.ok("POST", `/v1/threads/${thread.id}/messages`, { role: i % 2 ? "user" : "assistant", content: `fact-${i} ${padding}` });
      const run = await api.run(thread.id, { agent_id: agent.id, input: "what do you remember?" });
      const done = await api.wait(run.id, 60);
      expect(done.status).toBe("completed");
      const steps = await api.steps(run.id);
      const summarizes = steps.filter((s) => s.kind === "summarize");
      expect(summarizes.length).toBeGreaterThanOrEqual(1);
      expect(summarizes.every((s) => s.status === "completed" && s.usage.total_tokens > 0)).toBe(true);
      expect(steps.at(-1).kind).toBe("model_call");
      // Metered: the run's usage includes the summarize calls; step_count counts the agent's model calls only.
      expect(done.usage).toEqual(sumStepUsage(steps));
      expect(done.step_count).toBe(1);
      // Every request the model received fits the window; the chat prompt carries the summary and the newest messages.
      for (const r of fake.requests) expect(countPromptTokens(r.body.messages, r.body.tools)).toBeLessThanOrEqual(window);
      const [chat] = fake.chatRequests();
      expect(chat.body.messages[0].content).toContain("<conversation_summary>");
      expect(chat.body.messages[0].content).toContain("fact-1 ");
      expect(chat.body.messages.at(-1)).toEqual({ role: "user", content: "what do you remember?" });
      expect(chat.body.messages.some((m: any) => m.content?.startsWith("fact-1 "))).toBe(false);
      const summarized = fake.summarizeRequests().length;
      expect(summarized).toBe(summarizes.length);

      // The next run on the thread starts from the kept summary: nothing folded again.
      const next = await api.run(thread.id, { agent_id: agent.id, input: "and now?" });
      expect((await api.wait(next.id, 60)).status).toBe("completed");
      expect((await api.steps(next.id)).map((s) => s.kind)).toEqual(["model_call"]);
      expect(fake.summarizeRequests()).toHaveLength(summarized);
      const second = fake.chatRequests()[1];
      expect(second.body.messages[0].content).toContain("fact-1 ");
      expect(countPromptTokens(second.body.messages)).toBeLessThanOrEqual(window);

      // The thread grows again: the new fold merges the old summary, facts of both survive.
      for (let i = 31; i <= 50; i++) await api.ok("POST", `/v1/threads/${thread.id}/messages`, { role: "user", content: `fact-${i} ${padding}` });
      const third = await api.run(thread.id, { agent_id: agent.id, input: "everything?" });
      expect((await api.wait(third.id, 60)).status).toBe("completed");
      expect((await api.steps(third.id)).some((s) => s.kind === "summarize")).toBe(true);
      const last = fake.chatRequests().at(-1)!;
      expect(last.body.messages[0].content).toContain("fact-1 ");
      expect(last.body.messages[0].content).toContain("fact-31");
      for (const r of fake.requests) expect(countPromptTokens(r.body.messages, r.body.tools)).toBeLessThanOrEqual(window);

      // The same thread with the default strategy: truncation as before, no summarize step.
      const truncating = await api.agent({ context_window: window });
      const plain = await api.run(thread.id, { agent_id: truncating.id, input: "truncate" });
      expect((await api.wait(plain.id, 60)).status).toBe("completed");
      const plainSteps = await api.steps(plain.id);
      expect(plainSteps.map((s) => s.kind)).toEqual(["model_call"]);
      expect(plainSteps[0].input.dropped_messages).toBeGreaterThan(0);
      expect(fake.chatRequests().at(-1)!.body.messages[0].content).not.toContain("<conversation_summary>");

      // The billing ledger meters summarize steps as model calls.
      const deadline = Date.now() + 30_000;
      let row: any;
      do {
        row = (await api.ok("GET", `/v1/billing/usage?group_by=agent`)).data.find((r: any) => r.key === agent.id);
        if (row?.model_calls === fake.summarizeRequests().length + 3) break;
        await Bun.sleep(200);
      } while (Date.now() < deadline);
      expect(row.model_calls).toBe(fake.summarizeRequests().length + 3);
    }, 180_000);
  });
}

defineSuite("budgets and compaction [embedded, compiled binary]", embedded);
await describeReal("budgets and compaction", () => {
  defineSuite("budgets and compaction [postgres+nats, compiled binary]", real);
});
