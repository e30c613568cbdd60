/**
 * The bus is not a trusted network (SPEC §6, issue 9 item 1), tried from outside with a plain
 * NATS client against the compiled binary in split mode, on a private nats-server that runs
 * the shipped least-privilege configuration (deploy/nats/agentos.conf):
 * - the tool-worker user can neither subscribe to nor publish on AgentOS's subjects, inboxes
 *   or the JetStream API, and still answers tool calls under `tools.>`;
 * - AgentOS connects with the credentials in NATS_URL;
 * - without the internal key every `rpc.>` subject answers only refusals (every declared
 *   method and the undeclared ones a reflection server used to answer); a wrong key, a stale
 *   or replayed envelope and an envelope moved to another subject are refused too;
 * - nothing readable crosses the bus: a login's password and the tokens it returns never
 *   appear in clear on rpc or inbox subjects;
 * - a nats tool aimed at an internal subject is refused at registration.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { RpcSeal } from "../src/platform/rpc-seal";
import { AGENTS_RPC } from "../src/roles/agents/contract";
import { AUTH_RPC } from "../src/roles/auth/contract";
import { BILLING_RPC } from "../src/roles/billing/contract";
import { MEMORY_RPC } from "../src/roles/memory/contract";
import { NOTIFY_RPC } from "../src/roles/notify/contract";
import { TOOLS_RPC } from "../src/roles/tools/contract";
import { REAL_URLS, createTestDatabase, describeReal, dropRedisNamespace, uniqueName } from "./support/backends";
import { REPO, startChild, type ChildProcess } from "./support/binary";
import { http, startLockedNats, startNatsServer, type LockedNats, type NatsServer } from "./support/cluster";
import { TEST_INTERNAL_KEY, TEST_JWT_SECRET } from "./support/harness";
import { waitFor } from "./support/wait";

const SURFACES: Record<string, readonly string[]> = { auth: AUTH_RPC, agents: AGENTS_RPC, billing: BILLING_RPC, memory: MEMORY_RPC, notify: NOTIFY_RPC, tools: TOOLS_RPC };
/** Methods a reflection-based server answered: private helpers and Object.prototype. */
const UNDECLARED = ["issueSession", "constructor", "toString", "hasOwnProperty", "__proto__", "translate"];
const dec = new TextDecoder();

/** Resolves to the error NATS reported for the subscription, or null if none came in time. */
async function subscriptionError(nc: NatsConnection, subject: string): Promise<Error | null> {
  const sub = nc.subscribe(subject);
  const closed = sub.closed.then((err) => err ?? null);
  await nc.flush().catch(() => {});
  return Promise.race([closed, Bun.sleep(1500).then(() => null)]);
}

await describeReal("the internal bus", () => {
  let nats: NatsServer;
  let locked: LockedNats;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let gateway: ChildProcess;
  let backend: ChildProcess;
  let platformUser: NatsConnection;
  let toolUser: NatsConnection;
  const namespace = uniqueName("sec");

  beforeAll(async () => {
    locked = await startLockedNats(namespace);
    nats = locked.server;
    database = await createTestDatabase();
    const common = [`--database-url=${database.url}`, `--redis-url=${REAL_URLS.redis}`, `--namespace=${namespace}`, `--jwt-secret=${TEST_JWT_SECRET}`];
    const env = { NATS_URL: locked.platformUrl, AGENTOS_INTERNAL_KEY: TEST_INTERNAL_KEY };
    backend = await startChild(["serve", "--role=auth,agents,memory,tools,billing,notify,worker", ...common], { env });
    gateway = await startChild(["serve", "--role=gateway", ...common], { env });
    platformUser = await connect({ servers: `127.0.0.1:${nats.port}`, user: "agentos", pass: locked.passwords.platform });
    toolUser = await connect({ servers: `127.0.0.1:${nats.port}`, user: "tool-worker", pass: locked.passwords.toolWorker });
  }, 120_000);

  afterAll(async () => {
    await Promise.allSettled([platformUser?.close(), toolUser?.close()]);
    await Promise.allSettled([gateway?.stop(), backend?.stop()]);
    await nats?.destroy();
    await database?.drop();
    await dropRedisNamespace(namespace);
  });

  test("AgentOS connects with the credentials in NATS_URL; a wrong password is refused with one line", async () => {
    const res = await http(gateway.url, "POST", "/v1/auth/signup", { body: { email: `${uniqueName("a")}@example.com`, password: "correct horse battery" } });
    expect(res.status).toBe(201);
    const bad = Bun.spawnSync([join(REPO, "dist/agentos"), "serve", "--role=gateway", "--port=0", `--database-url=${database.url}`, `--namespace=${namespace}`, `--jwt-secret=${TEST_JWT_SECRET}`], {
      env: { PATH: process.env.PATH ?? "", NATS_URL: `nats://agentos:wrong@127.0.0.1:${nats.port}`, AGENTOS_INTERNAL_KEY: TEST_INTERNAL_KEY },
      timeout: 30_000,
    });
    const stderr = bad.stderr.toString().trim();
    expect(bad.exitCode).not.toBe(0);
    expect(stderr.split("\n")).toHaveLength(1);
    expect(stderr).toMatch(/cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+.*(authorization|authentication)/i);
    expect(stderr).not.toContain("wrong");
  });

  test("the tool-worker user cannot subscribe to or publish on rpc.>, inboxes or the JetStream API", async () => {
    for (const subject of [`${namespace}.rpc.>`, `${namespace}.rpc.auth.login`, `${namespace}.events.>`, `${namespace}.live.>`, "_INBOX.>", "$JS.API.>", ">"]) {
      const err = await subscriptionError(toolUser, subject);
      expect([subject, String(err)]).toEqual([subject, expect.stringMatching(/permissions violation/i)]);
    }
    // A publish on an rpc subject never reaches a listener there.
    const seen: string[] = [];
    const spy = platformUser.subscribe(`${namespace}.rpc.billing.>`, { callback: (_e, m) => void seen.push(m.subject) });
    await platformUser.flush();
    toolUser.publish(`${namespace}.rpc.billing.updatePlan`, JSON.stringify({ args: [] }));
    await expect(toolUser.request(`${namespace}.rpc.auth.me`, "{}", { timeout: 1000 })).rejects.toThrow();
    await expect(toolUser.request(`$JS.API.STREAM.MSG.GET.${namespace.toUpperCase()}_EVENTS`, JSON.stringify({ seq: 1 }), { timeout: 1000 })).rejects.toThrow();
    await Bun.sleep(300);
    spy.unsubscribe();
    expect(seen).toEqual([]);
  });

  test("a tool worker still answers its tool calls through the gateway", async () => {
    const session = (await http(gateway.url, "POST", "/v1/auth/signup", { body: { email: `${uniqueName("w")}@example.com`, password: "correct horse battery" } })).body;
    const subject = `tools.${uniqueName("weather")}`;
    const worker = toolUser.subscribe(subject, {
      callback: (_e, m) => {
        const call = JSON.parse(dec.decode(m.data));
        m.respond(JSON.stringify({ output: { city: call.arguments.city, sky: "clear" } }));
      },
    });
    await toolUser.flush();
    try {
      const tool = await http(gateway.url, "POST", "/v1/tools", {
        token: session.access_token,
        body: { name: "weather", kind: "nats", config: { subject }, parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } },
      });
      expect(tool.status).toBe(201);
      const invoked = await http(gateway.url, "POST", `/v1/tools/${tool.body.id}/invoke`, { token: session.access_token, body: { arguments: { city: "Lyon" } } });
      expect(invoked.status).toBe(200);
      expect(invoked.body).toMatchObject({ ok: true, output: { city: "Lyon", sky: "clear" } });
      // The shipped example worker, connecting as the tool-worker user with the credentials in its URL.
      const exampleSubject = `tools.${uniqueName("example")}`;
      const example = Bun.spawn([process.execPath, "examples/nats-tool-worker.ts"], { cwd: REPO, env: { PATH: process.env.PATH ?? "", NATS_URL: locked.toolWorkerUrl, TOOL_SUBJECT: exampleSubject }, stdout: "pipe", stderr: "pipe" });
      try {
        const { value } = await example.stdout.getReader().read();
        expect(dec.decode(value)).toContain(`answering ${exampleSubject}`);
        const exampleTool = await http(gateway.url, "POST", "/v1/tools", { token: session.access_token, body: { name: "example_weather", kind: "nats", config: { subject: exampleSubject } } });
        const answered = await http(gateway.url, "POST", `/v1/tools/${exampleTool.body.id}/invoke`, { token: session.access_token, body: { arguments: { city: "Oslo" } } });
        expect(answered.body).toMatchObject({ ok: true, output: { city: "Oslo", conditions: "sunny" } });
      } finally {
        example.kill();
      }
      for (const internal of [`${namespace}.rpc.auth.me`, `${namespace}.runs`, "otherns.rpc.auth.login", "_INBOX.x"]) {
        const refused = await http(gateway.url, "POST", "/v1/tools", { token: session.access_token, body: { name: uniqueName("bad"), kind: "nats", config: { subject: internal } } });
        expect([internal, refused.status, refused.body.error.code]).toEqual([internal, 400, "invalid_tool_config"]);
      }
    } finally {
      worker.unsubscribe();
    }
  });

  test("without the internal key every rpc subject answers only refusals", async () => {
    for (const [role, methods] of Object.entries(SURFACES)) {
      for (const method of [...methods, ...UNDECLARED]) {
        const subject = `${namespace}.rpc.${role}.${method}`;
        const reply = JSON.parse(dec.decode((await platformUser.request(subject, JSON.stringify({ args: ["org_x", { plan: "enterprise" }] }), { timeout: 5000 })).data));
        expect([subject, reply]).toEqual([subject, { ok: false, refused: "unsigned", error: expect.objectContaining({ code: "rpc_refused" }) }]);
      }
    }
    // Another key, a stale envelope, a replay, an envelope moved to another subject.
    const wrongKey = new RpcSeal("someone-elses-key-that-is-long-enough-0123456789");
    const ours = new RpcSeal(TEST_INTERNAL_KEY);
    const subject = `${namespace}.rpc.billing.getLimits`;
    const ask = async (to: string, body: unknown) => JSON.parse(dec.decode((await platformUser.request(to, JSON.stringify(body), { timeout: 5000 })).data));
    expect(await ask(subject, wrongKey.seal(subject, { args: ["org_x"] }))).toMatchObject({ ok: false, refused: "bad_signature" });
    expect(await ask(subject, ours.seal(subject, { args: ["org_x"] }, Date.now() - 120_000))).toMatchObject({ ok: false, refused: "stale" });
    expect(await ask(`${namespace}.rpc.billing.updatePlan`, ours.seal(subject, { args: ["org_x"] }))).toMatchObject({ ok: false, refused: "bad_signature" });
    const once = ours.seal(subject, { args: ["org_x"] });
    const first = ours.open<{ ok: boolean; result: { plan: string } }>(RpcSeal.replySubject(subject, once.nonce), await ask(subject, once), { fresh: false });
    expect(first).toMatchObject({ ok: true, result: { plan: "free" } });
    expect(await ask(subject, once)).toMatchObject({ ok: false, refused: "replayed" });
    // Signed, but not in the contract: never served.
    const undeclared = `${namespace}.rpc.auth.issueSession`;
    const sealed = ours.seal(undeclared, { args: ["usr_x", "org_x", "owner"] });
    const reply = ours.open<{ ok: boolean; error: { code: string } }>(RpcSeal.replySubject(undeclared, sealed.nonce), await ask(undeclared, sealed), { fresh: false });
    expect(reply).toMatchObject({ ok: false, error: { code: "unknown_rpc_method" } });
    const metrics = await (await fetch(`${backend.url}/metrics`)).text();
    for (const reason of ["unsigned", "bad_signature", "stale", "replayed", "unknown_method"]) {
      expect(metrics).toMatch(new RegExp(`agentos_rpc_refused_total\\{[^}]*reason="${reason}"[^}]*\\} [1-9]`));
    }
  });

  test("passwords, API keys and tokens never cross the bus in clear", async () => {
    const captured: string[] = [];
    const taps = [`${namespace}.rpc.>`, "_INBOX.>"].map((s) => platformUser.subscribe(s, { callback: (_e, m) => void captured.push(dec.decode(m.data)) }));
    await platformUser.flush();
    try {
      const email = `${uniqueName("c")}@example.com`;
      const password = "a-very-secret-password-42";
      const signup = await http(gateway.url, "POST", "/v1/auth/signup", { body: { email, password } });
      const login = await http(gateway.url, "POST", "/v1/auth/login", { body: { email, password } });
      expect(login.status).toBe(200);
      const key = await http(gateway.url, "POST", "/v1/api-keys", { token: login.body.access_token, body: { name: "ci" } });
      expect(key.status).toBe(201);
      // A fresh gateway cache miss: the key is resolved by the auth role.
      expect((await http(gateway.url, "GET", "/v1/auth/me", { token: key.body.key })).status).toBe(200);
      await waitFor("rpc traffic captured", () => captured.length >= 6);
      const secrets = [password, signup.body.access_token, login.body.access_token, login.body.refresh_token, key.body.key, email];
      for (const secret of secrets) expect(captured.filter((c) => c.includes(secret))).toEqual([]);
    } finally {
      for (const t of taps) t.unsubscribe();
    }
  });
});

/** A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl. */
function makeCertificates(dir: string) {
  const sh = (cmd: string) => {
    const r = Bun.spawnSync(["sh", "-c", cmd], { cwd: dir, stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  };
  sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=agentos-test-ca");
  for (const [name, ext] of [["server", "subjectAltName=IP:127.0.0.1"], ["client", "extendedKeyUsage=clientAuth"]]) {
    sh(`openssl req -newkey rsa:2048 -nodes -keyout ${name}.key -out ${name}.csr -subj /CN=${name}`);
    sh(`printf '%s\\n' '${ext}' > ${name}.ext && openssl x509 -req -in ${name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out ${name}.pem -days 2 -extfile ${name}.ext`);
  }
  return { ca: join(dir, "ca.pem"), cert: join(dir, "client.pem"), key: join(dir, "client.key") };
}

await describeReal("NATS over mutual TLS", () => {
  let nats: NatsServer;
  let dir: string;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let certs: ReturnType<typeof makeCertificates>;
  const namespace = uniqueName("tls");

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "agentos-tls-"));
    certs = makeCertificates(dir);
    const conf = join(dir, "tls.conf");
    writeFileSync(conf, `jetstream { store_dir: ${JSON.stringify(join(dir, "js"))} }\ntls { cert_file: "${dir}/server.pem", key_file: "${dir}/server.key", ca_file: "${certs.ca}", verify: true }\n`);
    nats = await startNatsServer({ config: conf, scheme: "tls" });
    database = await createTestDatabase();
  }, 60_000);

  afterAll(async () => {
    await nats?.destroy();
    await database?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  const args = () => ["serve", `--database-url=${database.url}`, `--namespace=${namespace}`, `--jwt-secret=${TEST_JWT_SECRET}`, `--internal-key=${TEST_INTERNAL_KEY}`];

  test("with the CA and a client certificate AgentOS connects over tls://", async () => {
    const child = await startChild([...args(), `--nats-ca=${certs.ca}`, `--nats-cert=${certs.cert}`, `--nats-key=${certs.key}`], { env: { NATS_URL: nats.url } });
    try {
      const ready = await (await fetch(`${child.url}/readyz`)).json();
      expect(ready).toMatchObject({ status: "ready", checks: { bus: "ok" } });
    } finally {
      await child.stop();
    }
  }, 60_000);

  test("without the CA, or without the client certificate, start-up ends with one line", () => {
    for (const extra of [[], [`--nats-ca=${certs.ca}`]]) {
      const r = Bun.spawnSync([join(REPO, "dist/agentos"), ...args(), "--port=0", ...extra], { env: { PATH: process.env.PATH ?? "", NATS_URL: nats.url }, stdout: "pipe", stderr: "pipe", timeout: 30_000 });
      const stderr = r.stderr.toString().trim();
      expect([extra, r.exitCode === 0]).toEqual([extra, false]);
      expect(stderr.split("\n")).toHaveLength(1);
      expect(stderr).toMatch(/cannot reach NATS at tls:\/\/127\.0\.0\.1/);
    }
  }, 60_000);
});
