/** The agents API (agents, threads, messages) on the embedded default: CRUD, validation, idempotency, pagination. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startFakeModel, type FakeModel } from "../../../test/support/fake-model";
import { startTestProcess, type TestProcess } from "../../../test/support/harness";
import { runApi, signupUnlimited } from "../../../test/support/testkit";

let fake: FakeModel;
let t: TestProcess;
let api: ReturnType<typeof runApi>;
let orgId: string;

beforeAll(async () => {
  fake = await startFakeModel();
  t = await startTestProcess({ config: { modelBaseUrl: fake.url } });
  const user = await signupUnlimited(t);
  orgId = user.orgId;
  api = runApi(t, user.token);
}, 60_000);
afterAll(async () => {
  await t?.stop();
  fake?.stop();
});

describe("agents", () => {
  test("create, get, list, update, delete; memory blocks come from the memory role", async () => {
    const created = await api.call("POST", "/v1/agents", {
      name: "Helper", model: "gpt-test", instructions: "Help.", memory_blocks: [{ label: "persona", value: "I help.", limit: 100 }], context_window: 4096, max_steps: 5, metadata: { team: "a" },
    });
    expect(created.status).toBe(201);
    const a = created.body;
    expect(a).toMatchObject({ object: "agent", name: "Helper", model: "gpt-test", instructions: "Help.", tools: [], context_window: 4096, max_steps: 5, metadata: { team: "a" } });
    expect(a.id).toMatch(/^agt_/);
    expect(a.memory_blocks).toEqual([{ label: "persona", value: "I help.", limit: 100 }]);
    const blocks = await api.ok("GET", `/v1/agents/${a.id}/memory/blocks`);
    expect(blocks.data.map((b: any) => b.label)).toEqual(["persona"]);

    const defaults = await api.agent();
    expect([defaults.context_window, defaults.max_steps]).toEqual([8192, 10]);

    expect((await api.ok("GET", `/v1/agents/${a.id}`)).id).toBe(a.id);
    const page1 = await api.ok("GET", "/v1/agents?limit=1");
    expect(page1.data).toHaveLength(1);
    expect(page1.has_more).toBe(true);
    const page2 = await api.ok("GET", `/v1/agents?limit=1&after=${page1.next_cursor}`);
    expect(page2.data[0].id).not.toBe(page1.data[0].id);

    const patched = await api.ok("PATCH", `/v1/agents/${a.id}`, { name: "Renamed", max_steps: 3 });
    expect([patched.name, patched.max_steps, patched.model]).toEqual(["Renamed", 3, "gpt-test"]);

    expect((await api.call("DELETE", `/v1/agents/${a.id}`)).body).toEqual({ id: a.id, object: "agent", deleted: true });
    expect((await api.call("GET", `/v1/agents/${a.id}`)).status).toBe(404);
    expect((await api.call("DELETE", `/v1/agents/${a.id}`)).status).toBe(404);
    expect((await api.call("GET", `/v1/agents/${a.id}/memory/blocks`)).status).toBe(404);
  });

  test("validation: bad bodies → 400, oversize memory → 422, unknown tools → 422, bad ids → 404", async () => {
    expect((await api.call("POST", "/v1/agents", { model: "m" })).status).toBe(400);
    expect((await api.call("POST", "/v1/agents", { name: "x", model: "m", max_steps: 0 })).status).toBe(400);
    expect((await api.call("POST", "/v1/agents", { name: "x", model: "m", context_window: "big" })).status).toBe(400);
    const big = await api.call("POST", "/v1/agents", { name: "x", model: "m", memory_blocks: [{ label: "human", value: "0123456789", limit: 5 }] });
    expect([big.status, big.body.error.code]).toEqual([422, "memory_block_too_large"]);
    const dup = await api.call("POST", "/v1/agents", { name: "x", model: "m", memory_blocks: [{ label: "h", value: "" }, { label: "h", value: "" }] });
    expect([dup.status, dup.body.error.code]).toEqual([422, "duplicate_memory_block"]);
    const tools = await api.call("POST", "/v1/agents", { name: "x", model: "m", tools: ["tool_01ARZ3NDEKTSV4RRFFQ69G5FAV", "archival_memory_search"] });
    expect([tools.status, tools.body.error.code, tools.body.error.details.missing]).toEqual([422, "unknown_tools", ["tool_01ARZ3NDEKTSV4RRFFQ69G5FAV"]]);
    const builtin = await api.agent({ tools: ["archival_memory_search", "core_memory_append"] });
    expect(builtin.tools).toEqual(["archival_memory_search", "core_memory_append"]);
    for (const path of ["/v1/agents/nope", "/v1/agents/thr_01ARZ3NDEKTSV4RRFFQ69G5FAV", "/v1/threads/agt_01ARZ3NDEKTSV4RRFFQ69G5FAV", "/v1/runs/x", "/v1/runs/run_01ARZ3NDEKTSV4RRFFQ69G5FAV/steps"]) {
      expect([path, (await api.call("GET", path)).status]).toEqual([path, 404]);
    }
    expect((await api.call("POST", "/v1/threads/thr_01ARZ3NDEKTSV4RRFFQ69G5FAV/runs", { agent_id: "agt_01ARZ3NDEKTSV4RRFFQ69G5FAV" })).status).toBe(404);
    const noAgent = await api.call("POST", `/v1/threads/${(await api.thread()).id}/runs`, { agent_id: "agt_01ARZ3NDEKTSV4RRFFQ69G5FAV" });
    expect(noAgent.status).toBe(404);
    expect((await api.call("GET", "/v1/runs/run_01ARZ3NDEKTSV4RRFFQ69G5FAV/wait?timeout_s=61")).status).toBe(400);
    expect((await api.call("GET", "/v1/runs/run_01ARZ3NDEKTSV4RRFFQ69G5FAV/events?after=-1")).status).toBe(400);
  });

  test("idempotent agent creation", async () => {
    const headers = { "idempotency-key": crypto.randomUUID() };
    const body = { name: "Once", model: "m" };
    const a = await api.call("POST", "/v1/agents", body, headers);
    const b = await api.call("POST", "/v1/agents", body, headers);
    expect([a.status, b.status, b.body.id]).toEqual([201, 201, a.body.id]);
    const c = await api.call("POST", "/v1/agents", { ...body, name: "Twice" }, headers);
    expect([c.status, c.body.error.code]).toEqual([409, "idempotency_key_reused"]);
  });

  test("tool references: agentsUsingTool and detachTool (the tools role's contract)", async () => {
    const tool = await api.tool({ name: "shared_tool", kind: "client" });
    const a = await api.agent({ tools: [tool.id, "core_memory_append"] });
    const agents = t.process.platform.clients.agents;
    expect(await agents.agentsUsingTool(orgId, tool.id)).toEqual([{ id: a.id, name: a.name }]);
    expect(await agents.agentsUsingTool("org_01ARZ3NDEKTSV4RRFFQ69G5FAV", tool.id)).toEqual([]);
    expect(await agents.detachTool(orgId, tool.id)).toBe(1);
    expect((await api.ok("GET", `/v1/agents/${a.id}`)).tools).toEqual(["core_memory_append"]);
  });
});

describe("threads and messages", () => {
  test("threads CRUD, messages append and cursor pagination, delete cascades", async () => {
    const created = await api.call("POST", "/v1/threads", { metadata: { topic: "x" } });
    expect(created.status).toBe(201);
    const thread = created.body;
    expect(thread).toMatchObject({ object: "thread", metadata: { topic: "x" } });
    expect((await api.call("POST", "/v1/threads")).status).toBe(201); // body is optional
    for (let i = 0; i < 5; i++) {
      const m = await api.call("POST", `/v1/threads/${thread.id}/messages`, { role: "user", content: `m${i}` });
      expect(m.status).toBe(201);
    }
    expect((await api.call("POST", `/v1/threads/${thread.id}/messages`, { role: "system", content: "x" })).status).toBe(400);
    expect((await api.call("POST", `/v1/threads/${thread.id}/messages`, { role: "user", content: "" })).status).toBe(400);
    const p1 = await api.ok("GET", `/v1/threads/${thread.id}/messages?limit=2`);
    const p2 = await api.ok("GET", `/v1/threads/${thread.id}/messages?limit=2&after=${p1.next_cursor}`);
    const p3 = await api.ok("GET", `/v1/threads/${thread.id}/messages?limit=2&after=${p2.next_cursor}`);
    expect([...p1.data, ...p2.data, ...p3.data].map((m: any) => m.content)).toEqual(["m0", "m1", "m2", "m3", "m4"]);
    expect(p3.has_more).toBe(false);
    const desc = await api.ok("GET", `/v1/threads/${thread.id}/messages?order=desc&limit=1`);
    expect(desc.data[0].content).toBe("m4");
    expect((await api.ok("GET", `/v1/threads/${thread.id}`)).id).toBe(thread.id);
    expect((await api.ok("GET", "/v1/threads")).data.some((x: any) => x.id === thread.id)).toBe(true);
    expect((await api.call("DELETE", `/v1/threads/${thread.id}`)).body).toEqual({ id: thread.id, object: "thread", deleted: true });
    expect((await api.call("GET", `/v1/threads/${thread.id}`)).status).toBe(404);
    expect((await api.call("GET", `/v1/threads/${thread.id}/messages`)).status).toBe(404);
  });

  test("one active run per thread: a second run on a busy thread → 409 thread_busy", async () => {
    const agent = await api.agent();
    const thread = await api.thread();
    fake.script({ content: "slow", delayMs: 1500 });
    const first = await api.run(thread.id, { agent_id: agent.id, input: "one" });
    const second = await api.call("POST", `/v1/threads/${thread.id}/runs`, { agent_id: agent.id, input: "two" });
    expect([second.status, second.body.error.code, second.body.error.details.run_id]).toEqual([409, "thread_busy", first.id]);
    expect((await api.wait(first.id)).status).toBe("completed");
    fake.script({ content: "fast" });
    const third = await api.run(thread.id, { agent_id: agent.id, input: "three" });
    expect((await api.wait(third.id)).status).toBe("completed");
    const sent = fake.requests.at(-1)!.body.messages.slice(1);
    expect(sent.map((m: any) => m.content)).toEqual(["one", "slow", "three"]);
  });

  test("wait returns the run as it is when the timeout ends", async () => {
    const agent = await api.agent();
    const thread = await api.thread();
    fake.script({ content: "late", delayMs: 3000 });
    const run = await api.run(thread.id, { agent_id: agent.id, input: "x" });
    const t0 = Date.now();
    const waited = await api.ok("GET", `/v1/runs/${run.id}/wait?timeout_s=0.5`);
    expect(Date.now() - t0).toBeLessThan(2500);
    expect(["queued", "in_progress"]).toContain(waited.status);
    await api.ok("POST", `/v1/runs/${run.id}/cancel`);
  });
});
