/**
 * Runs a product developer steers (issue 12, items 1-3), on the compiled binary against the
 * fake model, on the embedded default and on real PostgreSQL + NATS + Redis: per-run overrides
 * (persisted, shown, and sent to the model in the chat-completions shape), structured output
 * (validated, one corrective turn, then invalid_output), parallel tool calls (concurrent,
 * results in the model's order, one pause for client and approval calls) — and a kill -9 of
 * the worker mid-batch (embedded: the one process; real: the worker process of a split
 * deployment), after which only the calls without a written result run again.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestDatabase, describeReal, dropNatsNamespace, dropRedisNamespace, REAL_URLS, uniqueName } from "./support/backends";
import { startChild, type ChildProcess } from "./support/binary";
import { http } from "./support/cluster";
import { startFakeModel, type FakeModel, type FakeRequest } from "./support/fake-model";
import { TEST_INTERNAL_KEY, TEST_JWT_SECRET } from "./support/harness";
import { TEST_RUN_ENV } from "./support/run-suite";
import { runApi } from "./support/testkit";

/** `split`: the worker role runs in its own process (the one the crash test kills). */
type Backend = { args: () => string[]; split: boolean; cleanup: () => Promise<void> };

const embedded = (): Backend => {
  const dataDir = mkdtempSync(join(tmpdir(), "agentos-runopts-"));
  return { args: () => [`--data-dir=${dataDir}`], split: false, cleanup: async () => rmSync(dataDir, { recursive: true, force: true }) };
};

const real = async (): Promise<Backend> => {
  const db = await createTestDatabase();
  const namespace = uniqueName("t");
  return {
    args: () => [`--database-url=${db.url}`, `--nats-url=${REAL_URLS.nats}`, `--redis-url=${REAL_URLS.redis}`, `--namespace=${namespace}`, `--jwt-secret=${TEST_JWT_SECRET}`, `--internal-key=${TEST_INTERNAL_KEY}`],
    split: true,
    cleanup: async () => {
      await db.drop();
      await dropNatsNamespace(namespace).catch(() => {});
      await dropRedisNamespace(namespace).catch(() => {});
    },
  };
};

/**
 * A tool endpoint that shows concurrency: every call waits at a barrier until `expected`
 * calls are in flight (or `holdMs` passed), then the calls are answered in reverse order of
 * arrival. Calls named in `hang` are never answered (until `release()`), as a slow tool.
 * Each call is recorded with whether its answer was delivered (an aborted one was not).
 */
function startBarrierTools() {
  const state = {
    expected: 1,
    holdMs: 3000,
    maxInFlight: 0,
    inFlight: 0,
    hang: new Set<string>(),
    calls: [] as { id: string; args: any; delivered: boolean }[],
    waiting: [] as (() => void)[],
    releaseHung: [] as (() => void)[],
    release() {
      state.hang.clear();
      for (const r of state.releaseHung.splice(0)) r();
    },
    reset() {
      state.calls.length = 0;
      state.maxInFlight = 0;
      state.expected = 1;
    },
    delivered: (id: string) => state.calls.filter((c) => c.id === id && c.delivered).length,
  };
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    async fetch(req) {
      const body = (await req.json()) as { arguments: unknown; tool_call_id: string };
      const call = { id: body.tool_call_id, args: body.arguments, delivered: false };
      state.calls.push(call);
      state.maxInFlight = Math.max(state.maxInFlight, ++state.inFlight);
      try {
        if (state.hang.has(call.id)) await new Promise<void>((r) => state.releaseHung.push(r));
        await new Promise<void>((resolve) => {
          state.waiting.push(resolve);
          if (state.waiting.length >= state.expected) {
            // Reverse order of arrival: the model must still get the results in its own order.
            const all = state.waiting.splice(0).reverse();
            all.forEach((r, i) => setTimeout(r, i * 30));
          } else setTimeout(resolve, state.holdMs);
        });
        if (req.signal.aborted) return new Response(null, { status: 499 });
        call.delivered = true;
        return Response.json({ tool: call.id, got: call.args });
      } finally {
        state.inFlight--;
      }
    },
  });
  return Object.assign(state, { state, url: `http://127.0.0.1:${server.port}/tool`, stop: () => server.stop(true) });
}

const requester = (base: () => string) => (method: string, path: string, o: { body?: unknown; token?: string; headers?: Record<string, string> } = {}) => http(base(), method, path, o);

const systemOf = (r: FakeRequest) => r.body.messages[0].content as string;
const toolNames = (r: FakeRequest) => (r.body.tools ?? []).map((t: any) => t.function.name);

function runOptionsSuite(name: string, makeBackend: () => Backend | Promise<Backend>) {
  describe(name, () => {
    let fake: FakeModel;
    let tools: ReturnType<typeof startBarrierTools>;
    let backend: Backend;
    let child: ChildProcess;
    let worker: ChildProcess | undefined;
    let api: ReturnType<typeof runApi>;
    const serve = (roles: string[]) => startChild(["serve", ...roles, ...backend.args(), `--model-base-url=${fake.url}`], { env: { ...TEST_RUN_ENV, LOG_LEVEL: "error" } });
    // Split: the tools role lives with the worker, so the kill also cuts the tool request in
    // flight (a tools process that survived would deliver it, and the re-run would be a second delivery).
    const startWorker = async () => {
      worker = await serve(["--role=worker,tools"]);
    };
    const start = async () => {
      child = await serve(backend.split ? ["--role=gateway,auth,agents,memory,billing,notify"] : []);
      if (backend.split) await startWorker();
    };
    const client = { get url() { return child.url; }, request: requester(() => child.url) };
    const tool = (toolName: string, extra: Record<string, unknown> = {}) =>
      api.tool({ name: toolName, kind: "http", config: { url: tools.url }, parameters: { type: "object", properties: { q: { type: "string" } } }, ...extra });

    beforeAll(async () => {
      fake = await startFakeModel();
      tools = startBarrierTools();
      backend = await makeBackend();
      await start();
      const signup = await client.request("POST", "/v1/auth/signup", { body: { email: `${uniqueName("u")}@example.com`, password: "correct horse battery" } });
      expect(signup.status).toBe(201);
      const token = signup.body.access_token;
      expect((await client.request("PUT", "/v1/billing/plan", { token, body: { plan: "enterprise" } })).status).toBe(200);
      api = runApi(client, token);
    }, 120_000);
    afterAll(async () => {
      await Promise.all([child?.stop("SIGKILL").catch(() => {}), worker?.stop("SIGKILL").catch(() => {})]);
      fake?.stop();
      tools?.stop();
      await backend?.cleanup();
    }, 30_000);

    test("per-run overrides are persisted, shown in GET /v1/runs/:id and sent to the model; agent defaults apply otherwise", async () => {
      const a = await tool("alpha");
      const b = await tool("beta");
      const agent = await api.agent({ instructions: "Agent instructions.", tools: [a.id], temperature: 0.3, top_p: 0.8, max_output_tokens: 100, max_steps: 5 });
      expect(agent).toMatchObject({ temperature: 0.3, top_p: 0.8, max_output_tokens: 100 });

      fake.reset();
      const thread = await api.thread();
      const run = await api.run(thread.id, { agent_id: agent.id, input: "hi" });
      expect(run).toMatchObject({ instructions: null, tools: null, temperature: null, tool_choice: null, response_format: null, parallel_tool_calls: true });
      expect((await api.wait(run.id)).status).toBe("completed");
      expect(fake.requests[0].body).toMatchObject({ model: "fake-model", temperature: 0.3, top_p: 0.8, max_tokens: 100 });
      expect(fake.requests[0].body.tool_choice).toBeUndefined();
      expect(systemOf(fake.requests[0])).toContain("Agent instructions.");

      fake.reset();
      fake.script({ tool_calls: [{ name: "beta", arguments: { q: "x" }, id: "call_beta" }] }, { content: "done" });
      const overrides = {
        model: "other-model", instructions: "Run instructions.", additional_instructions: "Be brief.", tools: [b.id],
        temperature: 1.5, top_p: 0.25, max_output_tokens: 42, max_steps: 3, max_tool_calls: 4,
        tool_choice: { type: "function", function: { name: "beta" } }, metadata: { ticket: "T-1" },
      };
      const thread2 = await api.thread();
      const created = await api.run(thread2.id, { agent_id: agent.id, input: "go", ...overrides });
      const { metadata, ...shown } = overrides;
      expect(created).toMatchObject({ ...shown, metadata, parallel_tool_calls: true, response_format: null });
      expect((await api.wait(created.id)).status).toBe("completed");
      expect(await api.get(created.id)).toMatchObject({ ...shown, metadata });
      const [first, second] = fake.requests;
      expect(first.body).toMatchObject({ model: "other-model", temperature: 1.5, top_p: 0.25, max_tokens: 42, tool_choice: { type: "function", function: { name: "beta" } } });
      expect(toolNames(first)).toEqual(["beta"]);
      expect(systemOf(first)).toContain("Run instructions.\n\nBe brief.");
      expect(systemOf(first)).not.toContain("Agent instructions.");
      // After the run's first tool call tool_choice is back to auto: a forced call cannot loop.
      expect(second.body.tool_choice).toBeUndefined();
      expect(tools.calls.map((c) => c.id)).toContain("call_beta");

      // The agent's own settings are untouched by the run's overrides.
      expect(await api.ok("GET", `/v1/agents/${agent.id}`)).toMatchObject({ instructions: "Agent instructions.", tools: [a.id], temperature: 0.3 });
      const cleared = await api.ok("PATCH", `/v1/agents/${agent.id}`, { temperature: null });
      expect(cleared.temperature).toBeNull();
    }, 60_000);

    test("bad options are refused with a 4xx naming the field", async () => {
      const a = await tool("gamma");
      const agent = await api.agent({ tools: [a.id] });
      const bare = await api.agent({});
      const thread = await api.thread();
      const post = (body: Record<string, unknown>, agentId = agent.id) => api.call("POST", `/v1/threads/${thread.id}/runs`, { agent_id: agentId, ...body });
      const cases: [Record<string, unknown>, number, string, string?][] = [
        [{ temperature: 3 }, 400, "temperature"],
        [{ top_p: -1 }, 400, "top_p"],
        [{ max_output_tokens: 0 }, 400, "max_output_tokens"],
        [{ tool_choice: "sometimes" }, 400, "tool_choice"],
        [{ tool_choice: { type: "function", function: { name: "nope" } } }, 400, "invalid_tool_choice"],
        [{ tools: ["tool_doesnotexist000000000000"] }, 422, "unknown_tools"],
        [{ response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "string" } } } }, 400, "invalid_response_format"],
        [{ response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "object", properties: { a: { type: "nonsense" } } } } } }, 400, "invalid_response_format"],
        [{ response_format: { type: "xml" } }, 400, "response_format"],
        [{ frequency_penalty: 1 }, 400, "frequency_penalty"],
        [{ tool_choice: "required" }, 400, "invalid_tool_choice", bare.id],
      ];
      for (const [body, status, needle, agentId] of cases) {
        const r = await post(body, agentId);
        expect([JSON.stringify(body), r.status]).toEqual([JSON.stringify(body), status]);
        expect(JSON.stringify(r.body)).toContain(needle);
      }
      // Nothing was created by the refused requests.
      expect((await api.ok("GET", `/v1/threads/${thread.id}/runs`)).data).toHaveLength(0);
    }, 60_000);

    test("tool_choice none and max_tool_calls: the model is told, extra calls are refused, the run answers", async () => {
      const a = await tool("delta");
      const agent = await api.agent({ tools: [a.id] });
      tools.reset();
      fake.reset();
      fake.script({ tool_calls: [{ name: "delta", arguments: {} }] });
      const none = await api.run((await api.thread()).id, { agent_id: agent.id, input: "no tools", tool_choice: "none" });
      expect((await api.wait(none.id)).status).toBe("completed");
      expect(fake.requests[0].body.tool_choice).toBe("none");
      expect((await api.steps(none.id)).map((s) => s.kind)).toEqual(["model_call"]);

      fake.reset();
      fake.script({ tool_calls: [{ name: "delta", arguments: { q: "1" }, id: "d1" }, { name: "delta", arguments: { q: "2" }, id: "d2" }] }, { tool_calls: [{ name: "delta", arguments: {}, id: "d3" }] });
      tools.state.expected = 1;
      const capped = await api.run((await api.thread()).id, { agent_id: agent.id, input: "capped", max_tool_calls: 1 });
      expect((await api.wait(capped.id)).status).toBe("completed");
      expect(tools.calls.map((c) => c.id)).toEqual(["d1"]);
      const steps = await api.steps(capped.id);
      expect(steps.find((s) => s.tool_call_id === "d2")).toMatchObject({ status: "failed", error: { code: "max_tool_calls_exceeded" } });
      // Past the cap the next call says tool_choice none (the fake, like a model, then answers).
      expect(fake.requests[1].body.tool_choice).toBe("none");
    }, 60_000);

    test("structured output: json_schema is sent, the answer is validated and parsed onto the final message", async () => {
      const agent = await api.agent({});
      const schema = { type: "object", properties: { city: { type: "string" }, temp_c: { type: "number" } }, required: ["city", "temp_c"], additionalProperties: false };
      const response_format = { type: "json_schema", json_schema: { name: "weather", schema, strict: true } };
      fake.reset();
      fake.script({ json: { city: "Oslo", temp_c: 4.5 } });
      const thread = await api.thread();
      const run = await api.run(thread.id, { agent_id: agent.id, input: "weather?", response_format });
      expect(run.response_format).toEqual(response_format);
      expect((await api.wait(run.id)).status).toBe("completed");
      expect(fake.requests[0].body.response_format).toEqual(response_format);
      const answer = (await api.messages(thread.id)).at(-1);
      expect(answer).toMatchObject({ role: "assistant", content: '{"city":"Oslo","temp_c":4.5}', parsed: { city: "Oslo", temp_c: 4.5 } });

      // json_object: any JSON object, parsed.
      fake.reset();
      fake.script({ json: { anything: [1, 2] } });
      const thread2 = await api.thread();
      const obj = await api.run(thread2.id, { agent_id: agent.id, input: "json", response_format: { type: "json_object" } });
      expect((await api.wait(obj.id)).status).toBe("completed");
      expect(fake.requests[0].body.response_format).toEqual({ type: "json_object" });
      expect((await api.messages(thread2.id)).at(-1).parsed).toEqual({ anything: [1, 2] });
    }, 60_000);

    test("structured output: a mismatch gets one corrective turn; a second one fails the run with invalid_output", async () => {
      const agent = await api.agent({});
      const schema = { type: "object", properties: { n: { type: "integer" } }, required: ["n"] };
      const response_format = { type: "json_schema", json_schema: { name: "count", schema, strict: true } };

      fake.reset();
      fake.script({ invalidJson: true }, { json: { n: 3 } });
      const thread = await api.thread();
      const fixed = await api.run(thread.id, { agent_id: agent.id, input: "count", response_format });
      expect((await api.wait(fixed.id)).status).toBe("completed");
      expect(fake.requests).toHaveLength(2);
      const corrective = fake.requests[1].body.messages.at(-1);
      expect(corrective.role).toBe("user");
      expect(corrective.content).toContain("not valid JSON");
      expect((await api.messages(thread.id)).at(-1).parsed).toEqual({ n: 3 });

      fake.reset();
      fake.script({ json: { n: "three" } }, { json: { m: 1 } });
      const thread2 = await api.thread();
      const broken = await api.run(thread2.id, { agent_id: agent.id, input: "count", response_format });
      const done = await api.wait(broken.id);
      expect(done.status).toBe("failed");
      expect(done.last_error.code).toBe("invalid_output");
      expect(done.last_error.message).toContain("must have required property 'n'");
      expect(fake.requests).toHaveLength(2);
      expect(fake.requests[1].body.messages.at(-1).content).toContain("output/n must be integer");
      expect((await api.messages(thread2.id)).map((m) => m.role)).toEqual(["user"]);
    }, 60_000);

    test("parallel tool calls run at once, each its own step, and reach the model in the order it asked", async () => {
      const e = await tool("epsilon");
      const agent = await api.agent({ tools: [e.id] });
      tools.reset();
      tools.state.expected = 3;
      fake.reset();
      fake.script({ tool_calls: ["p1", "p2", "p3"].map((id) => ({ id, name: "epsilon", arguments: { q: id } })) }, { content: "all three" });
      const run = await api.run((await api.thread()).id, { agent_id: agent.id, input: "fan out" });
      expect((await api.wait(run.id)).status).toBe("completed");
      expect(tools.state.maxInFlight).toBe(3);
      expect(fake.requests[0].body.parallel_tool_calls).toBeUndefined();
      const toolMessages = fake.requests[1].body.messages.filter((m: any) => m.role === "tool");
      expect(toolMessages.map((m: any) => [m.tool_call_id, JSON.parse(m.content).tool])).toEqual([["p1", "p1"], ["p2", "p2"], ["p3", "p3"]]);
      const steps = await api.steps(run.id);
      expect(steps.filter((s) => s.kind === "tool_call").map((s) => [s.tool_call_id, s.status]).sort()).toEqual([["p1", "completed"], ["p2", "completed"], ["p3", "completed"]]);
      const { events } = await api.events(run.id);
      expect(events.filter((x) => x.event === "tool_call.completed")).toHaveLength(3);
    }, 60_000);

    test("parallel_tool_calls: false is sent to the model and the calls run one at a time", async () => {
      const z = await tool("zeta");
      const agent = await api.agent({ tools: [z.id] });
      tools.reset();
      tools.state.expected = 2;
      tools.state.holdMs = 100;
      fake.reset();
      // The first reply ignores the flag (as a model may): its two calls still run one after the other.
      fake.script(
        { tool_calls: [{ id: "s1", name: "zeta", arguments: {} }, { id: "s2", name: "zeta", arguments: {} }], ignoreParallelToolCalls: true },
        { tool_calls: [{ id: "s3", name: "zeta", arguments: {} }, { id: "s4", name: "zeta", arguments: {} }] },
        { content: "done" },
      );
      const run = await api.run((await api.thread()).id, { agent_id: agent.id, input: "one by one", parallel_tool_calls: false });
      expect((await api.wait(run.id)).status).toBe("completed");
      tools.state.holdMs = 3000;
      expect(fake.requests[0].body.parallel_tool_calls).toBe(false);
      expect(tools.state.maxInFlight).toBe(1);
      // The fake, like a model told so, returns one call of the second reply's two.
      expect(tools.calls.map((c) => c.id)).toEqual(["s1", "s2", "s3"]);
    }, 60_000);

    test("a batch with a server tool, a client tool and an approval tool runs the server call, then pauses once for both others", async () => {
      const server = await tool("eta");
      const clientTool = await api.tool({ name: "ask_user", kind: "client", parameters: { type: "object", properties: {} } });
      const guarded = await tool("refund", { requires_approval: true });
      const agent = await api.agent({ tools: [server.id, clientTool.id, guarded.id] });
      tools.reset();
      fake.reset();
      fake.script(
        { tool_calls: [{ id: "b_srv", name: "eta", arguments: {} }, { id: "b_cli", name: "ask_user", arguments: {} }, { id: "b_apr", name: "refund", arguments: {} }] },
        { content: "finished" },
      );
      const run = await api.run((await api.thread()).id, { agent_id: agent.id, input: "mixed" });
      const paused = await api.wait(run.id);
      expect(paused.status).toBe("requires_action");
      expect(paused.required_action.tool_calls.map((c: any) => [c.id, c.action])).toEqual([["b_cli", "output"], ["b_apr", "approval"]]);
      expect(tools.calls.map((c) => c.id)).toEqual(["b_srv"]);
      await api.ok("POST", `/v1/runs/${run.id}/tool_outputs`, { tool_outputs: [{ tool_call_id: "b_cli", output: "yes" }, { tool_call_id: "b_apr", approve: true }] });
      expect((await api.wait(run.id)).status).toBe("completed");
      expect(tools.calls.map((c) => c.id)).toEqual(["b_srv", "b_apr"]);
      const { events } = await api.events(run.id);
      expect(events.filter((x) => x.event === "run.requires_action")).toHaveLength(1);
      expect(fake.requests[1].body.messages.filter((m: any) => m.role === "tool").map((m: any) => m.tool_call_id)).toEqual(["b_srv", "b_cli", "b_apr"]);
    }, 60_000);

    test("kill -9 of the worker mid-batch: after the restart only the call without a written result runs again; each is delivered once", async () => {
      const k = await tool("kappa");
      const agent = await api.agent({ tools: [k.id] });
      tools.reset();
      tools.state.expected = 1;
      tools.state.hang.add("k3");
      fake.reset();
      fake.script({ tool_calls: ["k1", "k2", "k3"].map((id) => ({ id, name: "kappa", arguments: { q: id } })) });
      fake.setDefault({ content: "after the crash" });
      const thread = await api.thread();
      const run = await api.run(thread.id, { agent_id: agent.id, input: "crash me" });
      // k1 and k2 completed (their results written), k3 is at the tool server.
      for (let i = 0; ; i++) {
        const steps = await api.steps(run.id);
        const status = Object.fromEntries(steps.filter((s) => s.kind === "tool_call").map((s) => [s.tool_call_id, s.status]));
        if (status.k1 === "completed" && status.k2 === "completed" && status.k3 === "in_progress" && tools.calls.some((c) => c.id === "k3")) break;
        if (i > 400) throw new Error(`steps never reached the crash point: ${JSON.stringify(status)}`);
        await Bun.sleep(50);
      }
      // Split: only the worker process dies (the API stays up); embedded: the one process.
      const victim = worker ?? child;
      victim.proc.kill("SIGKILL");
      await victim.proc.exited;
      tools.release();

      await (worker ? startWorker() : start());
      const done = await api.wait(run.id, 60);
      expect(done.status).toBe("completed");
      expect(["k1", "k2", "k3"].map((id) => [id, tools.delivered(id)])).toEqual([["k1", 1], ["k2", 1], ["k3", 1]]);
      // k1 and k2 never reached the tool server again; k3 did (its first delivery was cut by the kill).
      expect(tools.calls.filter((c) => c.id !== "k3").map((c) => c.id).sort()).toEqual(["k1", "k2"]);
      expect(fake.requests).toHaveLength(2);
      expect(fake.requests[1].body.messages.filter((m: any) => m.role === "tool").map((m: any) => m.tool_call_id)).toEqual(["k1", "k2", "k3"]);
      const steps = await api.steps(run.id);
      expect(steps.map((s) => `${s.kind}:${s.tool_call_id ?? ""}:${s.status}`)).toEqual([
        "model_call::completed", "tool_call:k1:completed", "tool_call:k2:completed", "tool_call:k3:completed", "model_call::completed",
      ]);
      expect((await api.messages(thread.id)).at(-1).content).toBe("after the crash");
      fake.setDefault({ content: "ok" });
    }, 120_000);
  });
}

runOptionsSuite("run options on the compiled binary [embedded]", embedded);
await describeReal("run options", () => runOptionsSuite("run options on the compiled binary [postgres+nats+redis]", real));
