/**
 * The run event stream as a spec-following client sees it (the `eventsource` package, on the
 * compiled binary): the headers arrive at once on a quiet stream (`open` fires before any event
 * or keep-alive), and once a run has ended a reconnect with Last-Event-ID gets 204, so the client
 * stops instead of reconnecting every few seconds forever.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EventSource } from "eventsource";
import { startChild, type ChildProcess } from "./support/binary";
import { http } from "./support/cluster";
import { startFakeModel, type FakeModel } from "./support/fake-model";

let child: ChildProcess;
let fake: FakeModel;
let dataDir: string;
let token: string;
let agentId: string;

beforeAll(async () => {
  fake = await startFakeModel();
  dataDir = mkdtempSync(join(tmpdir(), "agentos-sse-"));
  child = await startChild(["serve", `--data-dir=${dataDir}`, `--model-base-url=${fake.url}`]);
  token = (await http(child.url, "POST", "/v1/auth/signup", { body: { email: "sse@example.com", password: "correct horse battery" } })).body.access_token;
  const tool = await http(child.url, "POST", "/v1/tools", { token, body: { name: "ask_user", kind: "client" } });
  agentId = (await http(child.url, "POST", "/v1/agents", { token, body: { name: "sse", model: "fake-model", tools: [tool.body.id] } })).body.id;
}, 60_000);

afterAll(async () => {
  await child?.stop();
  fake?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

/** An EventSource with the bearer token, counting the requests it makes. */
function open(url: string) {
  const requests: { status: number; lastEventId: string | null }[] = [];
  const source = new EventSource(url, {
    fetch: async (input, init) => {
      const headers = new Headers(init?.headers);
      headers.set("authorization", `Bearer ${token}`);
      const res = await fetch(input, { ...init, headers });
      requests.push({ status: res.status, lastEventId: headers.get("last-event-id") });
      return res;
    },
  });
  return { source, requests };
}

async function run(input: string) {
  const thread = (await http(child.url, "POST", "/v1/threads", { token, body: {} })).body;
  return (await http(child.url, "POST", `/v1/threads/${thread.id}/runs`, { token, body: { agent_id: agentId, input } })).body;
}

test("on a quiet stream `open` fires at once, before any event", async () => {
  fake.script({ tool_calls: [{ name: "ask_user", arguments: {}, id: "q1" }] });
  const r = await run("ask me");
  await http(child.url, "GET", `/v1/runs/${r.id}/wait?timeout_s=10`, { token });
  // Waiting in requires_action: after the replay nothing is written for a long while.
  const { source } = open(`${child.url}/v1/runs/${r.id}/events`);
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    source.onopen = () => resolve();
    source.onerror = (e) => reject(new Error(`stream error: ${(e as { message?: string }).message}`));
  });
  expect(performance.now() - t0).toBeLessThan(2_000);
  source.close();
});

test("after a run has ended the client stops reconnecting (204)", async () => {
  fake.script({ content: "done" });
  const r = await run("hi");
  const done = await http(child.url, "GET", `/v1/runs/${r.id}/wait?timeout_s=10`, { token });
  expect(done.body.status).toBe("completed");
  const { source, requests } = open(`${child.url}/v1/runs/${r.id}/events`);
  const seen: string[] = [];
  for (const type of ["run.created", "run.in_progress", "run.completed"]) source.addEventListener(type, (e) => seen.push(`${(e as MessageEvent).lastEventId}:${type}`));
  // The server ends the stream after run.completed; the client reconnects once with
  // Last-Event-ID, gets 204, and is closed for good.
  const deadline = Date.now() + 10_000;
  while (source.readyState !== EventSource.CLOSED && Date.now() < deadline) await Bun.sleep(50);
  expect(source.readyState).toBe(EventSource.CLOSED);
  expect(seen.at(-1)).toMatch(/:run\.completed$/);
  await Bun.sleep(4_000); // longer than the client's retry delay: no request follows
  expect(requests.map((q) => q.status)).toEqual([200, 204]);
  expect(requests[1].lastEventId).toBe(seen.at(-1)!.split(":")[0]);
}, 30_000);
