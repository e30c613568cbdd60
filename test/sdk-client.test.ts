/**
 * The SDK (sdk/client.ts, sdk/webhooks.ts) against the compiled binary on the embedded default:
 * the example program end to end (signup → agent → thread → streamed run → waited run →
 * messages → steps → usage), token refresh on token_expired with rotating refresh tokens,
 * pagination iterators (and `before`), a run stream that loses its connection and resumes from
 * the last seq, runs.wait, and a real webhook delivery verified with the SDK. The SDK and the
 * example type-check with `tsc --strict` on their own (sdk/tsconfig.json: no Bun or Node types).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { quickstart } from "../examples/sdk-quickstart";
import { createAgentOS, type RunEvent } from "../sdk/client";
import { SIGNATURE_HEADER, verifyWebhook } from "../sdk/webhooks";
import { signPayload } from "../src/roles/notify/signature";
import { uniqueName } from "./support/backends";
import { REPO, startChild, type ChildProcess } from "./support/binary";
import { startFakeModel, type FakeModel } from "./support/fake-model";

const TOKEN_TTL_S = 2;

describe("the SDK against the compiled binary [embedded]", () => {
  let fake: FakeModel;
  let child: ChildProcess;
  let dataDir: string;
  const email = () => `${uniqueName("sdk")}@example.com`;

  beforeAll(async () => {
    fake = await startFakeModel();
    dataDir = mkdtempSync(join(tmpdir(), "agentos-sdk-"));
    child = await startChild(["serve", `--data-dir=${dataDir}`], { env: { MODEL_BASE_URL: fake.url, ACCESS_TOKEN_TTL: String(TOKEN_TTL_S), AGENTOS_WEBHOOK_RETRY_BASE_MS: "50" } });
  }, 180_000);
  afterAll(async () => {
    await child?.stop();
    fake?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test("sdk/ and the example program type-check with tsc --strict", () => {
    const tsc = Bun.spawnSync([process.execPath, join(REPO, "node_modules/typescript/bin/tsc"), "-p", join(REPO, "sdk/tsconfig.json")], { cwd: REPO, stdout: "pipe", stderr: "pipe" });
    expect(`${tsc.stdout}${tsc.stderr}`).toBe("");
    expect(tsc.exitCode).toBe(0);
  }, 60_000);

  test("the example: signup → agent → thread → streamed run → waited run → messages → steps → usage", async () => {
    fake.reset();
    fake.script({ content: "Hello there, friend", chunkSize: 4, chunkDelayMs: 10 }, { content: "Hello again." });
    const lines: string[] = [];
    const r = await quickstart(child.url, email(), "correct horse battery", (l) => lines.push(l));
    expect(r.answer).toBe("Hello there, friend");
    expect(r.events[0].type).toBe("run.created");
    expect(r.events.at(-1)!.type).toBe("run.completed");
    expect(r.events.map((e) => e.seq)).toEqual(r.events.map((_, i) => i + 1));
    expect(r.run.status).toBe("completed");
    expect(r.run.usage.estimated).toBe(false);
    expect(r.run.cost_cents).toBeGreaterThan(0);
    expect(r.messages.map((m) => [m.role, m.content])).toEqual([["user", "Say hello."], ["assistant", "Hello there, friend"], ["user", "Again."], ["assistant", "Hello again."]]);
    expect(r.steps.map((s) => s.kind)).toEqual(["model_call"]);
    expect(Number(r.usage.totals.total_tokens)).toBeGreaterThan(0);
    expect(lines).toHaveLength(3);
  }, 60_000);

  test("an expired access token is refreshed once (the refresh token rotates), concurrent calls included", async () => {
    let refreshes = 0;
    const api = createAgentOS({
      baseUrl: child.url,
      fetch: ((req: Request) => {
        if (req.url.endsWith("/v1/auth/refresh")) refreshes++;
        return fetch(req);
      }) as typeof fetch,
    });
    await api.signup(email(), "correct horse battery");
    const first = api.session()!;
    await api.agents.create({ name: "a", model: "fake-model" });
    await Bun.sleep(TOKEN_TTL_S * 1000 + 1100);
    const [agents, threads] = await Promise.all([api.agents.list(), api.threads.list()]);
    expect([agents.data.length, threads.data.length]).toEqual([1, 0]);
    expect(refreshes).toBe(1);
    expect(api.session()!.refreshToken).not.toBe(first.refreshToken);
  }, 30_000);

  test("pagination: iterate() follows next_cursor; before pages backwards", async () => {
    const api = createAgentOS({ baseUrl: child.url });
    await api.signup(email(), "correct horse battery");
    const made = [];
    for (let i = 0; i < 5; i++) made.push((await api.threads.create({ metadata: { i } })).id);
    const seen = [];
    for await (const thread of api.threads.iterate({ limit: 2 })) seen.push(thread.id);
    expect(seen).toEqual(made);
    const earlier = await api.threads.list({ before: made[4], limit: 2 });
    expect([earlier.data.map((t) => t.id), earlier.has_more, earlier.next_cursor]).toEqual([[made[2], made[3]], true, made[2]]);
    expect((await api.threads.update(made[0], { metadata: { renamed: true } })).metadata).toEqual({ renamed: true });
  }, 30_000);

  test("runs.stream(): a dropped connection resumes from the last seq (Last-Event-ID), nothing lost or repeated", async () => {
    // The first events response is cut after two events, as a flaky network would.
    const resumedWith: (string | null)[] = [];
    let cut = false;
    const flaky = (async (req: Request) => {
      const res = await fetch(req);
      if (!/\/v1\/runs\/[^/]+\/events/.test(req.url)) return res;
      resumedWith.push(req.headers.get("last-event-id"));
      if (cut || !res.body) return res;
      cut = true;
      return new Response(cutAfterEvents(res.body, 2), { status: res.status, headers: res.headers });
    }) as typeof fetch;
    const api = createAgentOS({ baseUrl: child.url, fetch: flaky });
    await api.signup(email(), "correct horse battery");
    const agent = await api.agents.create({ name: "a", model: "fake-model" });
    fake.reset();
    fake.script({ content: "one two three four five six", chunkSize: 3, chunkDelayMs: 30 });
    const run = await api.threads.createAndRun({ agent_id: agent.id, input: "count", metadata: { via: "sdk" } });
    const events: RunEvent[] = [];
    for await (const e of api.runs.stream(run.id, { reconnectDelayMs: 20 })) events.push(e);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.at(-1)!.type).toBe("run.completed");
    expect(resumedWith.length).toBeGreaterThanOrEqual(2);
    expect(resumedWith[1]).toBe("2");
    // The run has ended: a later stream() from its last seq ends at once (the server answers 204).
    const after: RunEvent[] = [];
    for await (const e of api.runs.stream(run.id, { after: events.at(-1)!.seq })) after.push(e);
    expect(after).toEqual([]);

    const waited = await api.runs.wait(run.id);
    expect([waited.status, waited.metadata]).toEqual(["completed", { via: "sdk" }]);
    const listed = [];
    for await (const r of api.runs.iterate({ status: "completed", agent_id: agent.id })) listed.push(r.id);
    expect(listed).toEqual([run.id]);

    // createAndStream(): the POST's own stream is cut; the rest comes from the events endpoint.
    let resumed = 0;
    const cutPost = (async (req: Request) => {
      const res = await fetch(req);
      if (req.url.includes("/events")) resumed++;
      if (req.method !== "POST" || !req.url.endsWith("/runs") || !res.body) return res;
      return new Response(cutAfterEvents(res.body, 3), { status: res.status, headers: res.headers });
    }) as typeof fetch;
    const api2 = createAgentOS({ baseUrl: child.url, fetch: cutPost });
    api2.setSession(api.session());
    fake.script({ content: "resumed after the cut", chunkSize: 3, chunkDelayMs: 30 });
    const thread = await api2.threads.create();
    const streamed: RunEvent[] = [];
    for await (const e of api2.runs.createAndStream(thread.id, { agent_id: agent.id, input: "go" }, { reconnectDelayMs: 20 })) streamed.push(e);
    expect(streamed.map((e) => e.seq)).toEqual(streamed.map((_, i) => i + 1));
    expect(streamed.at(-1)!.type).toBe("run.completed");
    expect(streamed.filter((e) => e.type === "message.delta").map((e) => e.data.delta).join("")).toBe("resumed after the cut");
    expect(resumed).toBeGreaterThanOrEqual(1);
  }, 60_000);

  test("a real webhook delivery verifies with sdk/webhooks.ts; a tampered or stale one does not", async () => {
    const received: { header: string | null; body: string }[] = [];
    const receiver = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        received.push({ header: req.headers.get(SIGNATURE_HEADER), body: await req.text() });
        return new Response("ok");
      },
    });
    try {
      const api = createAgentOS({ baseUrl: child.url });
      await api.signup(email(), "correct horse battery");
      const hook = await api.POST("/v1/webhooks", { body: { url: `http://127.0.0.1:${receiver.port}/hook`, event_types: ["agent.created"] } });
      const secret = (hook.data as { secret: string }).secret;
      await api.agents.create({ name: "hooked", model: "fake-model" });
      for (let i = 0; i < 200 && received.length === 0; i++) await Bun.sleep(50);
      const [delivery] = received;
      expect(delivery).toBeDefined();
      expect(await verifyWebhook({ header: delivery.header, body: delivery.body, secret })).toBe(true);
      expect(await verifyWebhook({ header: delivery.header, body: `${delivery.body} `, secret })).toBe(false);
      expect(await verifyWebhook({ header: delivery.header, body: delivery.body, secret: "wrong" })).toBe(false);
      expect(await verifyWebhook({ header: delivery.header, body: delivery.body, secret, now: Date.now() + 301_000 })).toBe(false);
      expect(await verifyWebhook({ header: null, body: delivery.body, secret })).toBe(false);
      // The same scheme as the server's signer.
      expect(await verifyWebhook({ header: signPayload("s3cret", "{}"), body: "{}", secret: "s3cret" })).toBe(true);
    } finally {
      receiver.stop(true);
    }
  }, 30_000);
});

/** The SSE body up to (and including) its `n`th event (comments aside), then an error, like a dropped connection. */
function cutAfterEvents(body: ReadableStream<Uint8Array>, n: number): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let sent = false;
  return new ReadableStream({
    async pull(controller) {
      // Erroring drops what is still queued: fail on the read after the events went out.
      if (sent) return controller.error(new TypeError("network connection lost"));
      const { value, done } = await reader.read();
      if (done) return controller.close();
      text += decoder.decode(value, { stream: true });
      const blocks = text.split("\n\n").slice(0, -1);
      const nth = blocks.map((b, i) => (/^id:/m.test(b) ? i : -1)).filter((i) => i >= 0)[n - 1];
      if (nth === undefined) return;
      controller.enqueue(new TextEncoder().encode(`${blocks.slice(0, nth + 1).join("\n\n")}\n\n`));
      reader.cancel().catch(() => {});
      sent = true;
    },
  });
}
