/**
 * kill -9 on the embedded default: `bun run src/main.ts serve` (PGlite + in-process queue) is
 * killed while a run waits on its second model call; the next start on the same data dir
 * resumes the run from its last persisted step — the completed tool call is not executed again.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startChild, type ChildProcess } from "./support/binary";
import { startFakeModel, type FakeModel } from "./support/fake-model";
import { TEST_RUN_ENV } from "./support/run-suite";
import { runApi, startToolServer, type ToolServer } from "./support/testkit";

let fake: FakeModel;
let tools: ToolServer;
let dataDir: string;
const children: ChildProcess[] = [];

const start = () =>
  startChild(["serve", `--data-dir=${dataDir}`, `--model-base-url=${fake.url}`], {
    cmd: [process.execPath, "run", "src/main.ts"],
    env: { ...TEST_RUN_ENV, LOG_LEVEL: "error" },
  }).then((c) => {
    children.push(c);
    return c;
  });

beforeAll(async () => {
  fake = await startFakeModel();
  tools = startToolServer();
  dataDir = mkdtempSync(join(tmpdir(), "agentos-crash-"));
});
afterAll(async () => {
  await Promise.all(children.map((c) => c.stop("SIGKILL").catch(() => {})));
  fake?.stop();
  tools?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

test("embedded: a run interrupted by kill -9 resumes at the next start without repeating its completed tool call", async () => {
  const first = await start();
  const request = (base: string) => async (method: string, path: string, o: { body?: unknown; token?: string; headers?: Record<string, string> } = {}) => {
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    if (o.body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(base + path, { method, headers, body: o.body === undefined ? undefined : JSON.stringify(o.body) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
  };
  const signup = await request(first.url)("POST", "/v1/auth/signup", { body: { email: "crash@example.com", password: "correct horse battery" } });
  expect(signup.status).toBe(201);
  const token = signup.body.access_token;
  const api1 = runApi({ url: first.url, request: request(first.url) }, token);
  const probe = await api1.tool({ name: "probe", kind: "http", config: { url: tools.url }, parameters: { type: "object", properties: {} } });
  const agent = await api1.agent({ tools: [probe.id] });
  const thread = await api1.thread();
  fake.script({ tool_calls: [{ name: "probe", arguments: {}, id: "only_once" }] }, { delayMs: 60_000, content: "never delivered" }, { content: "answer after restart" });
  const run = await api1.run(thread.id, { agent_id: agent.id, input: "survive a crash" });
  await fake.waitForRequests(2, 15_000);
  expect(tools.calls).toHaveLength(1);
  first.proc.kill("SIGKILL");
  await first.proc.exited;

  const second = await start();
  const api2 = runApi({ url: second.url, request: request(second.url) }, token);
  const done = await api2.wait(run.id, 30);
  expect(done.status).toBe("completed");
  expect(tools.calls.map((c) => c.tool_call_id)).toEqual(["only_once"]);
  expect(fake.requests).toHaveLength(3);
  expect((await api2.messages(thread.id)).at(-1).content).toBe("answer after restart");
  const steps = await api2.steps(run.id);
  expect(steps.map((s) => `${s.kind}:${s.status}`)).toEqual(["model_call:completed", "tool_call:completed", "model_call:completed"]);
}, 90_000);
