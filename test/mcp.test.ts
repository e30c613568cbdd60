/**
 * Issue 13, items 1, 2 and 6 on the compiled binary (embedded default and real PostgreSQL +
 * Redis + NATS): remote MCP servers as tool sources, tested against a real MCP server built
 * with the official SDK (test/support/mcp-server.ts) — including one that hangs and one that
 * answers 10 MB —; AgentOS as an MCP server, called with the SDK's client; a tool's signing
 * secret rotated with a grace period; JSON Schema 2020-12 parameters.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestDatabase, describeReal, dropNatsNamespace, dropRedisNamespace, REAL_URLS, uniqueName } from "./support/backends";
import { apiClient } from "./support/api";
import { ensureBinary, startChild, type ChildProcess } from "./support/binary";
import { startFakeModel, type FakeModel } from "./support/fake-model";
import { TEST_JWT_SECRET } from "./support/harness";
import { MCP_TOKEN, startMcpServer, type McpTestServer } from "./support/mcp-server";
import { runApi, signupUnlimited } from "./support/testkit";
import { waitFor } from "./support/wait";

interface Target {
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Resident memory of a process in MiB (Linux). */
const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;

/** `t=<unix>,v1=<hex>[,v1=<hex>…]` verified as the README tells tool servers to: any v1 made with `secret`. */
function signedWith(secret: string, header: string | null, body: string): boolean {
  const parts = (header ?? "").split(",").map((kv) => kv.split("=", 2) as [string, string]);
  const t = parts.find(([k]) => k === "t")?.[1];
  if (!t || Math.abs(Date.now() / 1000 - Number(t)) > 300) return false;
  const expected = new Bun.CryptoHasher("sha256", secret).update(`${t}.${body}`).digest("hex");
  return parts.some(([k, v]) => k === "v1" && v === expected);
}

function suite(start: (modelUrl: string) => Promise<Target>) {
  let target: Target;
  let mcp: McpTestServer;
  let fake: FakeModel;
  let api: ReturnType<typeof runApi>;
  let server: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    mcp = startMcpServer();
    fake = await startFakeModel();
    target = await start(fake.url);
    server = apiClient(target.child.url);
    const t = { url: target.child.url, request: (m: string, p: string, o?: any) => server.call(m, p, o) };
    const alice = await signupUnlimited({ ...t, signup: async () => ({ ...(await server.signup()), refresh: "" }) });
    api = runApi(t, alice.token);
  }, 120_000);
  afterAll(async () => {
    await target?.stop();
    mcp?.stop();
    fake?.stop();
  }, 30_000);

  const register = (body: Record<string, unknown>) => api.call("POST", "/v1/mcp-servers", body);
  const invoke = (toolId: string, args: unknown) => api.ok("POST", `/v1/tools/${toolId}/invoke`, { arguments: args });

  describe("MCP servers as tool sources", () => {
    let srv: any;
    const tool = (name: string) => srv.tools.find((t: any) => t.mcp_name === name);

    test("registering runs initialize + tools/list and registers each tool as kind mcp (headers sealed, never returned)", async () => {
      const res = await register({ name: "demo", url: `${mcp.url}/auth`, headers: { Authorization: `Bearer ${MCP_TOKEN}` }, requires_approval: ["add"] });
      expect(res.status).toBe(201);
      srv = res.body;
      expect(srv.id).toMatch(/^mcp_/);
      expect(srv.server_info).toEqual({ name: "agentos-test-mcp", version: "1.0.0" });
      expect(srv.header_names).toEqual(["Authorization"]);
      expect(srv.tools.map((t: any) => t.name).sort()).toEqual(["demo__add", "demo__echo", "demo__fail", "demo__huge", "demo__slow", "demo__tuple"]);
      expect(tool("add").requires_approval).toBe(true);
      expect(tool("echo").requires_approval).toBe(false);
      expect(srv.skipped).toEqual([]);
      const got = await api.call("GET", `/v1/mcp-servers/${srv.id}`);
      const listed = await api.call("GET", "/v1/mcp-servers");
      for (const r of [res, got, listed]) expect(JSON.stringify(r.body)).not.toContain(MCP_TOKEN);
      expect(listed.body.data.map((s: any) => s.id)).toContain(srv.id);
      const asTool = await api.ok("GET", `/v1/tools/${tool("tuple").id}`);
      expect(asTool.kind).toBe("mcp");
      expect(asTool.parameters.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
      expect(JSON.stringify(asTool)).not.toContain(MCP_TOKEN);
      // Without the header the server refuses: nothing is stored.
      const refused = await register({ name: "noauth", url: `${mcp.url}/auth` });
      expect([refused.status, refused.body.error.code]).toEqual([422, "mcp_server_failed"]);
      expect(refused.body.error.message).toContain("401");
    });

    test("a call is tools/call with validated arguments; text, JSON and isError map to the tool output", async () => {
      mcp.calls.length = 0;
      expect(await invoke(tool("echo").id, { text: "hi" })).toMatchObject({ ok: true, output: "echo: hi" });
      expect(await invoke(tool("add").id, { a: 2, b: 3 })).toMatchObject({ ok: true, output: { sum: 5 } });
      expect(await invoke(tool("fail").id, {})).toMatchObject({ ok: false, error: { code: "tool_error", message: "the backend is down" } });
      expect(mcp.calls.map((c) => [c.name, c.authorization])).toEqual([["echo", `Bearer ${MCP_TOKEN}`], ["add", `Bearer ${MCP_TOKEN}`], ["fail", `Bearer ${MCP_TOKEN}`]]);
      // Invalid arguments never reach the server; 2020-12 keywords (prefixItems, items: false) are enforced.
      expect((await invoke(tool("add").id, { a: "two", b: 3 })).error.code).toBe("invalid_arguments");
      expect((await invoke(tool("tuple").id, { point: [1, 2, 3] })).error.code).toBe("invalid_arguments");
      expect(await invoke(tool("tuple").id, { point: [1, 2] })).toMatchObject({ ok: true, output: "point [1,2]" });
      expect(mcp.calls).toHaveLength(4);
    });

    test("a tool that answers 10 MB is an error result within the 1 MiB budget; a slow one times out", async () => {
      const before = rssMiB(target.child.proc.pid);
      const huge = await invoke(tool("huge").id, {});
      expect(huge).toMatchObject({ ok: false, error: { code: "tool_response_too_large" } });
      const grown = rssMiB(target.child.proc.pid) - before;
      console.log(`measured: a 10 MB tools/call reply → ${huge.error.code} in ${huge.duration_ms} ms, RSS +${grown.toFixed(1)} MiB`);
      expect(grown).toBeLessThan(64);
      const patched = await api.ok("PATCH", `/v1/mcp-servers/${srv.id}`, { timeout_ms: 1000 });
      expect(patched.timeout_ms).toBe(1000);
      srv = patched;
      mcp.slowMs = 5000;
      const slow = await invoke(tool("slow").id, {});
      expect(slow).toMatchObject({ ok: false, error: { code: "tool_timeout" } });
      expect(slow.duration_ms).toBeLessThan(4500);
    });

    test("a server that hangs, or lists 10 MB, is refused within its timeout and budget while the API keeps answering", async () => {
      const started = Date.now();
      const hanging = register({ name: "hang", url: `${mcp.url}/hang`, timeout_ms: 1500 });
      const health = await fetch(`${target.child.url}/healthz`);
      expect(health.status).toBe(200);
      const hung = await hanging;
      expect([hung.status, hung.body.error.code, hung.body.error.details.reason]).toEqual([422, "mcp_server_failed", "tool_timeout"]);
      const hungMs = Date.now() - started;
      expect(hungMs).toBeLessThan(10_000);
      const before = rssMiB(target.child.proc.pid);
      const listStarted = Date.now();
      const big = await register({ name: "big", url: `${mcp.url}/huge-list` });
      expect([big.status, big.body.error.details.reason]).toEqual([422, "tool_response_too_large"]);
      const grown = rssMiB(target.child.proc.pid) - before;
      console.log(`measured: hanging server (timeout_ms 1500) refused after ${hungMs} ms; 10 MB tools/list refused after ${Date.now() - listStarted} ms, RSS +${grown.toFixed(1)} MiB`);
      expect(grown).toBeLessThan(64);
      const names = (await api.ok("GET", "/v1/mcp-servers")).data.map((s: any) => s.name);
      expect(names).not.toContain("hang");
      expect(names).not.toContain("big");
    });

    test("an agent attaches mcp tools like any tool: calls run, metered; requires_approval pauses the run", async () => {
      fake.reset();
      const agent = await api.agent({ tools: [tool("echo").id, tool("add").id] });
      const thread = await api.thread();
      fake.script({ tool_calls: [{ name: "demo__echo", arguments: { text: "from the model" }, id: "c1" }] }, { content: "Echoed." });
      const run = await api.run(thread.id, { agent_id: agent.id, input: "Echo something" });
      expect((await api.wait(run.id)).status).toBe("completed");
      const steps = await api.steps(run.id);
      const call = steps.find((s) => s.kind === "tool_call");
      expect(call.output).toBe("echo: from the model");
      expect(JSON.stringify(fake.requests[1].body.messages)).toContain("echo: from the model");
      // Usage is recorded from the run's events (outbox → ledger), a few ms after the run may have ended.
      const usage = await waitFor("the tool call in the usage totals", async () => {
        const u = await api.ok("GET", "/v1/billing/usage");
        return u.totals.tool_calls >= 1 && u;
      });
      expect(usage.totals.tool_calls).toBeGreaterThanOrEqual(1);

      fake.script({ tool_calls: [{ name: "demo__add", arguments: { a: 1, b: 1 }, id: "c2" }] }, { content: "Two." });
      const paused = await api.run(thread.id, { agent_id: agent.id, input: "Add" });
      const waiting = await api.wait(paused.id);
      expect(waiting.status).toBe("requires_action");
      expect(waiting.required_action.tool_calls[0].action).toBe("approval");
      await api.ok("POST", `/v1/runs/${paused.id}/tool_outputs`, { tool_outputs: [{ tool_call_id: "c2", approve: true }] });
      expect((await api.wait(paused.id)).status).toBe("completed");
      expect(mcp.calls.at(-1)).toMatchObject({ name: "add", arguments: { a: 1, b: 1 } });
    });

    test("refresh follows the server: new tools registered, vanished ones removed and detached; allowed_tools filters", async () => {
      const agent = await api.agent({ tools: [tool("fail").id] });
      mcp.tools = mcp.tools.filter((t) => t.name !== "fail").concat([{ name: "fresh", description: "new", inputSchema: { type: "object", properties: {} } }]);
      const refreshed = await api.ok("POST", `/v1/mcp-servers/${srv.id}/refresh`);
      const mcpNames = refreshed.tools.map((t: any) => t.mcp_name);
      expect(mcpNames).toContain("fresh");
      expect(mcpNames).not.toContain("fail");
      expect(refreshed.tools.find((t: any) => t.mcp_name === "echo").id).toBe(tool("echo").id); // same id: agents keep it
      expect((await api.ok("GET", `/v1/agents/${agent.id}`)).tools).toEqual([]);
      const only = await api.ok("PATCH", `/v1/mcp-servers/${srv.id}`, { allowed_tools: ["echo", "add"], requires_approval: "all" });
      expect(only.tools.map((t: any) => [t.mcp_name, t.requires_approval]).sort()).toEqual([["add", true], ["echo", true]]);
      expect(only.skipped.map((s: any) => s.reason)).toContain("not in allowed_tools");
      srv = only;
      // mcp tools are managed through their server.
      const direct = await api.call("PATCH", `/v1/tools/${tool("echo").id}`, { description: "x" });
      expect([direct.status, direct.body.error.code]).toEqual([400, "mcp_tool_managed"]);
    });

    test("bad input is a 4xx naming the field; delete is refused while agents use its tools unless forced", async () => {
      const bad = await register({ name: "bad name", url: mcp.url });
      expect(bad.status).toBe(400);
      expect((await register({ name: "x", url: "ftp://example.com" })).body.error.code).toBe("invalid_mcp_server");
      expect((await register({ name: "x", url: `${mcp.url}/mcp`, headers: { "Mcp-Session-Id": "1" } })).body.error.message).toContain("headers");
      expect((await register({ name: "demo", url: `${mcp.url}/mcp` })).status).toBe(409);
      expect((await api.call("POST", "/v1/tools", { name: "t", kind: "mcp" })).body.error.code).toBe("invalid_tool_kind");
      const agent = await api.agent({ tools: [tool("echo").id] });
      const inUse = await api.call("DELETE", `/v1/mcp-servers/${srv.id}`);
      expect([inUse.status, inUse.body.error.code]).toEqual([409, "mcp_server_in_use"]);
      const gone = await api.ok("DELETE", `/v1/mcp-servers/${srv.id}?force=true`);
      expect(gone).toMatchObject({ deleted: true, tools_deleted: 2, detached_from: 2 }); // this agent and the one of the run test
      expect((await api.call("GET", `/v1/tools/${tool("echo").id}`)).status).toBe(404);
      expect((await api.ok("GET", `/v1/agents/${agent.id}`)).tools).toEqual([]);
    });
  });

  describe("AgentOS as an MCP server", () => {
    const connect = async (authorization?: string) => {
      const client = new Client({ name: "test-client", version: "1.0.0" });
      const transport = new StreamableHTTPClientTransport(new URL(`${target.child.url}/v1/mcp`), { requestInit: { headers: authorization ? { authorization } : {} } });
      await client.connect(transport);
      return client;
    };

    test("an MCP client with an API key sees the agents as ask_<agent> tools and gets a run's final answer, progress streamed", async () => {
      const key = (await api.ok("POST", "/v1/api-keys", { name: "mcp client" })).key;
      const agent = await api.agent({ name: "Helper Bot" });
      const client = await connect(`Bearer ${key}`);
      try {
        const { tools } = await client.listTools();
        const ask = tools.find((t) => t.name === "ask_Helper_Bot");
        expect(ask?.description).toContain(agent.id);
        expect(ask?.inputSchema.required).toEqual(["input"]);
        fake.reset();
        fake.script({ content: "The answer is forty-two.", chunkSize: 4, chunkDelayMs: 30 });
        const progress: { progress: number; message?: string }[] = [];
        const res: any = await client.callTool({ name: "ask_Helper_Bot", arguments: { input: "What is it?" } }, undefined, { onprogress: (p) => progress.push(p), timeout: 60_000 });
        expect(res.isError).toBeFalsy();
        expect(res.content).toEqual([{ type: "text", text: "The answer is forty-two." }]);
        expect(res.structuredContent).toMatchObject({ answer: "The answer is forty-two.", status: "completed" });
        expect(progress.length).toBeGreaterThan(1);
        expect(progress.map((p) => p.message ?? "").join("")).toContain("forty-two");
        expect(progress.map((p) => p.progress)).toEqual(progress.map((_, i) => i + 1));
        // thread_id continues the conversation: the model sees the first exchange.
        fake.script({ content: "Yes, forty-two." });
        const again: any = await client.callTool({ name: "ask_Helper_Bot", arguments: { input: "Sure?", thread_id: res.structuredContent.thread_id } });
        expect(again.structuredContent.answer).toBe("Yes, forty-two.");
        expect(JSON.stringify(fake.requests.at(-1)!.body.messages)).toContain("The answer is forty-two.");
        const messages = await api.messages(res.structuredContent.thread_id);
        expect(messages.map((m) => m.role)).toEqual(["user", "assistant", "user", "assistant"]);
        // A failed run and an unknown agent are error results, not protocol failures.
        fake.script({ status: 400, body: { error: { message: "bad request to the model" } } });
        const failed: any = await client.callTool({ name: "ask_Helper_Bot", arguments: { input: "Fail" } });
        expect(failed.isError).toBe(true);
        expect(failed.content[0].text).toContain("failed");
        const unknown: any = await client.callTool({ name: "ask_nobody", arguments: { input: "x" } });
        expect(unknown.isError).toBe(true);
      } finally {
        await client.close();
      }
    });

    test("without a valid API key the endpoint answers 401; GET is 405", async () => {
      await expect(connect()).rejects.toThrow(/unauthorized/);
      await expect(connect("Bearer aos_wrong")).rejects.toThrow(/unauthorized/);
      const init = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } } };
      const raw = await fetch(`${target.child.url}/v1/mcp`, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream" }, body: JSON.stringify(init) });
      expect(raw.status).toBe(401);
      const get = await fetch(`${target.child.url}/v1/mcp`, { headers: { accept: "text/event-stream" } });
      expect(get.status).toBe(405);
    });
  });

  describe("tool signing secrets and schemas", () => {
    test("rotate-secret: calls carry a v1 signature per valid secret until the grace period ends", async () => {
      const received: { header: string | null; body: string }[] = [];
      const tools = Bun.serve({
        hostname: "127.0.0.1",
        port: 0,
        async fetch(req) {
          received.push({ header: req.headers.get("x-agentos-signature"), body: await req.text() });
          return Response.json({ ok: true });
        },
      });
      try {
        const created = await api.tool({ name: uniqueName("signed"), kind: "http", config: { url: `http://127.0.0.1:${tools.port}/` } });
        const old = created.signing_secret;
        const rotated = await api.ok("POST", `/v1/tools/${created.id}/rotate-secret`, { grace_seconds: 3600 });
        expect(rotated.signing_secret).toMatch(/^tsk_/);
        expect(rotated.signing_secret).not.toBe(old);
        expect(Date.parse(rotated.previous_secret_expires_at) - Date.now()).toBeGreaterThan(3500_000);
        await invoke(created.id, {});
        const during = received.at(-1)!;
        expect(signedWith(old, during.header, during.body)).toBe(true);
        expect(signedWith(rotated.signing_secret, during.header, during.body)).toBe(true);
        // The secret is never shown again, and a rotation without grace drops the old one at once.
        expect(JSON.stringify(await api.ok("GET", `/v1/tools/${created.id}`))).not.toContain(rotated.signing_secret);
        const now = await api.ok("POST", `/v1/tools/${created.id}/rotate-secret`, { grace_seconds: 0 });
        expect(now.previous_secret_expires_at).toBeNull();
        await invoke(created.id, {});
        const after = received.at(-1)!;
        expect(signedWith(now.signing_secret, after.header, after.body)).toBe(true);
        expect(signedWith(rotated.signing_secret, after.header, after.body)).toBe(false);
        expect(after.header!.split(",").filter((p) => p.startsWith("v1="))).toHaveLength(1);
        // Default body: one day of grace.
        const defaulted = await api.ok("POST", `/v1/tools/${created.id}/rotate-secret`);
        expect(Date.parse(defaulted.previous_secret_expires_at) - Date.now()).toBeGreaterThan(23 * 3600_000);
        const tooLong = await api.call("POST", `/v1/tools/${created.id}/rotate-secret`, { grace_seconds: 8 * 24 * 3600 });
        expect(tooLong.status).toBe(400);
      } finally {
        tools.stop(true);
      }
    });

    test("parameters may be JSON Schema 2020-12 (by $schema) as well as draft-07", async () => {
      const schema = { $schema: "https://json-schema.org/draft/2020-12/schema", type: "object", properties: { pair: { type: "array", prefixItems: [{ type: "string" }, { type: "integer" }], items: false } }, required: ["pair"] };
      const created = await api.tool({ name: uniqueName("pair"), kind: "client", parameters: schema });
      expect(created.parameters.$schema).toBe(schema.$schema);
      const unknown = await api.call("POST", "/v1/tools", { name: uniqueName("x"), kind: "client", parameters: { $schema: "https://example.com/schema", type: "object" } });
      expect([unknown.status, unknown.body.error.code]).toEqual([400, "invalid_parameters_schema"]);
    });
  });
}

beforeAll(() => {
  ensureBinary();
}, 180_000);

describe("issue 13 on the compiled binary, embedded default", () =>
  suite(async (modelUrl) => {
    const dataDir = mkdtempSync(join(tmpdir(), "agentos-mcp-"));
    const child = await startChild(["serve", `--data-dir=${dataDir}`], { env: { MODEL_BASE_URL: modelUrl, AGENTOS_RECONCILE_INTERVAL_MS: "200" } });
    return {
      child,
      async stop() {
        await child.stop();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  }));

await describeReal("issue 13 on the compiled binary", () =>
  suite(async (modelUrl) => {
    const database = await createTestDatabase();
    const namespace = uniqueName("t");
    const child = await startChild(["serve", `--database-url=${database.url}`, `--redis-url=${REAL_URLS.redis}`, `--nats-url=${REAL_URLS.nats}`, `--namespace=${namespace}`], {
      env: { JWT_SECRET: TEST_JWT_SECRET, AGENTOS_SECRET_KEY: "mcp-test-secret-key-that-is-long-enough-0123", MODEL_BASE_URL: modelUrl, AGENTOS_RECONCILE_INTERVAL_MS: "200" },
    });
    return {
      child,
      async stop() {
        await child.stop();
        await database.drop();
        await dropNatsNamespace(namespace).catch(() => {});
        await dropRedisNamespace(namespace).catch(() => {});
      },
    };
  }));
