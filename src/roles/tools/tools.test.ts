/**
 * The tools role end to end: registry CRUD over HTTP, and execution of every kind against
 * real endpoints on loopback (an HTTP tool server that checks the signature, a NATS
 * responder, slow, garbage, failing and oversized tools), on the embedded default and on
 * real PostgreSQL + NATS. The agents role is replaced by a test double registered in
 * `p.local` (this file only), so these tests do not depend on its progress.
 */
import { childEnv } from "../../../test/support/binary";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { REAL_URLS, createTestDatabase, describeReal, dropNatsNamespace, uniqueName } from "../../../test/support/backends";
import { startTestProcess, type TestProcess, type TestUser } from "../../../test/support/harness";
import { notFound } from "../../platform/errors";
import { newId } from "../../platform/ids";

/** Stand-in for the agents role: agents are {id, name, org, tools}. */
function agentsDouble() {
  const agents = new Map<string, { id: string; name: string; orgId: string; tools: string[] }>();
  return {
    agents,
    add(orgId: string, name: string, tools: string[] = []) {
      const id = newId("agt");
      agents.set(id, { id, name, orgId, tools });
      return id;
    },
    async getAgent(orgId: string, id: string) {
      const a = agents.get(id);
      if (!a || a.orgId !== orgId) throw notFound("agent", id);
      return { id: a.id, name: a.name };
    },
    async agentsUsingTool(orgId: string, ref: string) {
      return [...agents.values()].filter((a) => a.orgId === orgId && a.tools.includes(ref)).map((a) => ({ id: a.id, name: a.name }));
    },
    async detachTool(orgId: string, ref: string) {
      let n = 0;
      for (const a of agents.values()) {
        if (a.orgId === orgId && a.tools.includes(ref)) {
          a.tools = a.tools.filter((r) => r !== ref);
          n++;
        }
      }
      return n;
    },
  };
}

/** `t=<unix>,v1=<hex hmac-sha256(secret, "t.body")>`, at most 5 minutes old (what SPEC asks receivers to check). */
function verifySignature(secret: string, header: string | null, body: string): boolean {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? "");
  if (!m) return false;
  if (Math.abs(Date.now() / 1000 - Number(m[1])) > 300) return false;
  const expected = new Bun.CryptoHasher("sha256", secret).update(`${m[1]}.${body}`).digest("hex");
  return expected === m[2];
}

/** A loopback HTTP tool server with one behaviour per path. */
function startToolServer(secrets: Map<string, string>) {
  const received: { path: string; body: any; signatureOk: boolean }[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 30,
    async fetch(req) {
      const path = new URL(req.url).pathname;
      const text = await req.text();
      const body = JSON.parse(text);
      const signatureOk = verifySignature(secrets.get(body.tool) ?? "", req.headers.get("x-agentos-signature"), text);
      received.push({ path, body, signatureOk });
      if (!signatureOk) return Response.json({ error: { message: "bad signature" } }, { status: 401 });
      switch (path) {
        case "/weather":
          return Response.json({ city: body.arguments.city, temperature_c: 21, tool_call_id: body.tool_call_id });
        case "/slow":
          await Bun.sleep(3000);
          return Response.json({ late: true });
        case "/slow-body":
          // Headers at once, then the body stalls: the timeout covers reading it too.
          return new Response(new ReadableStream({ async pull(c) { c.enqueue(new TextEncoder().encode("{")); await Bun.sleep(3000); c.close(); } }));
        case "/text":
          return new Response("<html>not json</html>", { headers: { "content-type": "text/html" } });
        case "/fail":
          return Response.json({ error: { message: "database is down" } }, { status: 503 });
        case "/huge": {
          // 2 MiB streamed in 64 KiB chunks without content-length.
          let sent = 0;
          const chunk = new Uint8Array(64 * 1024).fill(97);
          return new Response(
            new ReadableStream({
              pull(c) {
                if (sent >= 2 * 1024 * 1024) return c.close();
                sent += chunk.byteLength;
                c.enqueue(chunk);
              },
            }),
          );
        }
        case "/redirect-away":
          return new Response(null, { status: 307, headers: { location: "http://localhost:1/elsewhere" } });
        case "/redirect-here":
          return new Response(null, { status: 307, headers: { location: "/weather" } });
      }
      return new Response("no such path", { status: 404 });
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, received, stop: () => server.stop(true) };
}

/** A user whose organization is on the enterprise plan: these suites send more than the free plan's 60 requests a minute. */
async function signupUnlimited(t: TestProcess): Promise<TestUser> {
  const u = await t.signup();
  const res = await t.request("PUT", "/v1/billing/plan", { token: u.token, body: { plan: "enterprise" } });
  if (res.status !== 200) console.warn(`could not raise the plan (${res.status}); requests may be rate limited`);
  return u;
}

function toolsSuite(start: () => Promise<TestProcess>, real: boolean) {
  let t: TestProcess;
  let alice: TestUser;
  let bob: TestUser;
  let agents: ReturnType<typeof agentsDouble>;
  let server: ReturnType<typeof startToolServer>;
  const secrets = new Map<string, string>();
  let nc: NatsConnection | undefined;
  const subjectBase = `tools.test.${uniqueName("s")}`;

  const as = (u: TestUser) => ({
    post: (path: string, body?: unknown, headers?: Record<string, string>) => t.request("POST", path, { token: u.token, body, headers }),
    get: (path: string) => t.request("GET", path, { token: u.token }),
    patch: (path: string, body: unknown) => t.request("PATCH", path, { token: u.token, body }),
    del: (path: string) => t.request("DELETE", path, { token: u.token }),
  });

  async function register(u: TestUser, body: Record<string, unknown>) {
    const res = await as(u).post("/v1/tools", body);
    if (res.status !== 201) throw new Error(`register failed: ${res.status} ${JSON.stringify(res.body)}`);
    secrets.set(res.body.name, res.body.signing_secret);
    return res.body;
  }

  const weatherParams = {
    type: "object",
    properties: { city: { type: "string", minLength: 1 }, unit: { type: "string", enum: ["c", "f"] } },
    required: ["city"],
    additionalProperties: false,
  };

  beforeAll(async () => {
    t = await start();
    agents = agentsDouble();
    t.process.platform.local.set("agents", agents);
    alice = await signupUnlimited(t);
    bob = await signupUnlimited(t);
    server = startToolServer(secrets);
    if (real) nc = await connect({ servers: REAL_URLS.nats });
  }, 60_000);
  afterAll(async () => {
    server?.stop();
    await nc?.close();
    await t?.stop();
  }, 30_000);

  describe("registry", () => {
    test("create shows the signing secret once; get and list never do", async () => {
      const res = await as(alice).post("/v1/tools", {
        name: "get_weather",
        description: "Weather by city",
        parameters: weatherParams,
        kind: "http",
        config: { url: `${server.url}/weather` },
      });
      expect(res.status).toBe(201);
      secrets.set("get_weather", res.body.signing_secret);
      expect(res.body).toMatchObject({ name: "get_weather", kind: "http", requires_approval: false, timeout_ms: 10000, config: { url: `${server.url}/weather` } });
      expect(res.body.id).toMatch(/^tool_[0-9A-Z]{26}$/);
      expect(res.body.signing_secret).toMatch(/^tsk_/);
      const got = await as(alice).get(`/v1/tools/${res.body.id}`);
      expect(got.status).toBe(200);
      expect(got.body.signing_secret).toBeUndefined();
      expect(got.body.parameters).toEqual(weatherParams);
      const list = await as(alice).get("/v1/tools?limit=100");
      expect(list.status).toBe(200);
      expect(list.body.data.map((x: any) => x.name)).toContain("get_weather");
      expect(list.body.data.every((x: any) => x.signing_secret === undefined)).toBe(true);
    });

    test("names are unique per organization (409), not across organizations", async () => {
      const dup = await as(alice).post("/v1/tools", { name: "get_weather", kind: "client" });
      expect(dup.status).toBe(409);
      expect(dup.body.error.code).toBe("tool_name_taken");
      const other = await as(bob).post("/v1/tools", { name: "get_weather", kind: "client" });
      expect(other.status).toBe(201);
      const reserved = await as(alice).post("/v1/tools", { name: "archival_memory_search", kind: "client" });
      expect(reserved.status).toBe(409);
      expect(reserved.body.error.code).toBe("tool_name_reserved");
    });

    test("an invalid JSON Schema is rejected at registration with the reason", async () => {
      const cases: [unknown, RegExp][] = [
        [{ type: "object", properties: { a: { type: "strnig" } } }, /properties\/a\/type/],
        [{ type: "object", required: "a" }, /required must be array/],
        [{ type: "object", properties: { a: { $ref: "#/definitions/missing" } } }, /can't resolve reference/],
        [{ type: "string" }, /object schema/],
      ];
      for (const [parameters, reason] of cases) {
        const res = await as(alice).post("/v1/tools", { name: uniqueName("bad"), kind: "client", parameters });
        expect(res.status).toBe(400);
        expect(res.body.error.code).toBe("invalid_parameters_schema");
        expect(res.body.error.message).toMatch(reason);
      }
    });

    test("kind and config are validated per kind", async () => {
      const bad: [Record<string, unknown>, string, RegExp][] = [
        [{ kind: "builtin" }, "invalid_tool_kind", /not registered/],
        [{ kind: "grpc" }, "invalid_tool_kind", /http, nats, client/],
        [{ kind: "http", config: { url: "file:///etc/passwd" } }, "invalid_tool_config", /http or https/],
        [{ kind: "http", config: { url: "ftp://example.com/x" } }, "invalid_tool_config", /http or https/],
        [{ kind: "http", config: {} }, "invalid_tool_config", /config.url/],
        [{ kind: "http", config: { url: "http://user:pw@example.com/" } }, "invalid_tool_config", /credentials/],
        [{ kind: "http", config: { url: "http://example.com/", headers: { "x-agentos-signature": "forged" } } }, "invalid_tool_config", /set by AgentOS/],
        [{ kind: "http", config: { url: "http://example.com/", headers: { "x-a": "one\r\ntwo" } } }, "invalid_tool_config", /single-line/],
        [{ kind: "http", config: { uri: "http://example.com/" } }, "invalid_tool_config", /Unknown config key/],
        [{ kind: "nats", config: { subject: "tools.*" } }, "invalid_tool_config", /wildcards/],
        [{ kind: "nats", config: { subject: "agentos.rpc.memory.runBuiltinTool" } }, "invalid_tool_config", /tools prefix 'tools\.'/],
        [{ kind: "nats", config: { subject: `${t.config.namespace}.runs` } }, "invalid_tool_config", /tools prefix/],
        [{ kind: "nats", config: { subject: `${t.config.namespace}.rpc.auth.me` } }, "invalid_tool_config", /tools prefix/],
        [{ kind: "nats", config: { subject: "otherns.rpc.auth.login" } }, "invalid_tool_config", /tools prefix/],
        [{ kind: "nats", config: { subject: "_INBOX.abc" } }, "invalid_tool_config", /tools prefix/],
        [{ kind: "nats", config: { subject: "tools" } }, "invalid_tool_config", /tools prefix/],
        [{ kind: "nats", config: { subject: "$JS.API.STREAM.LIST" } }, "invalid_tool_config", /NATS subject/],
        [{ kind: "client", config: { url: "http://example.com" } }, "invalid_tool_config", /allowed: none/],
      ];
      for (const [body, code, message] of bad) {
        const res = await as(alice).post("/v1/tools", { name: uniqueName("k"), ...body });
        expect(res.status, JSON.stringify(body)).toBe(400);
        expect(res.body.error.code).toBe(code);
        expect(res.body.error.message).toMatch(message);
      }
      for (const timeout_ms of [99, 120001]) {
        const res = await as(alice).post("/v1/tools", { name: uniqueName("k"), kind: "client", timeout_ms });
        expect(res.status).toBe(400);
        expect(res.body.error.code).toBe("validation_failed");
      }
      const badName = await as(alice).post("/v1/tools", { name: "has space", kind: "client" });
      expect(badName.status).toBe(400);
    });

    test("patch revalidates; another organization's tool is a 404 everywhere", async () => {
      const tool = await register(alice, { name: uniqueName("p"), kind: "nats", config: { subject: `${subjectBase}.p` } });
      const upd = await as(alice).patch(`/v1/tools/${tool.id}`, { description: "now described", requires_approval: true, timeout_ms: 500 });
      expect(upd.status).toBe(200);
      expect(upd.body).toMatchObject({ description: "now described", requires_approval: true, timeout_ms: 500, config: { subject: `${subjectBase}.p` } });
      expect(Date.parse(upd.body.updated_at)).toBeGreaterThanOrEqual(Date.parse(tool.updated_at));
      const kindWithoutConfig = await as(alice).patch(`/v1/tools/${tool.id}`, { kind: "http" });
      expect(kindWithoutConfig.status).toBe(400);
      expect((await as(alice).patch(`/v1/tools/${tool.id}`, { parameters: { type: "object", properties: 1 } })).status).toBe(400);
      for (const res of [
        await as(bob).get(`/v1/tools/${tool.id}`),
        await as(bob).patch(`/v1/tools/${tool.id}`, { description: "x" }),
        await as(bob).del(`/v1/tools/${tool.id}`),
        await as(bob).post(`/v1/tools/${tool.id}/invoke`, { arguments: {} }),
        await as(alice).get("/v1/tools/tool_nope"),
        await as(alice).get("/v1/tools/agt_01HZZZZZZZZZZZZZZZZZZZZZZZ"),
      ]) {
        expect(res.status).toBe(404);
        expect(res.body.error.code).toBe("not_found");
      }
    });

    test("Idempotency-Key on create replays the first response", async () => {
      const body = { name: uniqueName("idem"), kind: "client" };
      const key = uniqueName("key");
      const a = await as(alice).post("/v1/tools", body, { "idempotency-key": key });
      const b = await as(alice).post("/v1/tools", body, { "idempotency-key": key });
      expect(a.status).toBe(201);
      expect(b.status).toBe(201);
      expect(b.body.id).toBe(a.body.id);
      const c = await as(alice).post("/v1/tools", { ...body, description: "different" }, { "idempotency-key": key });
      expect(c.status).toBe(409);
    });

    test("deleting a tool agents use → 409 naming them, unless ?force=true", async () => {
      const tool = await register(alice, { name: uniqueName("del"), kind: "client" });
      const a1 = agents.add(alice.orgId, "Support bot", [tool.id, "archival_memory_search"]);
      agents.add(bob.orgId, "Bob's bot", [tool.id]);
      const refused = await as(alice).del(`/v1/tools/${tool.id}`);
      expect(refused.status).toBe(409);
      expect(refused.body.error.code).toBe("tool_in_use");
      expect(refused.body.error.message).toContain("Support bot");
      expect(refused.body.error.details.agents).toEqual([{ id: a1, name: "Support bot" }]);
      const forced = await t.request("DELETE", `/v1/tools/${tool.id}?force=true`, { token: alice.token });
      expect(forced.status).toBe(200);
      expect(forced.body).toEqual({ id: tool.id, deleted: true, detached_from: 1 });
      expect(agents.agents.get(a1)?.tools).toEqual(["archival_memory_search"]);
      expect((await as(alice).get(`/v1/tools/${tool.id}`)).status).toBe(404);
      const unused = await register(alice, { name: uniqueName("del"), kind: "client" });
      expect((await as(alice).del(`/v1/tools/${unused.id}`)).body).toEqual({ id: unused.id, deleted: true, detached_from: 0 });
    });

    test("builtin tools are listed with their schemas and resolved by getRunTools", async () => {
      const res = await as(alice).get("/v1/tools/builtin");
      expect(res.status).toBe(200);
      expect(res.body.data.map((x: any) => x.name)).toEqual(["core_memory_append", "core_memory_replace", "archival_memory_insert", "archival_memory_search"]);
      const weather = (await as(alice).get("/v1/tools?limit=100")).body.data.find((x: any) => x.name === "get_weather");
      const bobsTool = (await as(bob).get("/v1/tools?limit=100")).body.data[0];
      const run = await t.process.platform.clients.tools.getRunTools(alice.orgId, [weather.id, "archival_memory_search", "nope", bobsTool.id, weather.id]);
      expect(run.tools.map((x) => [x.id, x.kind])).toEqual([[weather.id, "http"], ["archival_memory_search", "builtin"]]);
      expect(run.tools[1].parameters).toMatchObject({ type: "object", required: ["query"] });
      expect(run.missing).toEqual(["nope", bobsTool.id]);
    });
  });

  describe("execution", () => {
    type Result = { ok: boolean; output?: any; error?: { code: string; message: string } };
    const execute = (toolId: string, args: string, agentId = ""): Promise<Result> =>
      t.process.platform.clients.tools.execute({ org_id: alice.orgId, agent_id: agentId, run_id: "run_x", tool_call_id: "call_1", tool_id: toolId, arguments: args });
    const toolNamed = async (name: string) => (await as(alice).get("/v1/tools?limit=100")).body.data.find((x: any) => x.name === name);

    test("http: a signed POST of {tool, arguments, run_id, tool_call_id}; the JSON reply is the output", async () => {
      const weather = await toolNamed("get_weather");
      const res = await as(alice).post(`/v1/tools/${weather.id}/invoke`, { arguments: { city: "Lyon" } });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ ok: true, output: { city: "Lyon", temperature_c: 21 } });
      expect(res.body.duration_ms).toBeGreaterThan(0);
      const last = server.received.at(-1)!;
      expect(last.signatureOk).toBe(true);
      expect(last.body).toMatchObject({ tool: "get_weather", arguments: { city: "Lyon" }, run_id: null });
      expect(last.body.tool_call_id).toMatch(/^manual_/);
      const viaRun = await execute(weather.id, '{"city":"Oslo"}');
      expect(viaRun).toEqual({ ok: true, output: { city: "Oslo", temperature_c: 21, tool_call_id: "call_1" } });
      expect(server.received.at(-1)!.body.run_id).toBe("run_x");
    });

    test("a wrong secret fails the signature check at the server (error result, not a crash)", async () => {
      const tool = await register(alice, { name: uniqueName("sig"), kind: "http", config: { url: `${server.url}/weather` } });
      secrets.set(tool.name, "tsk_not-the-secret");
      const res = await execute(tool.id, '{"city":"x"}');
      expect(res).toEqual({ ok: false, error: { code: "tool_http_error", message: "The tool server answered HTTP 401: bad signature" } });
    });

    test("arguments are validated against the schema before executing", async () => {
      const weather = await toolNamed("get_weather");
      const before = server.received.length;
      const missing = await as(alice).post(`/v1/tools/${weather.id}/invoke`, { arguments: { unit: "k" } });
      expect(missing.status).toBe(200);
      expect(missing.body.ok).toBe(false);
      expect(missing.body.error.code).toBe("invalid_arguments");
      expect(missing.body.error.message).toContain("must have required property 'city'");
      expect(missing.body.error.message).toContain("must be equal to one of the allowed values");
      expect((await execute(weather.id, "{not json")).error?.code).toBe("invalid_arguments");
      expect((await execute(weather.id, "[1,2]")).error?.code).toBe("invalid_arguments");
      expect((await execute(weather.id, '{"city":"x","extra":1}')).error?.message).toContain("must NOT have additional properties");
      expect(server.received.length).toBe(before);
    });

    test("a schema changed by PATCH is used at once (validator cache keyed by version)", async () => {
      const tool = await register(alice, { name: uniqueName("ver"), kind: "http", config: { url: `${server.url}/weather` }, parameters: weatherParams });
      expect((await execute(tool.id, '{"city":"Rome"}')).ok).toBe(true);
      await Bun.sleep(5);
      const upd = await as(alice).patch(`/v1/tools/${tool.id}`, { parameters: { ...weatherParams, required: ["city", "unit"] } });
      expect(upd.status).toBe(200);
      expect((await execute(tool.id, '{"city":"Rome"}')).error?.code).toBe("invalid_arguments");
    });

    test("http: slow, failing, garbage, oversized and redirecting tools become error results", async () => {
      const slow = await register(alice, { name: uniqueName("slow"), kind: "http", config: { url: `${server.url}/slow` }, timeout_ms: 300 });
      const started = Date.now();
      const timedOut = await execute(slow.id, "{}");
      expect(timedOut).toEqual({ ok: false, error: { code: "tool_timeout", message: "The tool did not answer within 300 ms." } });
      expect(Date.now() - started).toBeLessThan(2000);

      const slowBody = await register(alice, { name: uniqueName("slowb"), kind: "http", config: { url: `${server.url}/slow-body` }, timeout_ms: 300 });
      expect((await execute(slowBody.id, "{}")).error?.code).toBe("tool_timeout");

      const fail = await register(alice, { name: uniqueName("fail"), kind: "http", config: { url: `${server.url}/fail` } });
      expect(await execute(fail.id, "{}")).toEqual({ ok: false, error: { code: "tool_http_error", message: "The tool server answered HTTP 503: database is down" } });

      const text = await register(alice, { name: uniqueName("text"), kind: "http", config: { url: `${server.url}/text` } });
      expect(await execute(text.id, "")).toEqual({ ok: true, output: "<html>not json</html>" });

      const huge = await register(alice, { name: uniqueName("huge"), kind: "http", config: { url: `${server.url}/huge` } });
      expect((await execute(huge.id, "{}")).error?.code).toBe("tool_response_too_large");

      const away = await register(alice, { name: uniqueName("away"), kind: "http", config: { url: `${server.url}/redirect-away` } });
      const refused = await execute(away.id, "{}");
      expect(refused.error?.code).toBe("tool_redirect_refused");
      expect(refused.error?.message).toContain("http://localhost:1");

      const here = await register(alice, { name: uniqueName("here"), kind: "http", config: { url: `${server.url}/redirect-here` } });
      secrets.set(here.name, here.signing_secret);
      expect(await execute(here.id, '{"city":"Nice"}')).toMatchObject({ ok: true, output: { city: "Nice" } });

      const closed = await register(alice, { name: uniqueName("down"), kind: "http", config: { url: "http://127.0.0.1:1/" } });
      expect((await execute(closed.id, "{}")).error?.code).toBe("target_unreachable");
    });

    test("nats: a responder on the tool's own subject (not namespaced) answers {output} or {error}", async () => {
      const subject = `${subjectBase}.weather`;
      const seen: any[] = [];
      let unsubscribe: () => void;
      if (nc) {
        // A separate connection: what a worker in another process or language does.
        const sub = nc.subscribe(subject, {
          callback: (_e, m) => {
            const req = m.json<any>();
            seen.push(req);
            m.respond(JSON.stringify(req.arguments.city === "Atlantis" ? { error: { code: "unknown_city", message: "No such city" } } : { output: { forecast: `sunny in ${req.arguments.city}` } }));
          },
        });
        await nc.flush();
        unsubscribe = () => sub.unsubscribe();
      } else {
        unsubscribe = t.process.platform.bus.reply<any, unknown>(subject, async (m) => {
          seen.push(m.data);
          return m.data.arguments.city === "Atlantis" ? { error: { code: "unknown_city", message: "No such city" } } : { output: { forecast: `sunny in ${m.data.arguments.city}` } };
        }, { queue: "test-worker" });
      }
      try {
        const tool = await register(alice, { name: uniqueName("nw"), kind: "nats", config: { subject }, parameters: weatherParams, timeout_ms: 2000 });
        const res = await as(alice).post(`/v1/tools/${tool.id}/invoke`, { arguments: { city: "Paris" } });
        expect(res.body).toMatchObject({ ok: true, output: { forecast: "sunny in Paris" } });
        expect(seen[0]).toMatchObject({ tool: tool.name, arguments: { city: "Paris" }, run_id: null });
        expect(await execute(tool.id, '{"city":"Atlantis"}')).toEqual({ ok: false, error: { code: "unknown_city", message: "No such city" } });
        expect(seen[1]).toMatchObject({ run_id: "run_x", tool_call_id: "call_1" });
        expect((await execute(tool.id, "{}")).error?.code).toBe("invalid_arguments");
        expect(seen.length).toBe(2);
      } finally {
        unsubscribe();
      }
    });

    test("nats: no responder, a slow one and a garbage reply become error results", async () => {
      const nobody = await register(alice, { name: uniqueName("nn"), kind: "nats", config: { subject: `${subjectBase}.nobody` }, timeout_ms: 500 });
      const none = await execute(nobody.id, "{}");
      expect(none.error?.code).toBe("tool_unavailable");
      if (!nc) expect(none.error?.message).toContain("NATS_URL");

      const slowSubject = `${subjectBase}.slow`;
      const garbageSubject = `${subjectBase}.garbage`;
      const shapelessSubject = `${subjectBase}.shapeless`;
      const unsubs: (() => void)[] = [];
      if (nc) {
        const s1 = nc.subscribe(slowSubject, { callback: (_e, m) => void setTimeout(() => m.respond("{}"), 2000) });
        const s2 = nc.subscribe(garbageSubject, { callback: (_e, m) => void m.respond("this is not json") });
        const s3 = nc.subscribe(shapelessSubject, { callback: (_e, m) => void m.respond(JSON.stringify({ result: 42 })) });
        await nc.flush();
        unsubs.push(() => s1.unsubscribe(), () => s2.unsubscribe(), () => s3.unsubscribe());
      } else {
        unsubs.push(t.process.platform.bus.reply(slowSubject, async () => { await Bun.sleep(2000); return {}; }, { queue: "w" }));
        unsubs.push(t.process.platform.bus.reply(shapelessSubject, async () => ({ result: 42 }), { queue: "w" }));
      }
      try {
        const slow = await register(alice, { name: uniqueName("ns"), kind: "nats", config: { subject: slowSubject }, timeout_ms: 300 });
        const started = Date.now();
        expect((await execute(slow.id, "{}")).error?.code).toBe("tool_timeout");
        expect(Date.now() - started).toBeLessThan(1500);
        const shapeless = await register(alice, { name: uniqueName("nsh"), kind: "nats", config: { subject: shapelessSubject } });
        expect((await execute(shapeless.id, "{}")).error?.code).toBe("invalid_tool_reply");
        if (nc) {
          const garbage = await register(alice, { name: uniqueName("ng"), kind: "nats", config: { subject: garbageSubject } });
          expect(await execute(garbage.id, "{}")).toMatchObject({ ok: false, error: { code: "invalid_tool_reply" } });
        }
      } finally {
        for (const u of unsubs) u();
      }
    });

    test("nats: the example worker (examples/nats-tool-worker.ts) answers as documented", async () => {
      if (!nc) return; // the in-process bus cannot reach another process
      const subject = `${subjectBase}.example`;
      const worker = Bun.spawn([process.execPath, "examples/nats-tool-worker.ts"], {
        cwd: `${import.meta.dir}/../../..`,
        env: childEnv({ NATS_URL: REAL_URLS.nats, TOOL_SUBJECT: subject }),
        stdout: "pipe",
        stderr: "inherit",
      });
      try {
        const reader = worker.stdout.getReader();
        const { value } = await reader.read();
        expect(new TextDecoder().decode(value)).toContain(`answering ${subject}`);
        const tool = await register(alice, { name: uniqueName("ex"), kind: "nats", config: { subject }, parameters: weatherParams, timeout_ms: 5000 });
        expect(await execute(tool.id, '{"city":"Lyon"}')).toEqual({ ok: true, output: { city: "Lyon", temperature_c: 21, conditions: "sunny" } });
        expect(await execute(tool.id, '{"city":"Atlantis"}')).toEqual({ ok: false, error: { code: "unknown_city", message: "No weather for Atlantis" } });
      } finally {
        worker.kill();
        await worker.exited;
      }
    }, 20_000);

    test("client tools are not executed by AgentOS", async () => {
      const tool = await register(alice, { name: uniqueName("cl"), kind: "client" });
      const res = await as(alice).post(`/v1/tools/${tool.id}/invoke`, { arguments: {} });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("client_tool_not_invocable");
      expect((await execute(tool.id, "{}")).error?.code).toBe("client_tool");
    });

    test("unknown or foreign tools become an error result", async () => {
      const bobs = (await as(bob).get("/v1/tools")).body.data[0];
      expect((await execute(bobs.id, "{}")).error?.code).toBe("tool_not_found");
      expect((await execute("tool_garbage", "{}")).error?.code).toBe("tool_not_found");
    });

    test("builtin memory tools run through the memory role (invoke needs an agent of the caller's org)", async () => {
      const agentId = agents.add(alice.orgId, "Memo");
      await t.process.platform.clients.memory.createBlocks(alice.orgId, agentId, [{ label: "human", value: "Name: Alice", limit: 40 }]);
      const insert = await as(alice).post("/v1/tools/archival_memory_insert/invoke", { agent_id: agentId, arguments: { content: "The launch code is tangerine" } });
      expect(insert.body).toMatchObject({ ok: true, output: { stored: true } });
      const search = await as(alice).post("/v1/tools/archival_memory_search/invoke", { agent_id: agentId, arguments: { query: "launch code" } });
      expect(search.body.ok).toBe(true);
      expect(search.body.output.results[0].content).toBe("The launch code is tangerine");
      const append = await execute("core_memory_append", JSON.stringify({ label: "human", content: "Likes tea" }), agentId);
      expect(append).toMatchObject({ ok: true, output: { value: "Name: Alice\nLikes tea" } });
      const tooMuch = await execute("core_memory_append", JSON.stringify({ label: "human", content: "x".repeat(40) }), agentId);
      expect(tooMuch.error?.code).toBe("memory_block_too_large");
      expect((await execute("core_memory_replace", JSON.stringify({ label: "nope", old_content: "a", new_content: "b" }), agentId)).error?.message).toContain("Existing labels: human");
      expect((await execute("archival_memory_search", JSON.stringify({ query: 3 }), agentId)).error?.code).toBe("invalid_arguments");
      expect((await as(alice).post("/v1/tools/archival_memory_search/invoke", { arguments: { query: "x" } })).status).toBe(400);
      expect((await as(bob).post("/v1/tools/archival_memory_search/invoke", { agent_id: agentId, arguments: { query: "launch" } })).status).toBe(404);
    });
  });
}

describe("tools on the embedded default", () => toolsSuite(() => startTestProcess(), false));
await describeReal("tools", () => toolsSuite(() => startTestProcess({ real: true }), true));

await describeReal("tools and memory split across processes", () => {
  let memoryProcess: TestProcess;
  let edge: TestProcess;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  const namespace = uniqueName("t");

  beforeAll(async () => {
    db = await createTestDatabase();
    memoryProcess = await startTestProcess({ real: true, databaseUrl: db.url, namespace, keep: true, config: { roles: ["memory"] } });
    edge = await startTestProcess({ real: true, databaseUrl: db.url, namespace, keep: true, config: { roles: ["gateway", "auth", "billing", "tools", "agents"] } });
  }, 60_000);
  afterAll(async () => {
    await edge?.stop();
    await memoryProcess?.stop();
    await db?.drop();
    await dropNatsNamespace(namespace).catch(() => {});
  }, 30_000);

  test("builtin tools and memory routes reach the memory role over NATS request/reply", async () => {
    expect(edge.process.platform.local.has("memory")).toBe(false);
    const u = await edge.signup();
    const agent = await edge.request("POST", "/v1/agents", { token: u.token, body: { name: "split", model: "m", tools: ["archival_memory_search"], memory_blocks: [{ label: "human", value: "Name: Zed", limit: 12 }] } });
    expect(agent.status).toBe(201);
    const id = agent.body.id;
    const call = (tool: string, args: unknown) =>
      edge.process.platform.clients.tools.execute({ org_id: u.orgId, agent_id: id, run_id: "run_split", tool_call_id: "c", tool_id: tool, arguments: JSON.stringify(args) });
    expect(await call("archival_memory_insert", { content: "split brains are fine" })).toMatchObject({ ok: true, output: { stored: true } });
    expect(await call("archival_memory_search", { query: "brains" })).toMatchObject({ ok: true, output: { results: [{ content: "split brains are fine" }] } });
    expect(await call("core_memory_append", { label: "human", content: "too long for this" })).toMatchObject({ ok: false, error: { code: "memory_block_too_large" } });
    const search = await edge.request("GET", `/v1/agents/${id}/memories?query=brains`, { token: u.token });
    expect(search.status).toBe(200);
    expect(search.body.data[0].content).toBe("split brains are fine");
    const tooBig = await edge.request("PUT", `/v1/agents/${id}/memory/blocks/human`, { token: u.token, body: { value: "x".repeat(13) } });
    expect(tooBig.status).toBe(422);
    const other = await edge.signup();
    expect((await edge.request("GET", `/v1/agents/${id}/memories`, { token: other.token })).status).toBe(404);
  }, 30_000);
});
