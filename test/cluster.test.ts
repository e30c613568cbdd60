/**
 * The split deployment end to end: the compiled binary started ten times with one role each
 * (2 gateways, auth, agents, 2 workers, memory, tools, billing, notify) on the real PostgreSQL,
 * Redis and NATS. One user journey — signup → http tool → agent → webhook → run (the model asks
 * for the tool, then answers) → webhook delivery → usage — goes through it with every request
 * alternating between the two gateways, so every step crosses processes over NATS.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { describeReal } from "./support/backends";
import { CLUSTER_LAYOUT, http, readRunEvents, startCluster, startSignedToolServer, startWebhookReceiver, TERMINAL_RUN_EVENTS, waitFor, type Cluster, type SignedToolServer, type WebhookReceiver } from "./support/cluster";
import { startFakeModel, type FakeModel } from "./support/fake-model";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "./support/otlp";

/** The trace the journey's run request starts (as a caller's own tracer would send it). */
const CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN = "00f067aa0ba902b7";

await describeReal("split-role cluster", () => {
  let cluster: Cluster;
  let fake: FakeModel;
  let tool: SignedToolServer;
  let hooks: WebhookReceiver;
  let otlp: OtlpReceiver;
  let journeyRunId = "";
  let turn = 0;
  /** Requests alternate between gateway #1 and gateway #2. */
  const gw = () => cluster.member(turn++ % 2 === 0 ? "gateway#1" : "gateway#2").url;

  beforeAll(async () => {
    fake = await startFakeModel();
    tool = startSignedToolServer();
    hooks = startWebhookReceiver();
    otlp = startOtlpReceiver();
    cluster = await startCluster({
      modelBaseUrl: fake.url,
      env: { AGENTOS_WEBHOOK_RETRY_BASE_MS: "200", AGENTOS_WEBHOOK_POLL_MS: "100", AGENTOS_MODEL_BACKOFF_MS: "10", OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url },
    });
  }, 180_000);

  afterAll(async () => {
    await cluster?.stop();
    fake?.stop();
    tool?.stop();
    hooks?.stop();
    otlp?.stop();
  }, 60_000);

  test("ten processes of one binary, one role each, all ready", async () => {
    const list = cluster.list();
    expect(list.map((m) => m.name)).toEqual(CLUSTER_LAYOUT.map((m) => m.name));
    expect(list.every((m) => m.alive && m.pid !== null)).toBe(true);
    expect(new Set(list.map((m) => m.pid)).size).toBe(10);
    expect(new Set(list.map((m) => m.url)).size).toBe(10);
    for (const m of cluster.members) {
      expect(m.args).toContain(`--role=${m.role}`);
      const ready = await cluster.readyz(m.name);
      expect([m.name, ready.status]).toEqual([m.name, 200]);
      expect(ready.body.checks).toMatchObject({ database: "ok", bus: "ok" });
    }
    // Only gateways serve the API; the other roles serve health and metrics.
    expect((await http(cluster.member("agents").url, "GET", "/v1/agents")).status).toBe(404);
    expect((await http(cluster.member("gateway#2").url, "GET", "/v1/agents")).status).toBe(401);
  });

  test("signup → http tool → agent → webhook → run (tool call, answer) → webhook delivered → usage, across both gateways", async () => {
    const signup = await http(gw(), "POST", "/v1/auth/signup", { body: { email: `cluster-${Date.now()}@example.com`, password: "correct horse battery" } });
    expect(signup.status).toBe(201);
    const token: string = signup.body.access_token;
    // A token minted through one gateway (by the auth process) is accepted by the other.
    expect((await http(gw(), "GET", "/v1/auth/me", { token })).status).toBe(200);
    expect((await http(gw(), "PUT", "/v1/billing/plan", { token, body: { plan: "enterprise" } })).status).toBe(200);

    const createdTool = await http(gw(), "POST", "/v1/tools", {
      token,
      body: { name: "lookup", description: "looks things up", kind: "http", config: { url: tool.url }, parameters: { type: "object", properties: { q: { type: "string" } }, required: ["q"] } },
    });
    expect(createdTool.status).toBe(201);
    tool.secret = createdTool.body.signing_secret;
    const agent = await http(gw(), "POST", "/v1/agents", { token, body: { name: "cluster agent", model: "fake-model", instructions: "Use the lookup tool.", tools: [createdTool.body.id] } });
    expect(agent.status).toBe(201);
    const webhook = await http(gw(), "POST", "/v1/webhooks", { token, body: { url: hooks.url, event_types: ["run.completed"] } });
    expect(webhook.status).toBe(201);
    hooks.secret = webhook.body.secret;

    // Live events on gateway #2 (the run is created through gateway #1): fan-out crosses the bus.
    const frames: any[] = [];
    const ws = new WebSocket(`${cluster.member("gateway#2").url.replace("http", "ws")}/v1/ws?token=${token}`);
    ws.addEventListener("message", (e) => frames.push(JSON.parse(String(e.data))));
    await waitFor("the WebSocket's connected frame", () => frames.some((f) => f.type === "connected"), 15_000);

    fake.script(
      { tool_calls: [{ name: "lookup", arguments: { q: "weather in Paris" }, id: "call_lookup" }], usage: { prompt_tokens: 11, completion_tokens: 7 } },
      { content: "It is sunny in Paris.", usage: { prompt_tokens: 13, completion_tokens: 5 } },
    );
    const thread = await http(gw(), "POST", "/v1/threads", { token, body: {} });
    expect(thread.status).toBe(201);
    const runBody = { agent_id: agent.body.id, input: "What is the weather in Paris?" };
    const created = await http(cluster.member("gateway#1").url, "POST", `/v1/threads/${thread.body.id}/runs`, {
      token,
      body: runBody,
      headers: { "idempotency-key": "cluster-run-1", traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` },
    });
    expect(created.status).toBe(201);
    // The same Idempotency-Key on the other gateway replays the same run.
    const replay = await http(cluster.member("gateway#2").url, "POST", `/v1/threads/${thread.body.id}/runs`, { token, body: runBody, headers: { "idempotency-key": "cluster-run-1" } });
    expect([replay.status, replay.body.id]).toEqual([201, created.body.id]);
    const runId: string = created.body.id;
    journeyRunId = runId;

    const done = await http(gw(), "GET", `/v1/runs/${runId}/wait?timeout_s=60`, { token, timeoutMs: 70_000 });
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ id: runId, status: "completed", step_count: 2 });
    expect(done.body.usage).toMatchObject({ prompt_tokens: 24, completion_tokens: 12, total_tokens: 36 });

    // The tool was called once, with a valid signature, by the tools process.
    expect(tool.calls).toHaveLength(1);
    expect(tool.calls[0]).toMatchObject({ tool_call_id: "call_lookup", run_id: runId, arguments: { q: "weather in Paris" }, signatureOk: true });
    // The model saw the tool's answer in its second request.
    expect(fake.requests).toHaveLength(2);
    const toolMessage = fake.requests[1].body.messages.at(-1);
    expect(toolMessage.role).toBe("tool");
    expect(JSON.parse(toolMessage.content)).toMatchObject({ echo: { q: "weather in Paris" } });

    const messages = await http(gw(), "GET", `/v1/threads/${thread.body.id}/messages`, { token });
    expect(messages.body.data.map((m: any) => [m.role, m.content])).toEqual([["user", "What is the weather in Paris?"], ["assistant", "It is sunny in Paris."]]);
    const steps = await http(gw(), "GET", `/v1/runs/${runId}/steps`, { token });
    expect(steps.body.data.map((s: any) => `${s.kind}:${s.status}`)).toEqual(["model_call:completed", "tool_call:completed", "model_call:completed"]);
    // The run's timeline through the other gateway: the agents role prices it through billing.
    const trace = await http(gw(), "GET", `/v1/runs/${runId}/trace`, { token });
    expect(trace.status).toBe(200);
    expect(trace.body.steps.map((s: any) => `${s.kind}:${s.name}`)).toEqual(["model_call:fake-model", "tool_call:lookup", "model_call:fake-model"]);
    expect(trace.body.cost_cents).toBeCloseTo((24 * 100 + 12 * 300) / 1e6, 9);
    const { events } = await readRunEvents(gw(), token, runId);
    expect(events.map((e) => e.id)).toEqual(events.map((_, i) => i + 1));
    expect(events.filter((e) => TERMINAL_RUN_EVENTS.includes(e.event)).map((e) => e.event)).toEqual(["run.completed"]);

    // The webhook: run.completed delivered once acknowledged, signed with the webhook's secret.
    const acked = await waitFor("the run.completed webhook", () => {
      const m = hooks.acknowledged("run.completed");
      return [...m.values()].find((e) => e.payload?.run_id === runId);
    }, 60_000);
    expect(acked).toMatchObject({ type: "run.completed", payload: { run_id: runId, status: "completed" } });
    expect(hooks.deliveries.every((d) => d.signatureOk)).toBe(true);
    const deliveries = await waitFor("the delivery log entry", async () => {
      const r = await http(gw(), "GET", `/v1/webhooks/${webhook.body.id}/deliveries`, { token });
      return r.body.data?.find((d: any) => d.status === "succeeded") ? r.body.data : null;
    }, 30_000);
    expect(deliveries.length).toBeGreaterThanOrEqual(1);

    // Live: gateway #2's socket received the run's completion.
    await waitFor("run.completed on the WebSocket of gateway #2", () => frames.some((f) => f.type === "event" && f.event.type === "run.completed" && f.event.payload.run_id === runId), 30_000);
    ws.close();

    // Usage: billing recorded the run, both model calls with the model's token counts, and the tool call — once each.
    const usage = await waitFor("usage of both model calls", async () => {
      const r = await http(gw(), "GET", "/v1/billing/usage?group_by=model", { token });
      return r.status === 200 && r.body.totals.model_calls === 2 && r.body.totals.tool_calls === 1 ? r.body : null;
    }, 60_000);
    expect(usage.totals).toEqual({ runs: 1, model_calls: 2, tool_calls: 1, prompt_tokens: 24, completion_tokens: 12, total_tokens: 36, cost_cents: expect.closeTo((24 * 100 + 12 * 300) / 1e6, 9) });
    expect(usage.data.find((r: any) => r.key === "fake-model")).toMatchObject({ model_calls: 2, total_tokens: 36 });
    const again = await http(gw(), "GET", "/v1/billing/usage", { token });
    expect(again.body.totals).toEqual(usage.totals);
  }, 180_000);

  test("one trace shows the run end to end across the split roles (OTLP)", async () => {
    expect(journeyRunId).not.toBe("");
    const find = (spans: ReceivedSpan[], service: string, name: string | RegExp) =>
      spans.find((s) => s.service === service && (typeof name === "string" ? s.name === name : name.test(s.name)));
    // The request, the create, both model calls and the tool call have been exported (each process on its own timer).
    const spans = await waitFor("the run's spans at the collector", () => {
      const t = otlp.trace(CALLER_TRACE);
      const done =
        t.filter((s) => s.service === "agentos-worker" && s.name.startsWith("chat ")).length >= 2 &&
        find(t, "agentos-tools", "rpc tools.execute") &&
        find(t, "agentos-gateway", "POST /v1/threads/:id/runs") &&
        find(t, "agentos-agents", "rpc agents.createRun");
      return done ? t : null;
    }, 30_000);
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const parentOf = (s: ReceivedSpan | undefined) => (s?.parentSpanId ? byId.get(s.parentSpanId) : undefined);

    const request = find(spans, "agentos-gateway", "POST /v1/threads/:id/runs");
    expect(request?.parentSpanId).toBe(CALLER_SPAN);
    expect(request?.attributes).toMatchObject({ "http.route": "/v1/threads/:id/runs", "http.response.status_code": 201 });
    const createClient = find(spans, "agentos-gateway", "rpc agents.createRun");
    expect(parentOf(createClient)).toBe(request);
    const createServer = find(spans, "agentos-agents", "rpc agents.createRun");
    expect(parentOf(createServer)).toBe(createClient);
    // The worker continues the trace from the run row.
    const run = find(spans, "agentos-worker", "run");
    expect(run?.attributes).toMatchObject({ "agentos.run_id": journeyRunId });
    expect(parentOf(run)).toBe(createServer);
    const chats = spans.filter((s) => s.service === "agentos-worker" && s.name === "chat fake-model");
    expect(chats).toHaveLength(2);
    for (const chat of chats) expect(parentOf(chat)).toBe(run);
    expect(chats.map((c) => c.attributes["gen_ai.usage.input_tokens"]).sort()).toEqual([11, 13]);
    const toolSpan = find(spans, "agentos-worker", "tool lookup");
    expect(parentOf(toolSpan)).toBe(run);
    expect(toolSpan?.attributes).toMatchObject({ "agentos.tool.kind": "http", "agentos.tool.outcome": "ok" });
    const executeClient = find(spans, "agentos-worker", "rpc tools.execute");
    expect(parentOf(executeClient)).toBe(toolSpan);
    expect(parentOf(find(spans, "agentos-tools", "rpc tools.execute"))).toBe(executeClient);
    // Domain events relayed from the run's writes, and their intake by notify, join the trace.
    const relay = await waitFor("a relayed event and its intake", () => {
      const t = otlp.trace(CALLER_TRACE);
      const r = t.find((s) => s.name === "outbox relay run.completed");
      return r && t.some((s) => s.service === "agentos-notify" && s.name === "notify intake run.completed" && s.parentSpanId === r.spanId) ? r : null;
    }, 30_000);
    expect(relay.kind).toBe(4); // PRODUCER
    // The webhook delivery of run.completed is a span of the same trace, child of the intake.
    await waitFor("the webhook delivery span", () => {
      const t = otlp.trace(CALLER_TRACE);
      const intake = t.find((s) => s.name === "notify intake run.completed");
      return t.find((s) => s.service === "agentos-notify" && s.name === "webhook deliver run.completed" && s.parentSpanId === intake?.spanId && s.attributes["http.response.status_code"] === 200);
    }, 30_000);
    // Every span of the trace hangs off the caller's span: one tree, no orphan. Each process
    // exports on its own timer, so a child (notify's intake) can reach the collector before its
    // parent (the relay's span): wait until no parent is missing, then check the whole tree.
    const rootOf = (all: ReceivedSpan[]) => {
      const ids = new Map(all.map((s) => [s.spanId, s]));
      return (s: ReceivedSpan) => {
        let top = s;
        while (top.parentSpanId && ids.has(top.parentSpanId)) top = ids.get(top.parentSpanId)!;
        return top.parentSpanId;
      };
    };
    const all = await waitFor("every span's parent at the collector", () => {
      const t = otlp.trace(CALLER_TRACE);
      const root = rootOf(t);
      return t.every((s) => root(s) === CALLER_SPAN) ? t : null;
    }, 10_000).catch(() => otlp.trace(CALLER_TRACE));
    const root = rootOf(all);
    for (const s of all) expect([s.service, s.name, root(s)]).toEqual([s.service, s.name, CALLER_SPAN]);
  }, 60_000);
});
