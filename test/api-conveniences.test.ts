/**
 * Issue 11, on the compiled binary (embedded default and real PostgreSQL/Redis/NATS):
 * - a run's `input` as a string or a list of messages, persisted in order;
 * - POST /v1/threads/runs (a thread and a run in one call), PATCH /v1/threads/:id,
 *   GET|DELETE /v1/threads/:id/messages/:message_id, GET /v1/runs with filters, `before` cursors;
 * - `usage.estimated` when the model reported no usage, `cost_cents` on the run;
 * - errors that help: parameter rules, allowed values, a missing field once, and a model
 *   server that is down named by its URL (never its key) with what to check.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { apiClient } from "./support/api";
import { createTestDatabase, describeReal, dropNatsNamespace, dropRedisNamespace, REAL_URLS, uniqueName } from "./support/backends";
import { ensureBinary, freePort, startChild, type ChildProcess } from "./support/binary";
import { startFakeModel, type FakeModel } from "./support/fake-model";
import { TEST_JWT_SECRET } from "./support/harness";
import { readSse, runApi, signupUnlimited } from "./support/testkit";

interface Deployment {
  url: string;
  stop(): Promise<void>;
}

const FAST_MODEL_ENV = { AGENTOS_MODEL_MAX_RETRIES: "1", AGENTOS_MODEL_BACKOFF_MS: "10" };

async function startBinary(env: Record<string, string>): Promise<Deployment> {
  const dataDir = mkdtempSync(join(tmpdir(), "agentos-api11-"));
  const child = await startChild(["serve", `--data-dir=${dataDir}`], { env: { ...FAST_MODEL_ENV, ...env } });
  return {
    url: child.url,
    async stop() {
      await child.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function suite(start: (modelUrl: string) => Promise<Deployment>) {
  let fake: FakeModel;
  let d: Deployment;
  let api: ReturnType<typeof runApi>;
  let token: string;

  beforeAll(async () => {
    fake = await startFakeModel();
    d = await start(fake.url);
    const client = apiClient(d.url);
    const t = { url: d.url, request: (m: string, p: string, o?: { body?: unknown; token?: string; headers?: Record<string, string> }) => client.call(m, p, o), signup: () => client.signup().then((u) => ({ ...u, refresh: "" })) };
    token = (await signupUnlimited(t)).token;
    api = runApi(t, token);
  }, 120_000);
  afterAll(async () => {
    await d?.stop();
    fake?.stop();
  }, 30_000);

  test("input as a list of messages: appended in order, sent to the model in order", async () => {
    fake.reset();
    fake.script({ content: "OK" });
    const agent = await api.agent();
    const thread = await api.thread();
    const input = [
      { role: "system", content: "Answer in capitals." },
      { role: "user", content: "hello" },
      { role: "assistant", content: "HELLO" },
      { role: "user", content: "again" },
    ];
    const run = await api.run(thread.id, { agent_id: agent.id, input });
    expect((await api.wait(run.id)).status).toBe("completed");
    const msgs = await api.messages(thread.id);
    expect(msgs.map((m) => [m.role, m.content, m.run_id])).toEqual([...input.map((m) => [m.role, m.content, run.id]), ["assistant", "OK", run.id]]);
    expect(fake.requests[0].body.messages.slice(1)).toEqual(input);

    const bad = await api.call("POST", `/v1/threads/${thread.id}/runs`, { agent_id: agent.id, input: [{ role: "tool", content: "x" }] });
    expect([bad.status, bad.body.error.code]).toEqual([400, "validation_failed"]);
    expect(bad.body.error.details.fields[0]).toMatchObject({ field: "input.0.role", allowed: ["user", "assistant", "system"] });
    const empty = await api.call("POST", `/v1/threads/${thread.id}/runs`, { agent_id: agent.id, input: [] });
    expect(empty.status).toBe(400);
  }, 60_000);

  test("POST /v1/threads/runs: a thread with metadata and first messages, and a run on it", async () => {
    fake.reset();
    fake.script({ content: "Done." });
    const agent = await api.agent();
    const run = await api.ok("POST", "/v1/threads/runs", {
      agent_id: agent.id,
      thread: { metadata: { customer: "c1" }, messages: [{ role: "user", content: "context", metadata: { source: "crm" } }] },
      input: "question",
    });
    expect(run).toMatchObject({ object: "run", status: "queued", agent_id: agent.id, cost_cents: 0 });
    expect((await api.wait(run.id)).status).toBe("completed");
    const thread = await api.ok("GET", `/v1/threads/${run.thread_id}`);
    expect(thread.metadata).toEqual({ customer: "c1" });
    const msgs = await api.messages(run.thread_id);
    expect(msgs.map((m) => [m.role, m.content, m.run_id])).toEqual([["user", "context", null], ["user", "question", run.id], ["assistant", "Done.", run.id]]);
    expect(msgs[0].metadata).toEqual({ source: "crm" });

    // Streamed: the events of the new run, to its terminal event.
    fake.script({ content: "streamed" });
    const stream = await readSse(`${d.url}/v1/threads/runs`, token, { method: "POST", body: { agent_id: agent.id, input: "s", stream: true } });
    expect(stream.contentType).toStartWith("text/event-stream");
    expect(stream.events[0].event).toBe("run.created");
    expect(stream.events.at(-1)!.event).toBe("run.completed");

    // Nested metadata is bounded like top-level metadata.
    const longKey = await api.call("POST", "/v1/threads/runs", { agent_id: agent.id, thread: { messages: [{ role: "user", content: "x", metadata: { ["k".repeat(65)]: 1 } }] } });
    expect([longKey.status, longKey.body.error.details.fields[0].field]).toEqual([400, "thread.messages.0.metadata"]);

    // A refused run leaves no thread behind.
    const before = (await api.ok("GET", "/v1/threads?limit=100")).data.length;
    const missing = await api.call("POST", "/v1/threads/runs", { agent_id: "agt_01M8T2750GCH4F8693MWNDPX49", input: "x" });
    expect([missing.status, missing.body.error.code]).toEqual([404, "not_found"]);
    expect((await api.ok("GET", "/v1/threads?limit=100")).data.length).toBe(before);
  }, 60_000);

  test("PATCH a thread's metadata; GET and DELETE one message", async () => {
    const thread = await api.ok("POST", "/v1/threads", { metadata: { a: 1 } });
    const patched = await api.ok("PATCH", `/v1/threads/${thread.id}`, { metadata: { b: 2 } });
    expect(patched.metadata).toEqual({ b: 2 });
    expect((await api.ok("PATCH", `/v1/threads/${thread.id}`, {})).metadata).toEqual({ b: 2 });
    const unknown = await api.call("PATCH", `/v1/threads/${thread.id}`, { title: "x" });
    expect([unknown.status, unknown.body.error.code]).toEqual([400, "unknown_parameter"]);

    const m1 = await api.ok("POST", `/v1/threads/${thread.id}/messages`, { role: "user", content: "one" });
    const m2 = await api.ok("POST", `/v1/threads/${thread.id}/messages`, { role: "user", content: "two" });
    expect((await api.ok("GET", `/v1/threads/${thread.id}/messages/${m1.id}`)).content).toBe("one");
    expect(await api.ok("DELETE", `/v1/threads/${thread.id}/messages/${m1.id}`)).toEqual({ id: m1.id, object: "message", deleted: true });
    expect((await api.call("GET", `/v1/threads/${thread.id}/messages/${m1.id}`)).status).toBe(404);
    expect((await api.call("DELETE", `/v1/threads/${thread.id}/messages/${m1.id}`)).status).toBe(404);
    expect((await api.messages(thread.id)).map((m) => m.id)).toEqual([m2.id]);
    // A message is found only under its own thread.
    const other = await api.thread();
    expect((await api.call("GET", `/v1/threads/${other.id}/messages/${m2.id}`)).status).toBe(404);
    expect((await api.call("GET", `/v1/threads/${thread.id}/messages/not-an-id`)).status).toBe(404);
  }, 30_000);

  test("usage.estimated when the model reports none; cost_cents from the model's prices", async () => {
    fake.reset();
    const agent = await api.agent();
    fake.script({ content: "counted", usage: { prompt_tokens: 1000, completion_tokens: 200 } });
    const counted = await api.wait((await api.run((await api.thread()).id, { agent_id: agent.id, input: "x" })).id);
    expect(counted.usage).toEqual({ prompt_tokens: 1000, completion_tokens: 200, total_tokens: 1200, estimated: false });
    // The default price: 100 cents per 1M input tokens, 300 per 1M output tokens.
    expect(counted.cost_cents).toBeCloseTo((1000 * 100 + 200 * 300) / 1e6, 9);
    const trace = await api.ok("GET", `/v1/runs/${counted.id}/trace`);
    expect(counted.cost_cents).toBeCloseTo(trace.cost_cents, 9);

    fake.script({ content: "some words here", omitUsage: true });
    const guessed = await api.wait((await api.run((await api.thread()).id, { agent_id: agent.id, input: "x" })).id);
    expect(guessed.usage.estimated).toBe(true);
    expect(guessed.usage.total_tokens).toBeGreaterThan(0);
    expect(guessed.cost_cents).toBeGreaterThan(0);
    const [step] = await api.steps(guessed.id);
    expect(step.usage.estimated).toBe(true);
  }, 60_000);

  test("GET /v1/runs: the organization's runs, filtered; before and after cursors", async () => {
    fake.reset();
    const a1 = await api.agent({ name: "one" });
    const a2 = await api.agent({ name: "two" });
    const t1 = await api.thread();
    const t2 = await api.thread();
    const r1 = await api.wait((await api.run(t1.id, { agent_id: a1.id, input: "1" })).id);
    const startedAt = r1.created_at;
    fake.script({ status: 400, body: { error: { message: "nope" } } });
    const r2 = await api.wait((await api.run(t2.id, { agent_id: a2.id, input: "2" })).id);
    const r3 = await api.wait((await api.run(t1.id, { agent_id: a2.id, input: "3" })).id);
    expect([r1.status, r2.status, r3.status]).toEqual(["completed", "failed", "completed"]);
    const ids = async (q: string) => (await api.ok("GET", `/v1/runs?limit=100&${q}`)).data.map((r: any) => r.id);
    expect(await ids(`created_after=${startedAt}`)).toEqual([r1.id, r2.id, r3.id]);
    expect(await ids(`created_after=${startedAt}&status=failed`)).toEqual([r2.id]);
    expect(await ids(`agent_id=${a2.id}`)).toEqual([r2.id, r3.id]);
    expect(await ids(`thread_id=${t1.id}&agent_id=${a2.id}`)).toEqual([r3.id]);
    expect(await ids(`created_before=${startedAt}&agent_id=${a1.id}`)).toEqual([]);
    expect(await ids(`created_after=${startedAt}&order=desc`)).toEqual([r3.id, r2.id, r1.id]);
    // before: the page just before the cursor, in the list's order; next_cursor continues backwards.
    const page = await api.ok("GET", `/v1/runs?created_after=${startedAt}&before=${r3.id}&limit=1`);
    expect([page.data.map((r: any) => r.id), page.has_more, page.next_cursor]).toEqual([[r2.id], true, r2.id]);
    const earlier = await api.ok("GET", `/v1/runs?created_after=${startedAt}&before=${page.next_cursor}&limit=1`);
    expect([earlier.data.map((r: any) => r.id), earlier.has_more]).toEqual([[r1.id], false]);
    expect(await ids(`created_after=${startedAt}&after=${r1.id}&before=${r3.id}`)).toEqual([r2.id]);
    // Newest first, "before" still means earlier in the list: [r3, r2] come before r1.
    expect(await ids(`created_after=${startedAt}&order=desc&before=${r1.id}`)).toEqual([r3.id, r2.id]);
    expect((await api.ok("GET", `/v1/threads/${t1.id}/runs?before=${r3.id}`)).data.map((r: any) => r.id)).toEqual([r1.id]);

    const bad = await api.call("GET", "/v1/runs?status=done");
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.fields[0]).toMatchObject({ field: "status", allowed: ["pending", "queued", "in_progress", "requires_action", "cancelling", "completed", "failed", "cancelled", "expired"] });
    const when = await api.call("GET", "/v1/runs?created_after=yesterday");
    expect([when.status, when.body.error.details.fields[0].field]).toEqual([400, "created_after"]);
    expect(when.body.error.message).toContain("date-time");
  }, 60_000);

  test("errors name the parameter and its rule, list allowed values, and a missing field once", async () => {
    const limit = await api.call("GET", "/v1/agents?limit=abc");
    expect(limit.status).toBe(400);
    expect(limit.body.error.message).toContain("'limit' must be an integer from 1 to 100");
    const order = await api.call("GET", "/v1/threads?order=up");
    expect(order.body.error.details.fields).toEqual([{ field: "order", message: 'must be one of: "asc", "desc" (got "up")', allowed: ["asc", "desc"] }]);
    const missing = await api.call("POST", "/v1/agents", { model: "m" });
    expect(missing.body.error.details.fields).toEqual([{ field: "name", message: "is required (a string of 1 to 200 characters)" }]);
  }, 30_000);
}

beforeAll(() => {
  ensureBinary();
}, 180_000);

describe("issue 11 conveniences on the compiled binary [embedded]", () => {
  suite((modelUrl) => startBinary({ MODEL_BASE_URL: modelUrl }));

  test("a model server that is down fails the run naming its URL and what to check, never the key", async () => {
    const closed = await freePort();
    const d = await startBinary({ MODEL_BASE_URL: `http://127.0.0.1:${closed}/v1`, MODEL_API_KEY: "sk-secret-never-shown" });
    try {
      const client = apiClient(d.url);
      const user = await client.signup();
      const api = runApi({ url: d.url, request: (m, p, o) => client.call(m, p, o) }, user.token);
      const agent = await api.agent();
      const run = await api.wait((await api.run((await api.thread()).id, { agent_id: agent.id, input: "x" })).id);
      expect(run.status).toBe("failed");
      expect(run.last_error.code).toBe("model_unavailable");
      expect(run.last_error.message).toContain(`POST http://127.0.0.1:${closed}/v1/chat/completions`);
      expect(run.last_error.message).toContain("MODEL_BASE_URL / --model-base-url");
      const [step] = await api.steps(run.id);
      expect(JSON.stringify(step.error)).toContain("MODEL_BASE_URL");
      for (const body of [run, step]) expect(JSON.stringify(body)).not.toContain("sk-secret-never-shown");
    } finally {
      await d.stop();
    }
  }, 60_000);
});

await describeReal("issue 11 conveniences on the compiled binary", () => {
  suite(async (modelUrl) => {
    const database = await createTestDatabase();
    const namespace = uniqueName("t");
    const inner = await startBinary({
      MODEL_BASE_URL: modelUrl, DATABASE_URL: database.url, REDIS_URL: REAL_URLS.redis, NATS_URL: REAL_URLS.nats, AGENTOS_NAMESPACE: namespace, JWT_SECRET: TEST_JWT_SECRET,
    });
    return {
      url: inner.url,
      async stop() {
        await inner.stop();
        await database.drop();
        await dropNatsNamespace(namespace).catch(() => {});
        await dropRedisNamespace(namespace).catch(() => {});
      },
    };
  });
});
