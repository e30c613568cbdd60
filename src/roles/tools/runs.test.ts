/**
 * Tools and memory inside real runs (agents role + worker + the fake model), on the embedded
 * default and on real PostgreSQL + NATS: a fact stored with archival_memory_insert in one
 * run is found by archival_memory_search in a later run (a new thread, so not from history),
 * a core-memory edit reaches the next prompt, approval pauses and resumes a run, and a
 * failing tool call is an error result the model sees, not a crashed run.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { describeReal } from "../../../test/support/backends";
import { startFakeModel, type FakeModel, type FakeRequest } from "../../../test/support/fake-model";
import { startTestProcess, type TestProcess, type TestUser } from "../../../test/support/harness";

const lastToolMessage = (req: FakeRequest) => [...req.body.messages].reverse().find((m: any) => m.role === "tool");

function runsSuite(start: (modelBaseUrl: string) => Promise<TestProcess>) {
  let fake: FakeModel;
  let t: TestProcess;
  let u: TestUser;
  const received: any[] = [];
  let toolServer: ReturnType<typeof Bun.serve>;

  const req = (method: string, path: string, body?: unknown) => t.request(method, path, { token: u.token, body });

  async function createAgent(body: Record<string, unknown>) {
    const res = await req("POST", "/v1/agents", { name: "Memo", model: "fake-model", instructions: "You remember things.", ...body });
    if (res.status !== 201) throw new Error(`agent: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

  /** A new thread, a run with `input`, and its state once it completes or needs action. */
  async function runOnce(agentId: string, input: string, threadId?: string) {
    const thread = threadId ?? (await req("POST", "/v1/threads", {})).body.id;
    const run = await req("POST", `/v1/threads/${thread}/runs`, { agent_id: agentId, input });
    if (run.status !== 201) throw new Error(`run: ${run.status} ${JSON.stringify(run.body)}`);
    return { thread, run: await waitRun(run.body.id) };
  }

  async function waitRun(runId: string) {
    const res = await req("GET", `/v1/runs/${runId}/wait?timeout_s=20`);
    if (res.status !== 200) throw new Error(`wait: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

  beforeAll(async () => {
    fake = await startFakeModel();
    t = await start(fake.url);
    u = await t.signup();
    await req("PUT", "/v1/billing/plan", { plan: "enterprise" });
    toolServer = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(r) {
        const body = (await r.json()) as { arguments: { amount: number } };
        received.push(body);
        return Response.json({ refunded: body.arguments.amount });
      },
    });
  }, 60_000);
  afterAll(async () => {
    toolServer?.stop(true);
    await t?.stop();
    fake?.stop();
  }, 30_000);

  test("archival_memory_insert in one run; archival_memory_search finds it in a later run", async () => {
    const agent = await createAgent({ tools: ["archival_memory_insert", "archival_memory_search"] });
    fake.reset();
    fake.script(
      { tool_calls: [{ id: "call_ins", name: "archival_memory_insert", arguments: { content: "The user's favourite colour is teal." } }] },
      { content: "Noted." },
    );
    const first = await runOnce(agent.id, "Remember: my favourite colour is teal.");
    expect(first.run.status).toBe("completed");
    expect(fake.requests[0].body.tools.map((x: any) => x.function.name)).toEqual(["archival_memory_insert", "archival_memory_search"]);
    expect(JSON.parse(lastToolMessage(fake.requests[1]).content)).toMatchObject({ stored: true });
    const stored = await req("GET", `/v1/agents/${agent.id}/memories`);
    expect(stored.body.data.map((m: any) => m.content)).toEqual(["The user's favourite colour is teal."]);

    fake.reset();
    fake.script(
      { tool_calls: [{ id: "call_search", name: "archival_memory_search", arguments: { query: "favourite colour" } }] },
      (r) => {
        const found = JSON.parse(lastToolMessage(r).content) as { results: { content: string }[] };
        return { content: `From memory: ${found.results[0]?.content ?? "nothing"}` };
      },
    );
    const second = await runOnce(agent.id, "What is my favourite colour?");
    expect(second.run.status).toBe("completed");
    expect(second.thread).not.toBe(first.thread);
    expect(JSON.stringify(fake.requests[0].body.messages)).not.toContain("teal");
    const messages = await req("GET", `/v1/threads/${second.thread}/messages?order=desc&limit=1`);
    expect(messages.body.data[0].content).toBe("From memory: The user's favourite colour is teal.");
  }, 60_000);

  test("core_memory_append by the model reaches the next prompt; over the limit it is an error result", async () => {
    const agent = await createAgent({ tools: ["core_memory_append"], memory_blocks: [{ label: "human", value: "Name: Ada", limit: 40 }] });
    fake.reset();
    fake.script(
      { tool_calls: [{ id: "c1", name: "core_memory_append", arguments: { label: "human", content: "Likes tea" } }] },
      { tool_calls: [{ id: "c2", name: "core_memory_append", arguments: { label: "human", content: "x".repeat(50) } }] },
      { content: "ok" },
    );
    const { run } = await runOnce(agent.id, "I like tea.");
    expect(run.status).toBe("completed");
    expect(JSON.stringify(fake.requests[1].body.messages[0])).toContain("Likes tea");
    const error = lastToolMessage(fake.requests[2]).content as string;
    expect(error).toContain("memory_block_too_large");
    const blocks = await req("GET", `/v1/agents/${agent.id}/memory/blocks`);
    expect(blocks.body.data[0].value).toBe("Name: Ada\nLikes tea");
  }, 60_000);

  test("a requires_approval tool pauses the run; approve executes it, reject does not", async () => {
    const tool = await req("POST", "/v1/tools", {
      name: "refund",
      kind: "http",
      requires_approval: true,
      config: { url: `http://127.0.0.1:${toolServer.port}/refund` },
      parameters: { type: "object", properties: { amount: { type: "number" } }, required: ["amount"] },
    });
    expect(tool.status).toBe(201);
    const agent = await createAgent({ tools: [tool.body.id] });

    fake.reset();
    fake.script({ tool_calls: [{ id: "call_ok", name: "refund", arguments: { amount: 12 } }] }, (r) => ({ content: `done: ${lastToolMessage(r).content}` }));
    const paused = await runOnce(agent.id, "Refund 12 please");
    expect(paused.run.status).toBe("requires_action");
    expect(paused.run.required_action.tool_calls[0]).toMatchObject({ id: "call_ok", action: "approval", tool_id: tool.body.id });
    expect(received.length).toBe(0);
    const approved = await req("POST", `/v1/runs/${paused.run.id}/tool_outputs`, { tool_outputs: [{ tool_call_id: "call_ok", approve: true }] });
    expect(approved.status).toBe(200);
    const done = await waitRun(paused.run.id);
    expect(done.status).toBe("completed");
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ tool: "refund", arguments: { amount: 12 }, run_id: paused.run.id, tool_call_id: "call_ok" });
    expect(fake.requests[1].body.messages.at(-1).content).toContain("12");

    fake.reset();
    fake.script({ tool_calls: [{ id: "call_no", name: "refund", arguments: { amount: 999 } }] }, (r) => ({ content: `said: ${lastToolMessage(r).content}` }));
    const paused2 = await runOnce(agent.id, "Refund 999 please");
    expect(paused2.run.status).toBe("requires_action");
    const rejected = await req("POST", `/v1/runs/${paused2.run.id}/tool_outputs`, { tool_outputs: [{ tool_call_id: "call_no", approve: false, reason: "Too much" }] });
    expect(rejected.status).toBe(200);
    expect((await waitRun(paused2.run.id)).status).toBe("completed");
    expect(received).toHaveLength(1);
    expect(lastToolMessage(fake.requests[1]).content).toContain("Too much");
  }, 60_000);

  test("invalid arguments from the model are an error result; the run goes on", async () => {
    const agent = await createAgent({ tools: ["archival_memory_search"] });
    fake.reset();
    fake.script({ tool_calls: [{ id: "bad", name: "archival_memory_search", arguments: "{not json" }] }, { content: "sorry" });
    const { run } = await runOnce(agent.id, "search");
    expect(run.status).toBe("completed");
    expect(lastToolMessage(fake.requests[1]).content).toContain("invalid_arguments");
  }, 60_000);
}

describe("tools and memory in runs on the embedded default", () => runsSuite((url) => startTestProcess({ config: { modelBaseUrl: url } })));
await describeReal("tools and memory in runs", () => runsSuite((url) => startTestProcess({ real: true, config: { modelBaseUrl: url } })));
