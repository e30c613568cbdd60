/**
 * The SSRF guard end to end: http tools, MCP servers and webhooks aimed at loopback (every spelling, and
 * a name that resolves to it) are refused — at registration when the host is an IP literal,
 * at every call otherwise — and the internal server is never reached; with
 * AGENTOS_ALLOW_PRIVATE_TARGETS=true the same targets work. Failures do not tell a closed port
 * from one that resets. On the compiled binary (with and without the setting), in-process on
 * the embedded default, and on the real backends.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeReal, uniqueName } from "./support/backends";
import { apiClient, type ApiClient } from "./support/api";
import { ensureBinary, startChild } from "./support/binary";
import { startTestProcess } from "./support/harness";
import { waitFor } from "./support/wait";

/** An "internal service" on loopback: it records every hit and answers with secrets. */
function startInternalService() {
  const hits: string[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      hits.push(new URL(req.url).pathname);
      await req.text();
      return Response.json({ secret: "internal-admin-token" });
    },
  });
  return { port: server.port!, hits, stop: () => server.stop(true) };
}

interface Target {
  api: ApiClient;
  stop(): Promise<void>;
}

beforeAll(() => {
  ensureBinary();
}, 180_000);

let resetter: Server;
let resetPort = 0;
beforeAll(async () => {
  resetter = createServer((s) => s.destroy()).listen(0, "127.0.0.1");
  await new Promise((r) => resetter.once("listening", r));
  resetPort = (resetter.address() as { port: number }).port;
});
afterAll(() => {
  resetter?.close();
});

const LOOPBACK_SPELLINGS = ["127.0.0.1", "127.1", "2130706433", "0x7f.1", "017700000001", "[::ffff:127.0.0.1]"];
const params = { type: "object", properties: {} };

function refusedSuite(start: () => Promise<Target>) {
  let t: Target;
  let user: Awaited<ReturnType<ApiClient["signup"]>>;
  let internal: ReturnType<typeof startInternalService>;
  beforeAll(async () => {
    internal = startInternalService();
    t = await start();
    user = await t.api.signup();
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
    internal?.stop();
  });

  const register = (url: string) => t.api.call("POST", "/v1/tools", { token: user.token, body: { name: uniqueName("tool"), kind: "http", config: { url }, parameters: params } });

  test("an http tool at a loopback IP literal, in any spelling, or a metadata address is refused at registration (400 naming config.url)", async () => {
    for (const host of [...LOOPBACK_SPELLINGS, "169.254.169.254", "[::1]", "10.0.0.1", "0"]) {
      const res = await register(`http://${host}:${internal.port}/admin`);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("invalid_tool_config");
      expect(res.body.error.message).toContain("`config.url`");
    }
    const ok = await register(`http://tools.example.com/x`);
    expect(ok.status).toBe(201);
    const patched = await t.api.call("PATCH", `/v1/tools/${ok.body.id}`, { token: user.token, body: { config: { url: `http://2130706433:${internal.port}/` } } });
    expect(patched.status).toBe(400);
    expect(patched.body.error.message).toContain("`config.url`");
    expect(internal.hits).toEqual([]);
  });

  test("an http tool at a name resolving to loopback registers, but every call is refused and never reaches it", async () => {
    const tool = await register(`http://localhost:${internal.port}/admin`);
    expect(tool.status).toBe(201);
    const res = await t.api.call("POST", `/v1/tools/${tool.body.id}/invoke`, { token: user.token, body: { arguments: {} } });
    expect(res.status).toBe(200);
    expect(res.body.ok).toBe(false);
    expect(res.body.error.code).toBe("target_refused");
    expect(JSON.stringify(res.body)).not.toContain("internal-admin-token");
    expect(res.body.error.message).not.toContain("127.0.0.1"); // the resolved address is not revealed
    expect(internal.hits).toEqual([]);
  });

  test("an MCP server at a loopback IP literal is refused (400 naming url); at a name resolving to loopback, listing it is refused and never reaches it", async () => {
    const registerMcp = (url: string) => t.api.call("POST", "/v1/mcp-servers", { token: user.token, body: { name: uniqueName("m"), url } });
    for (const host of [...LOOPBACK_SPELLINGS, "169.254.169.254"]) {
      const res = await registerMcp(`http://${host}:${internal.port}/mcp`);
      expect([res.status, res.body.error.code]).toEqual([400, "invalid_mcp_server"]);
      expect(res.body.error.message).toContain("`url`");
    }
    const named = await registerMcp(`http://localhost:${internal.port}/mcp`);
    expect([named.status, named.body.error.code]).toEqual([400, "target_refused"]);
    expect(JSON.stringify(named.body)).not.toContain("internal-admin-token");
    expect(internal.hits).toEqual([]);
  });

  test("a webhook at a loopback IP literal is refused (400 naming url); at a name resolving to loopback, deliveries are refused", async () => {
    for (const host of LOOPBACK_SPELLINGS) {
      const res = await t.api.call("POST", "/v1/webhooks", { token: user.token, body: { url: `http://${host}:${internal.port}/hook` } });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("invalid_url");
      expect(res.body.error.details).toMatchObject({ field: "url" });
    }
    const hook = await t.api.call("POST", "/v1/webhooks", { token: user.token, body: { url: `http://localhost:${internal.port}/hook` } });
    expect(hook.status).toBe(201);
    const agent = await t.api.call("POST", "/v1/agents", { token: user.token, body: { name: "a", model: "m" } });
    expect(agent.status).toBe(201);
    const attempt = await waitFor("a refused delivery attempt", async () => {
      const d = await t.api.call("GET", `/v1/webhooks/${hook.body.id}/deliveries`, { token: user.token });
      return d.body.data?.[0]?.attempt_log?.[0];
    });
    expect(attempt.status_code).toBeNull();
    expect(attempt.error).toStartWith("target_refused");
    expect(internal.hits).toEqual([]);
  });
}

function allowedSuite(start: () => Promise<Target>) {
  let t: Target;
  let user: Awaited<ReturnType<ApiClient["signup"]>>;
  let internal: ReturnType<typeof startInternalService>;
  beforeAll(async () => {
    internal = startInternalService();
    t = await start();
    user = await t.api.signup();
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
    internal?.stop();
  });

  const invoke = async (url: string) => {
    const tool = await t.api.call("POST", "/v1/tools", { token: user.token, body: { name: uniqueName("tool"), kind: "http", config: { url }, parameters: params } });
    expect(tool.status).toBe(201);
    return (await t.api.call("POST", `/v1/tools/${tool.body.id}/invoke`, { token: user.token, body: { arguments: {} } })).body;
  };

  test("with AGENTOS_ALLOW_PRIVATE_TARGETS, loopback tools and webhooks work (spellings and names alike)", async () => {
    const before = internal.hits.length;
    for (const host of ["127.1", "2130706433", "localhost"]) {
      expect(await invoke(`http://${host}:${internal.port}/allowed`)).toMatchObject({ ok: true, output: { secret: "internal-admin-token" } });
    }
    expect(internal.hits.length).toBe(before + 3);
    const hook = await t.api.call("POST", "/v1/webhooks", { token: user.token, body: { url: `http://127.0.0.1:${internal.port}/hook` } });
    expect(hook.status).toBe(201);
    await t.api.call("POST", "/v1/agents", { token: user.token, body: { name: "a", model: "m" } });
    await waitFor("the webhook delivery", () => internal.hits.includes("/hook"));
  });

  test("a closed port and a port that resets the connection fail with the same code and words", async () => {
    const closed = await invoke("http://127.0.0.1:1/");
    const reset = await invoke(`http://127.0.0.1:${resetPort}/`);
    expect(closed.error.code).toBe("target_unreachable");
    expect(reset.error.code).toBe("target_unreachable");
    expect(closed.error.message.replace(/:\d+/, ":P")).toBe(reset.error.message.replace(/:\d+/, ":P"));
    expect(closed.error.message).not.toMatch(/ECONN|refused|reset/i);
  });
}

async function binaryTarget(allowPrivate: boolean): Promise<Target> {
  const dataDir = mkdtempSync(join(tmpdir(), "agentos-ssrf-"));
  const child = await startChild(["serve", `--data-dir=${dataDir}`], { env: { AGENTOS_ALLOW_PRIVATE_TARGETS: String(allowPrivate), AGENTOS_WEBHOOK_POLL_MS: "200" } });
  return {
    api: apiClient(child.url),
    async stop() {
      await child.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function inProcessTarget(allowPrivate: boolean, real = false): Promise<Target> {
  const p = await startTestProcess({ real, config: { allowPrivateTargets: allowPrivate } });
  return { api: apiClient(p.url), stop: () => p.stop() };
}

describe("SSRF guard on the compiled binary (AGENTOS_ALLOW_PRIVATE_TARGETS=false)", () => refusedSuite(() => binaryTarget(false)));
describe("SSRF guard on the compiled binary (AGENTOS_ALLOW_PRIVATE_TARGETS=true)", () => allowedSuite(() => binaryTarget(true)));
describe("SSRF guard in-process, embedded default", () => {
  describe("refused", () => refusedSuite(() => inProcessTarget(false)));
  describe("allowed", () => allowedSuite(() => inProcessTarget(true)));
});
await describeReal("SSRF guard in-process", () => {
  describe("refused", () => refusedSuite(() => inProcessTarget(false, true)));
});

describe("https targets on the compiled binary: connected by checked address, certificate checked against the name", () => {
  let dir = "";
  let server: ReturnType<typeof Bun.serve>;
  let t: Target;
  let user: Awaited<ReturnType<ApiClient["signup"]>>;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "agentos-tls-"));
    const made = Bun.spawnSync(
      ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
      { stdout: "pipe", stderr: "pipe" },
    );
    if (made.exitCode !== 0) throw new Error(`openssl failed: ${made.stderr.toString()}`);
    server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: readFileSync(join(dir, "cert.pem"), "utf8"), key: readFileSync(join(dir, "key.pem"), "utf8") },
      fetch: (req) => Response.json({ host: req.headers.get("host") }),
    });
    const dataDir = join(dir, "data");
    const child = await startChild(["serve", `--data-dir=${dataDir}`, "--allow-private-targets"], { env: { NODE_EXTRA_CA_CERTS: join(dir, "cert.pem") } });
    t = { api: apiClient(child.url), stop: async () => void (await child.stop()) };
    user = await t.api.signup();
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
    server?.stop(true);
    rmSync(dir, { recursive: true, force: true });
  });

  const invoke = async (url: string) => {
    const tool = await t.api.call("POST", "/v1/tools", { token: user.token, body: { name: uniqueName("tls"), kind: "http", config: { url }, parameters: params } });
    expect(tool.status).toBe(201);
    return (await t.api.call("POST", `/v1/tools/${tool.body.id}/invoke`, { token: user.token, body: { arguments: {} } })).body;
  };

  test("https://localhost works: SNI and the certificate use the name, Host is the name", async () => {
    expect(await invoke(`https://localhost:${server.port}/`)).toEqual(expect.objectContaining({ ok: true, output: { host: `localhost:${server.port}` } }));
  });

  test("the same server by IP fails the certificate check (verification is not switched off by pinning)", async () => {
    const res = await invoke(`https://127.0.0.1:${server.port}/`);
    expect(res.ok).toBe(false);
    expect(res.error.code).toBe("target_unreachable");
  });
});
