/**
 * The run lifecycle suite, defined once and run twice: on the embedded default
 * (runs.test.ts) and on real PostgreSQL + NATS (runs-real.test.ts). The fake model is
 * scripted per test; what it receives is asserted, not only what the API answers.
 */
import { eq, sql } from "drizzle-orm";
import { runs } from "../../schema";
import type { Config } from "../../src/platform/config";
import { configEnv } from "./harness";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startFakeModel, type FakeModel } from "./fake-model";
import type { TestProcess, TestUser } from "./harness";
import { countPromptTokens } from "../../src/platform/model/tokens";
import { defaultReserve } from "../../src/platform/model/prompt";
import { expireIdleRuns, RunStore } from "../../src/runs";
import { assertContiguous, readSse, runApi, signupUnlimited, startToolServer, type ToolServer } from "./testkit";

/** Short timings so failure paths take milliseconds: the config of in-process runs, the environment of child processes. */
export const TEST_RUN_CONFIG: Partial<Config> = { runLeaseMs: 2500, reconcileIntervalMs: 200, requeueAfterMs: 1000, modelMaxRetries: 2, modelBackoffMs: 10, deltaFlushMs: 20 };
export const TEST_RUN_ENV = configEnv(TEST_RUN_CONFIG);

export function defineRunSuite(name: string, start: (config: Partial<Config>) => Promise<TestProcess>) {
  describe(name, () => {
    let fake: FakeModel;
    let t: TestProcess;
    let alice: TestUser;
    let api: ReturnType<typeof runApi>;
    let tools: ToolServer;

    beforeAll(async () => {
      fake = await startFakeModel();
      tools = startToolServer();
      t = await start({ ...TEST_RUN_CONFIG, modelBaseUrl: fake.url });
      alice = await signupUnlimited(t);
      api = runApi(t, alice.token);
    }, 60_000);
    afterAll(async () => {
      await t?.stop();
      fake?.stop();
      tools?.stop();
    }, 30_000);

    const httpTool = (name: string, extra: Record<string, unknown> = {}) =>
      api.tool({ name, description: `the ${name} tool`, kind: "http", config: { url: tools.url }, parameters: { type: "object", properties: { q: { type: "string" } } }, ...extra });

    test("a run goes queued → in_progress → completed: steps, contiguous events, the assistant message, usage", async () => {
      fake.reset();
      const agent = await api.agent({ memory_blocks: [{ label: "human", value: "Name: Alice" }] });
      const thread = await api.thread();
      fake.script({ content: "Hello Alice", delayMs: 300 });
      const run = await api.run(thread.id, { agent_id: agent.id, input: "Hi!" });
      expect(run.status).toBe("queued");
      expect((await api.until(run.id, "in_progress")).status).toBe("in_progress");
      const done = await api.wait(run.id);
      expect(done.status).toBe("completed");
      expect(done.usage.total_tokens).toBeGreaterThan(0);
      expect(done.step_count).toBe(1);
      const sent = fake.requests[0].body.messages;
      expect(sent[0].role).toBe("system");
      expect(sent[0].content).toContain("You are a test agent.");
      expect(sent[0].content).toContain("Name: Alice");
      expect(sent.at(-1)).toEqual({ role: "user", content: "Hi!" });
      const msgs = await api.messages(thread.id);
      expect(msgs.map((m) => [m.role, m.content, m.run_id])).toEqual([["user", "Hi!", run.id], ["assistant", "Hello Alice", run.id]]);
      const steps = await api.steps(run.id);
      expect(steps.map((s) => [s.kind, s.status])).toEqual([["model_call", "completed"]]);
      const { events } = await api.events(run.id);
      assertContiguous(events);
      expect(events.map((e) => e.event)).toEqual(["run.created", "run.in_progress", "step.created", "step.completed", "run.completed"]);
      const runs = await api.ok("GET", `/v1/threads/${thread.id}/runs`);
      expect(runs.data.map((r: any) => r.id)).toEqual([run.id]);
    });

    test("server tool calls are executed once, fed back to the model, and persisted as steps", async () => {
      fake.reset();
      tools.calls.length = 0;
      const lookup = await httpTool("lookup");
      const agent = await api.agent({ tools: [lookup.id] });
      const thread = await api.thread();
      fake.script({ tool_calls: [{ name: "lookup", arguments: { q: "weather" }, id: "call_w" }] }, { content: "It is sunny." });
      const run = await api.run(thread.id, { agent_id: agent.id, input: "Weather?" });
      const done = await api.wait(run.id);
      expect(done.status).toBe("completed");
      expect(tools.calls.map((c) => c.tool_call_id)).toEqual(["call_w"]);
      expect(fake.requests[0].body.tools[0].function.name).toBe("lookup");
      const second = fake.requests[1].body.messages;
      expect(second.at(-2).tool_calls[0].id).toBe("call_w");
      expect(second.at(-1).role).toBe("tool");
      expect(JSON.parse(second.at(-1).content).echo.arguments).toEqual({ q: "weather" });
      const steps = await api.steps(run.id);
      expect(steps.map((s) => `${s.kind}:${s.status}`)).toEqual(["model_call:completed", "tool_call:completed", "model_call:completed"]);
      const { events } = await api.events(run.id);
      assertContiguous(events);
      expect(events.filter((e) => e.event.startsWith("tool_call.")).map((e) => e.event)).toEqual(["tool_call.created", "tool_call.completed"]);
    });

    test("what the database cannot hold (NUL, lone surrogates) in a model's answer, its deltas or a tool's result is stored as U+FFFD: one call each, the run completes", async () => {
      // Such a write used to fail, and the run was retried: the model was called again and again.
      fake.reset();
      tools.calls.length = 0;
      const echo = await httpTool("echo_raw");
      const agent = await api.agent({ tools: [echo.id] });
      const bad = "a\u0000b\ud800c";
      fake.script({ tool_calls: [{ name: "echo_raw", arguments: { q: bad }, id: "call_raw" }] }, { content: `answer ${bad}`, chunkSize: 2 });
      const thread = await api.thread();
      const res = await readSse(`${t.url}/v1/threads/${thread.id}/runs`, alice.token, { method: "POST", body: { agent_id: agent.id, input: "echo", stream: true } });
      expect(res.events.at(-1)!.event).toBe("run.completed");
      expect([fake.requests.length, tools.calls.length]).toEqual([2, 1]);
      const runId = res.events[0].data.id as string;
      const toolStep = (await api.steps(runId)).find((s) => s.kind === "tool_call");
      expect(toolStep.output.echo.arguments).toEqual({ q: "a\uFFFDb\uFFFDc" });
      expect(res.events.filter((e) => e.event === "message.delta").map((d) => d.data.delta).join("")).toBe("answer a\uFFFDb\uFFFDc");
      const messages = await api.ok("GET", `/v1/threads/${thread.id}/messages`);
      expect(messages.data.find((m: { role: string }) => m.role === "assistant").content).toBe("answer a\uFFFDb\uFFFDc");
    });

    test("an agent whose tools changed since its last run offers the new ones (the worker's guess of them is checked)", async () => {
      fake.reset();
      const [before, after] = [await httpTool("before_tool"), await httpTool("after_tool")];
      const agent = await api.agent({ tools: [before.id] });
      const offered = async (body: Record<string, unknown> = {}) => {
        fake.reset();
        fake.script({ content: "ok" });
        const run = await api.run((await api.thread()).id, { agent_id: agent.id, input: "Which tools?", ...body });
        expect((await api.wait(run.id)).status).toBe("completed");
        return (fake.requests[0].body.tools ?? []).map((t: { function: { name: string } }) => t.function.name);
      };
      expect(await offered()).toEqual(["before_tool"]);
      await api.ok("PATCH", `/v1/agents/${agent.id}`, { tools: [after.id] });
      expect(await offered()).toEqual(["after_tool"]);
      await api.ok("PATCH", `/v1/agents/${agent.id}`, { tools: [] });
      expect(await offered()).toEqual([]);
      expect(await offered({ tools: [before.id, after.id] })).toEqual(["before_tool", "after_tool"]);
    });

    test("client tools: requires_action → tool_outputs (wrong or missing ids → 400) → completed", async () => {
      fake.reset();
      const client = await api.tool({ name: "get_location", kind: "client", parameters: { type: "object", properties: {} } });
      const agent = await api.agent({ tools: [client.id] });
      const thread = await api.thread();
      fake.script({ tool_calls: [{ name: "get_location", arguments: {}, id: "c1" }, { name: "get_location", arguments: {}, id: "c2" }] }, { content: "You are in Paris." });
      const run = await api.run(thread.id, { agent_id: agent.id, input: "Where am I?" });
      const paused = await api.wait(run.id);
      expect(paused.status).toBe("requires_action");
      expect(paused.required_action.type).toBe("submit_tool_outputs");
      expect(paused.required_action.tool_calls.map((c: any) => [c.id, c.action, c.function.name])).toEqual([["c1", "output", "get_location"], ["c2", "output", "get_location"]]);

      const wrong = await api.call("POST", `/v1/runs/${run.id}/tool_outputs`, { tool_outputs: [{ tool_call_id: "nope", output: "x" }, { tool_call_id: "c1", output: "x" }, { tool_call_id: "c2", output: "x" }] });
      expect([wrong.status, wrong.body.error.code]).toEqual([400, "unknown_tool_call_id"]);
      const missing = await api.call("POST", `/v1/runs/${run.id}/tool_outputs`, { tool_outputs: [{ tool_call_id: "c1", output: "Paris" }] });
      expect([missing.status, missing.body.error.code]).toEqual([400, "missing_tool_outputs"]);
      const noOutput = await api.call("POST", `/v1/runs/${run.id}/tool_outputs`, { tool_outputs: [{ tool_call_id: "c1" }, { tool_call_id: "c2", output: "x" }] });
      expect([noOutput.status, noOutput.body.error.code]).toEqual([400, "missing_output"]);
      const empty = await api.call("POST", `/v1/runs/${run.id}/tool_outputs`, { tool_outputs: [] });
      expect(empty.status).toBe(400);
      expect((await api.get(run.id)).status).toBe("requires_action");

      const resumed = await api.ok("POST", `/v1/runs/${run.id}/tool_outputs`, { tool_outputs: [{ tool_call_id: "c1", output: "Paris" }, { tool_call_id: "c2", output: "France" }] });
      expect(resumed.status).toBe("in_progress");
      const done = await api.wait(run.id);
      expect(done.status).toBe("completed");
      const sent = fake.requests[1].body.messages;
      expect(sent.slice(-2)).toEqual([{ role: "tool", tool_call_id: "c1", content: "Paris" }, { role: "tool", tool_call_id: "c2", content: "France" }]);
      const again = await api.call("POST", `/v1/runs/${run.id}/tool_outputs`, { tool_outputs: [{ tool_call_id: "c1", output: "x" }, { tool_call_id: "c2", output: "x" }] });
      expect([again.status, again.body.error.code]).toEqual([409, "run_not_requires_action"]);
    });

    test("the run's timeline: queue wait, each call's latency, tokens and cost, time spent in requires_action", async () => {
      fake.reset();
      const client = await api.tool({ name: "ask_human", kind: "client", parameters: { type: "object", properties: {} } });
      const agent = await api.agent({ tools: [client.id] });
      const thread = await api.thread();
      fake.script(
        { tool_calls: [{ name: "ask_human", arguments: {}, id: "h1" }], usage: { prompt_tokens: 1000, completion_tokens: 200 }, delayMs: 150 },
        { content: "Thanks.", usage: { prompt_tokens: 2000, completion_tokens: 100 } },
      );
      const run = await api.run(thread.id, { agent_id: agent.id, input: "Ask me." });
      expect((await api.wait(run.id)).status).toBe("requires_action");
      const waiting = await api.ok("GET", `/v1/runs/${run.id}/trace`);
      expect(waiting.requires_action).toHaveLength(1);
      expect(waiting.requires_action[0].to).toBeNull();
      await Bun.sleep(300);
      await api.ok("POST", `/v1/runs/${run.id}/tool_outputs`, { tool_outputs: [{ tool_call_id: "h1", output: "yes" }] });
      expect((await api.wait(run.id)).status).toBe("completed");

      const trace = await api.ok("GET", `/v1/runs/${run.id}/trace`);
      expect(trace).toMatchObject({ object: "run.trace", run_id: run.id, status: "completed", attempts: 2, usage: { prompt_tokens: 3000, completion_tokens: 300, total_tokens: 3300 } });
      expect(trace.steps.map((s: any) => `${s.kind}:${s.name}:${s.status}`)).toEqual(["model_call:fake-model:completed", "tool_call:ask_human:completed", "model_call:fake-model:completed"]);
      const [first, , last] = trace.steps;
      expect(first.duration_ms).toBeGreaterThanOrEqual(140);
      // The default price: 100 cents per 1M input tokens, 300 per 1M output tokens.
      expect(first.cost_cents).toBeCloseTo((1000 * 100 + 200 * 300) / 1e6, 9);
      expect(last.cost_cents).toBeCloseTo((2000 * 100 + 100 * 300) / 1e6, 9);
      expect(trace.cost_cents).toBeCloseTo(first.cost_cents + last.cost_cents, 9);
      expect(trace.steps[1].cost_cents).toBeNull();
      expect(trace.requires_action).toHaveLength(1);
      expect(trace.requires_action[0].to).not.toBeNull();
      expect(trace.requires_action_ms).toBeGreaterThanOrEqual(290);
      expect(trace.queued_ms).toBeGreaterThanOrEqual(0);
      expect(trace.total_ms).toBeGreaterThanOrEqual(trace.requires_action_ms + first.duration_ms);
      expect((await api.call("GET", "/v1/runs/run_doesnotexist/trace")).status).toBe(404);
    });

    test("approval tools: approved calls run, rejected calls become an error result for the model", async () => {
      fake.reset();
      tools.calls.length = 0;
      const risky = await httpTool("transfer", { requires_approval: true });
      const agent = await api.agent({ tools: [risky.id] });
      const thread = await api.thread();
      fake.script({ tool_calls: [{ name: "transfer", arguments: { q: "100" }, id: "a1" }] }, { content: "Transferred." });
      const run = await api.run(thread.id, { agent_id: agent.id, input: "Pay" });
      const paused = await api.wait(run.id);
      expect(paused.required_action.tool_calls[0].action).toBe("approval");
      expect(tools.calls).toHaveLength(0);
      const bad = await api.call("POST", `/v1/runs/${run.id}/tool_outputs`, { tool_outputs: [{ tool_call_id: "a1", output: "x" }] });
      expect([bad.status, bad.body.error.code]).toEqual([400, "missing_approval"]);
      await api.ok("POST", `/v1/runs/${run.id}/tool_outputs`, { tool_outputs: [{ tool_call_id: "a1", approve: true }] });
      expect((await api.wait(run.id)).status).toBe("completed");
      expect(tools.calls.map((c) => c.tool_call_id)).toEqual(["a1"]);

      const thread2 = await api.thread();
      fake.script({ tool_calls: [{ name: "transfer", arguments: { q: "1000000" }, id: "a2" }] }, { content: "Not transferred." });
      const run2 = await api.run(thread2.id, { agent_id: agent.id, input: "Pay more" });
      await api.wait(run2.id);
      await api.ok("POST", `/v1/runs/${run2.id}/tool_outputs`, { tool_outputs: [{ tool_call_id: "a2", approve: false, reason: "too much" }] });
      expect((await api.wait(run2.id)).status).toBe("completed");
      expect(tools.calls).toHaveLength(1);
      const toolMsg = fake.requests.at(-1)!.body.messages.at(-1);
      expect(toolMsg.role).toBe("tool");
      expect(JSON.parse(toolMsg.content).error).toEqual({ code: "tool_call_rejected", message: "too much" });
    });

    test("max_steps: a model that keeps calling tools fails the run with max_steps_exceeded", async () => {
      fake.reset();
      tools.calls.length = 0;
      const loop = await httpTool("again");
      const agent = await api.agent({ tools: [loop.id], max_steps: 2 });
      const thread = await api.thread();
      fake.script({ tool_calls: [{ name: "again", arguments: {} }] }, { tool_calls: [{ name: "again", arguments: {} }] }, { tool_calls: [{ name: "again", arguments: {} }] });
      const run = await api.run(thread.id, { agent_id: agent.id, input: "loop" });
      const done = await api.wait(run.id);
      expect(done.status).toBe("failed");
      expect(done.last_error.code).toBe("max_steps_exceeded");
      expect(fake.requests).toHaveLength(2);
      expect(tools.calls).toHaveLength(1); // the tools of the last allowed call are not executed
      const { events } = await api.events(run.id);
      expect(events.at(-1)!.event).toBe("run.failed");
      fake.reset();
    });

    test("provider failures: 5xx retried within the bound then failed; a 400 fails at once", async () => {
      fake.reset();
      const agent = await api.agent();
      const t1 = await api.thread();
      fake.script({ status: 500 }, { status: 502 }, { status: 503 });
      const run = await api.run(t1.id, { agent_id: agent.id, input: "x" });
      const done = await api.wait(run.id);
      expect(done.status).toBe("failed");
      expect(done.last_error.code).toBe("model_unavailable");
      expect(fake.requests).toHaveLength(3); // 1 + AGENTOS_MODEL_MAX_RETRIES
      const steps = await api.steps(run.id);
      expect(steps[0].status).toBe("failed");
      // The failed call is a step that ended: it has its end event and counts.
      expect(done.step_count).toBe(1);
      const { events } = await api.events(run.id);
      expect(events.map((e) => e.event)).toEqual(["run.created", "run.in_progress", "step.created", "step.failed", "run.failed"]);
      expect(events.find((e) => e.event === "step.failed")!.data).toMatchObject({ id: steps[0].id, status: "failed", error: { code: "model_unavailable" } });

      fake.reset();
      const t2 = await api.thread();
      fake.script({ status: 400, body: { error: { message: "model does not exist" } } });
      const run2 = await api.run(t2.id, { agent_id: agent.id, input: "x" });
      const done2 = await api.wait(run2.id);
      expect(done2.last_error).toEqual({ code: "model_bad_request", message: "model does not exist" });
      expect(fake.requests).toHaveLength(1);

      fake.reset();
      const t3 = await api.thread();
      fake.script({ status: 429, retryAfter: 0 }, { content: "after the rate limit" });
      const run3 = await api.run(t3.id, { agent_id: agent.id, input: "x" });
      expect((await api.wait(run3.id)).status).toBe("completed");
    });

    test("cancel during a slow model call aborts it; no further model or tool call starts", async () => {
      fake.reset();
      tools.calls.length = 0;
      const lookup = await httpTool("lookup2");
      const agent = await api.agent({ tools: [lookup.id] });
      const thread = await api.thread();
      // If the run went on, the model would ask for a tool and then be called again.
      fake.script({ delayMs: 30_000, tool_calls: [{ name: "lookup2", arguments: {} }] });
      const run = await api.run(thread.id, { agent_id: agent.id, input: "slow" });
      await fake.waitForRequests(1, 10_000);
      const accepted = await api.ok("POST", `/v1/runs/${run.id}/cancel`);
      // cancelling while its worker holds the lease (under heavy load the lease may lapse: then cancelled at once).
      expect(["cancelling", "cancelled"]).toContain(accepted.status);
      if (accepted.status === "cancelling") expect(accepted.cancel_requested_at).not.toBeNull();
      await fake.waitForAbort(0, 5000);
      const done = await api.wait(run.id);
      expect(done.status).toBe("cancelled");
      await Bun.sleep(500);
      expect(fake.requests).toHaveLength(1);
      expect(tools.calls).toHaveLength(0);
      const steps = await api.steps(run.id);
      expect(steps.map((s) => s.status)).toEqual(["cancelled"]);
      const { events } = await api.events(run.id);
      assertContiguous(events);
      expect(events.at(-1)!.event).toBe("run.cancelled");
      const again = await api.call("POST", `/v1/runs/${run.id}/cancel`);
      expect([again.status, again.body.error.code]).toEqual([409, "run_not_cancellable"]);
    });

    test("cancel of a run waiting for tool outputs is immediate", async () => {
      fake.reset();
      const client = await api.tool({ name: "ask_user", kind: "client" });
      const agent = await api.agent({ tools: [client.id] });
      const thread = await api.thread();
      fake.script({ tool_calls: [{ name: "ask_user", arguments: {} }] });
      const run = await api.run(thread.id, { agent_id: agent.id, input: "?" });
      expect((await api.wait(run.id)).status).toBe("requires_action");
      const cancelled = await api.ok("POST", `/v1/runs/${run.id}/cancel`);
      expect(cancelled.status).toBe("cancelled");
      expect(cancelled.required_action).toBeNull();
      // The thread is free again.
      fake.script({ content: "ok" });
      const next = await api.run(thread.id, { agent_id: agent.id, input: "again" });
      expect((await api.wait(next.id)).status).toBe("completed");
    });

    test("runs idle in requires_action expire", async () => {
      fake.reset();
      const client = await api.tool({ name: "slow_human", kind: "client" });
      const agent = await api.agent({ tools: [client.id] });
      const thread = await api.thread();
      fake.script({ tool_calls: [{ name: "slow_human", arguments: {} }] });
      const run = await api.run(thread.id, { agent_id: agent.id, input: "?" });
      expect((await api.wait(run.id)).status).toBe("requires_action");
      // The reconciler's pass with the configured timeout elapsed (here: 0 ms).
      const store = new RunStore(t.process.platform.db, () => t.process.platform.bus);
      expect(await expireIdleRuns(store, 0)).toBeGreaterThanOrEqual(1);
      const done = await api.get(run.id);
      expect(done.status).toBe("expired");
      expect(done.last_error.code).toBe("requires_action_timeout");
      const late = await api.call("POST", `/v1/runs/${run.id}/tool_outputs`, { tool_outputs: [{ tool_call_id: done.required_action?.tool_calls?.[0]?.id ?? "x", output: "late" }] });
      expect(late.status).toBe(409);
      const { events } = await api.events(run.id);
      expect(events.at(-1)!.event).toBe("run.expired");
    });

    test("stream: true answers text/event-stream with message.delta events and ends after run.completed", async () => {
      fake.reset();
      const agent = await api.agent();
      const thread = await api.thread();
      const text = "Streaming is a way to see the answer while it is being written.";
      fake.script({ content: text, chunkSize: 4, chunkDelayMs: 5 });
      const res = await readSse(`${t.url}/v1/threads/${thread.id}/runs`, alice.token, { method: "POST", body: { agent_id: agent.id, input: "stream please", stream: true } });
      expect(res.status).toBe(200);
      expect(res.contentType).toContain("text/event-stream");
      assertContiguous(res.events);
      expect(res.events[0].event).toBe("run.created");
      expect(res.events.at(-1)!.event).toBe("run.completed");
      const deltas = res.events.filter((e) => e.event === "message.delta");
      expect(deltas.length).toBeGreaterThan(1);
      expect(deltas.map((d) => d.data.delta).join("")).toBe(text);
      expect(fake.requests[0].body.stream).toBe(true);
    });

    test("stream: the model call goes out with the step's opening write, yet step.created comes before the first delta", async () => {
      fake.reset();
      const agent = await api.agent();
      // Deltas at once and fast: they race the step's opening write, which the call no longer waits for.
      for (let i = 0; i < 3; i++) {
        const thread = await api.thread();
        fake.script({ content: "abcdefghijklmnopqrstuvwxyz".repeat(4), chunkSize: 1, chunkDelayMs: 0 });
        const res = await readSse(`${t.url}/v1/threads/${thread.id}/runs`, alice.token, { method: "POST", body: { agent_id: agent.id, input: "now", stream: true } });
        assertContiguous(res.events);
        const names = res.events.map((e) => e.event);
        const created = names.indexOf("step.created");
        expect(created).toBeGreaterThan(0);
        expect(names.slice(0, created).filter((n) => n === "message.delta")).toEqual([]);
        expect(names.at(-1)).toBe("run.completed");
        const step = res.events[created].data;
        expect(res.events.filter((e) => e.event === "message.delta").every((e) => e.data.step_id === step.id)).toBe(true);
      }
    });

    test("SSE is resumable: a dropped connection resumes with Last-Event-ID or ?after= and loses nothing", async () => {
      fake.reset();
      const agent = await api.agent();
      const thread = await api.thread();
      const text = "x".repeat(200);
      fake.script({ content: text, chunkSize: 10, chunkDelayMs: 30 });
      // The POST's own stream drops after 4 events; the client reconnects to /events with the last id.
      const first = await readSse(`${t.url}/v1/threads/${thread.id}/runs`, alice.token, { method: "POST", body: { agent_id: agent.id, input: "long", stream: true }, stopAfter: 4 });
      expect(first.events).toHaveLength(4);
      const run = first.events[0].data;
      expect(run.status).toBe("queued");
      const lastSeen = first.events.at(-1)!.id;
      const rest = await readSse(`${t.url}/v1/runs/${run.id}/events`, alice.token, { headers: { "last-event-id": String(lastSeen) } });
      const all = [...first.events, ...rest.events];
      assertContiguous(all);
      expect(all.at(-1)!.event).toBe("run.completed");
      expect(all.filter((e) => e.event === "message.delta").map((e) => e.data.delta).join("")).toBe(text);
      // ?after= replays from the database after the run ended, then the stream ends.
      const tail = await readSse(`${t.url}/v1/runs/${run.id}/events?after=${all.length - 2}`, alice.token);
      expect(tail.events.map((e) => e.id)).toEqual([all.length - 1, all.length]);
      // Nothing after the last event of an ended run: 204, so EventSource clients stop reconnecting.
      const none = await readSse(`${t.url}/v1/runs/${run.id}/events?after=${all.length}`, alice.token);
      expect([none.status, none.events.length]).toEqual([204, 0]);
    });

    test("the prompt never exceeds context_window: oldest history dropped, instructions and memory kept", async () => {
      fake.reset();
      const contextWindow = 600;
      const agent = await api.agent({ context_window: contextWindow, instructions: "INSTRUCTIONS-KEPT", memory_blocks: [{ label: "persona", value: "MEMORY-KEPT" }] });
      const thread = await api.thread();
      for (let i = 0; i < 30; i++) {
        await api.ok("POST", `/v1/threads/${thread.id}/messages`, { role: i % 2 ? "assistant" : "user", content: `message number ${i}: ${"lorem ipsum dolor sit amet ".repeat(3)}` });
      }
      fake.script({ content: "short" });
      const run = await api.run(thread.id, { agent_id: agent.id, input: "NEWEST-INPUT" });
      expect((await api.wait(run.id)).status).toBe("completed");
      const sent = fake.requests[0].body.messages;
      expect(countPromptTokens(sent)).toBeLessThanOrEqual(contextWindow - defaultReserve(contextWindow));
      expect(sent[0].content).toContain("INSTRUCTIONS-KEPT");
      expect(sent[0].content).toContain("MEMORY-KEPT");
      expect(sent.at(-1).content).toBe("NEWEST-INPUT");
      expect(JSON.stringify(sent)).not.toContain("message number 0:");
      expect(sent.length).toBeGreaterThan(2);
      const step = (await api.steps(run.id))[0];
      expect(step.input.dropped_messages).toBeGreaterThan(0);
    });

    test("idempotent run creation: same key and body → the same run; another body → 409", async () => {
      fake.reset();
      const agent = await api.agent();
      const thread = await api.thread();
      const headers = { "idempotency-key": `run-${crypto.randomUUID()}` };
      const body = { agent_id: agent.id, input: "once" };
      const a = await api.call("POST", `/v1/threads/${thread.id}/runs`, body, headers);
      const b = await api.call("POST", `/v1/threads/${thread.id}/runs`, body, headers);
      expect([a.status, b.status]).toEqual([201, 201]);
      expect(b.body.id).toBe(a.body.id);
      const c = await api.call("POST", `/v1/threads/${thread.id}/runs`, { ...body, input: "twice" }, headers);
      expect([c.status, c.body.error.code]).toEqual([409, "idempotency_key_reused"]);
      await api.wait(a.body.id);
      expect((await api.ok("GET", `/v1/threads/${thread.id}/runs`)).data).toHaveLength(1);
      expect((await api.messages(thread.id)).filter((m) => m.role === "user")).toHaveLength(1);
    });

    test("another organization's agents, threads and runs answer 404", async () => {
      fake.reset();
      const agent = await api.agent();
      const thread = await api.thread();
      const run = await api.run(thread.id, { agent_id: agent.id, input: "mine" });
      await api.wait(run.id);
      const bob = await signupUnlimited(t);
      const eve = runApi(t, bob.token);
      for (const [method, path, body] of [
        ["GET", `/v1/agents/${agent.id}`],
        ["PATCH", `/v1/agents/${agent.id}`, { name: "stolen" }],
        ["DELETE", `/v1/agents/${agent.id}`],
        ["GET", `/v1/threads/${thread.id}`],
        ["GET", `/v1/threads/${thread.id}/messages`],
        ["POST", `/v1/threads/${thread.id}/messages`, { role: "user", content: "hi" }],
        ["POST", `/v1/threads/${thread.id}/runs`, { agent_id: agent.id }],
        ["GET", `/v1/threads/${thread.id}/runs`],
        ["GET", `/v1/runs/${run.id}`],
        ["GET", `/v1/runs/${run.id}/steps`],
        ["GET", `/v1/runs/${run.id}/events`],
        ["GET", `/v1/runs/${run.id}/wait?timeout_s=0`],
        ["POST", `/v1/runs/${run.id}/cancel`],
        ["POST", `/v1/runs/${run.id}/tool_outputs`, { tool_outputs: [{ tool_call_id: "x", output: "y" }] }],
        ["DELETE", `/v1/threads/${thread.id}`],
      ] as [string, string, unknown?][]) {
        const r = await eve.call(method, path, body);
        expect([method, path, r.status]).toEqual([method, path, 404]);
      }
      // Bob's own thread with Alice's agent: 404 too.
      const bobThread = await eve.thread();
      const cross = await eve.call("POST", `/v1/threads/${bobThread.id}/runs`, { agent_id: agent.id });
      expect(cross.status).toBe(404);
      expect((await api.get(run.id)).status).toBe("completed");
    });

    test("a worker that loses its run mid-call stops writing; the run resumes from its last step, the completed tool call is not repeated", async () => {
      fake.reset();
      tools.calls.length = 0;
      const lookup = await httpTool("lookup3");
      const agent = await api.agent({ tools: [lookup.id] });
      const thread = await api.thread();
      fake.script({ tool_calls: [{ name: "lookup3", arguments: { q: "once" }, id: "once" }] }, { delayMs: 30_000, content: "never" }, { content: "resumed answer" });
      const run = await api.run(thread.id, { agent_id: agent.id, input: "crash me" });
      await fake.waitForRequests(2, 10_000);
      // What a worker killed mid-call leaves: a lease it no longer renews. Another owner takes it
      // (as if the first had died); the worker's next renewal finds it gone and aborts without a write.
      // When that lease expires, the reconciler rings again and the run resumes from its last step.
      const db = t.process.platform.db;
      await db.update(runs).set({ leaseOwner: "dead-worker:0:x", leaseExpiresAt: sql`now() + interval '1 second'` }).where(eq(runs.id, run.id));
      expect(tools.calls).toHaveLength(1);
      {
        const done = await api.wait(run.id, 20);
        expect(done.status).toBe("completed");
        expect(tools.calls.map((c) => c.tool_call_id)).toEqual(["once"]);
        expect(fake.requests).toHaveLength(3);
        expect((await api.messages(thread.id)).at(-1).content).toBe("resumed answer");
        const steps = await api.steps(run.id);
        expect(steps.map((s) => `${s.kind}:${s.status}`)).toEqual(["model_call:completed", "tool_call:completed", "model_call:completed"]);
        const { events } = await api.events(run.id);
        assertContiguous(events);
        expect(events.filter((e) => e.event === "run.completed")).toHaveLength(1);
        expect(events.filter((e) => e.event === "run.in_progress")).toHaveLength(1);
      }
    });
  });
}
