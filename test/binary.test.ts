/**
 * The compiled dist/agentos as users run it: a child process on a free port with a temp
 * data dir, on the embedded default and on the real backends; bad flags and unreachable
 * backends end it with one line; SIGTERM drains and exits 0; data survives a restart.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestDatabase, describeReal, dropNatsNamespace, dropRedisNamespace, REAL_URLS, uniqueName } from "./support/backends";
import { ensureBinary, startChild, type ChildProcess } from "./support/binary";
import { TEST_JWT_SECRET } from "./support/harness";

let binary = "";
beforeAll(() => {
  binary = ensureBinary();
}, 180_000);

function run(args: string[], env: Record<string, string> = {}) {
  const r = Bun.spawnSync([binary, ...args], { env: { PATH: process.env.PATH ?? "", ...env }, stdout: "pipe", stderr: "pipe", timeout: 30_000 });
  return { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

async function json(res: Response) {
  return { status: res.status, body: (await res.json()) as any };
}

async function authFlow(child: ChildProcess, email = `${uniqueName("u")}@example.com`) {
  const post = (path: string, body: unknown, token?: string) =>
    fetch(child.url + path, { method: "POST", headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) }).then(json);
  const signup = await post("/v1/auth/signup", { email, password: "binary-password" });
  expect(signup.status).toBe(201);
  const login = await post("/v1/auth/login", { email, password: "binary-password" });
  expect(login.status).toBe(200);
  const me = await fetch(child.url + "/v1/auth/me", { headers: { authorization: `Bearer ${login.body.access_token}` } }).then(json);
  expect(me.body.user.email).toBe(email);
  const refreshed = await post("/v1/auth/refresh", { refresh_token: login.body.refresh_token });
  expect(refreshed.status).toBe(200);
  const key = await post("/v1/api-keys", { name: "bin" }, refreshed.body.access_token);
  expect(key.status).toBe(201);
  const viaKey = await fetch(child.url + "/v1/auth/me", { headers: { authorization: `Bearer ${key.body.key}` } });
  expect(viaKey.status).toBe(200);
  return email;
}

/** The environment a running process has now (after an execve, the new one). */
function environOf(pid: number): Record<string, string> {
  const pairs = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter(Boolean);
  return Object.fromEntries(pairs.map((p) => [p.slice(0, p.indexOf("=")), p.slice(p.indexOf("=") + 1)]));
}

function expectOneLine(r: { code: number | null; stderr: string }, pattern: RegExp) {
  expect(r.code).not.toBe(0);
  const lines = r.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toContain("    at ");
}

describe("compiled binary: CLI", () => {
  test("--version, --help and roles", () => {
    expect(run(["--version"]).stdout).toMatch(/^agentos \d+\.\d+\.\d+/);
    expect(run(["--help"]).stdout).toContain("--database-url");
    const roles = run(["roles"]).stdout;
    for (const role of ["gateway", "auth", "all"]) expect(roles).toContain(role);
  });

  test("bad flags, unknown roles, split roles without backends and unreachable backends: one line, non-zero", () => {
    expectOneLine(run(["--role=nope"]), /unknown role 'nope'/);
    expectOneLine(run(["--port=abc"]), /--port: 'abc' is not a port number/);
    expectOneLine(run(["--frobnicate"]), /unknown flag '--frobnicate'/);
    expectOneLine(run(["--js-heap-growth=lots"]), /--js-heap-growth: 'lots' is not auto or a number from 0.1 to 10/);
    expectOneLine(run(["--role=gateway"]), /set DATABASE_URL and NATS_URL/);
    const split = { DATABASE_URL: "postgres://postgres@127.0.0.1:5432/postgres", NATS_URL: "nats://127.0.0.1:4222" };
    expectOneLine(run(["--role=gateway"], split), /set AGENTOS_INTERNAL_KEY \(at least 32 bytes/);
    expectOneLine(run(["--role=gateway"], { ...split, AGENTOS_INTERNAL_KEY: "too-short" }), /AGENTOS_INTERNAL_KEY: the internal key must be at least 32 bytes/);
    expectOneLine(run(["--role=gateway", "--tools-subject-prefix=_INBOX."], split), /NATS system prefix/);
    const dir = mkdtempSync(join(tmpdir(), "agentos-bin-"));
    try {
      const started = Date.now();
      expectOneLine(run(["--port=0", `--data-dir=${dir}`], { DATABASE_URL: "postgres://postgres@127.0.0.1:1/nope", JWT_SECRET: TEST_JWT_SECRET }), /cannot reach PostgreSQL at postgres:\/\/postgres@127\.0\.0\.1:1\/nope/);
      expect(Date.now() - started).toBeLessThan(15_000);
      expectOneLine(run(["--port=0", `--data-dir=${dir}`, "--redis-url=redis://127.0.0.1:1"]), /cannot reach Redis/);
      expectOneLine(run(["--port=0", `--data-dir=${dir}`, "--nats-url=nats://127.0.0.1:1"]), /cannot reach NATS/);
      expectOneLine(run(["--port=0", `--data-dir=${dir}`, "--database-url=postgres://postgres@127.0.0.1:5432/postgres"]), /JWT_SECRET is required/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000); // the embedded cases create a data dir (initdb: ~4.5 s here)
});

describe("compiled binary on the embedded default", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "agentos-bin-"));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  test("serves auth, Swagger UI from inside the binary, drains on SIGTERM, keeps data across restarts", async () => {
    const first = await startChild([`--data-dir=${dataDir}`]);
    const email = await authFlow(first);
    const page = await fetch(first.url + "/swagger");
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).not.toMatch(/https?:\/\/(cdn|unpkg|fastly)/);
    const asset = html.match(/\/swagger\/assets\/[\w.-]+\.js/)![0];
    expect((await fetch(first.url + asset)).status).toBe(200);
    const doc = await fetch(first.url + "/swagger/json").then((r) => r.json() as any);
    expect(Object.keys(doc.paths)).toContain("/v1/auth/signup");
    const metrics = await fetch(first.url + "/metrics").then((r) => r.text());
    expect(metrics).toContain("agentos_http_request_duration_seconds_bucket");
    expect(await first.stop()).toBe(0);

    const second = await startChild([`--data-dir=${dataDir}`]);
    const login = await fetch(second.url + "/v1/auth/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password: "binary-password" }) });
    expect(login.status).toBe(200);
    expect(await second.stop("SIGINT")).toBe(0);
  }, 120_000);

  test("restarts itself once, same pid, with the embedded database's heap growth; an explicit one wins", async () => {
    const auto = await startChild([`--data-dir=${dataDir}`]);
    try {
      // The spawned pid is the serving process: the restart replaced the image, not forked.
      expect(environOf(auto.proc.pid).BUN_JSC_heapGrowthMaxIncrease).toBe("0.1");
      expect((await fetch(auto.url + "/readyz")).status).toBe(200);
    } finally {
      expect(await auto.stop()).toBe(0);
    }
    const chosen = await startChild([`--data-dir=${dataDir}`, "--js-heap-growth=1.5"]);
    expect(environOf(chosen.proc.pid).BUN_JSC_heapGrowthMaxIncrease).toBe("1.5");
    expect(await chosen.stop()).toBe(0);
    const operator = await startChild([`--data-dir=${dataDir}`], { env: { BUN_JSC_heapGrowthMaxIncrease: "0.7" } });
    expect(environOf(operator.proc.pid).BUN_JSC_heapGrowthMaxIncrease).toBe("0.7");
    expect(await operator.stop()).toBe(0);
  }, 120_000);

  test("`agentos migrate` applies the embedded migrations and exits", () => {
    const dir = mkdtempSync(join(tmpdir(), "agentos-mig-"));
    try {
      const first = run(["migrate", `--data-dir=${dir}`]);
      expect(first.code).toBe(0);
      expect(first.stdout).toContain("applied:");
      expect(run(["migrate", `--data-dir=${dir}`]).stdout).toContain("up to date");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

await describeReal("compiled binary on PostgreSQL, Redis and NATS", () => {
  test("the same auth flow, and SIGTERM exits 0", async () => {
    const database = await createTestDatabase();
    const namespace = uniqueName("t");
    try {
      const child = await startChild([`--database-url=${database.url}`, `--redis-url=${REAL_URLS.redis}`, `--nats-url=${REAL_URLS.nats}`, `--namespace=${namespace}`], {
        env: { JWT_SECRET: TEST_JWT_SECRET },
      });
      await authFlow(child);
      // No embedded database: Bun's own heap growth, no restart.
      expect(environOf(child.proc.pid).BUN_JSC_heapGrowthMaxIncrease).toBeUndefined();
      const ready = await fetch(child.url + "/readyz").then((r) => r.json() as any);
      expect(ready.checks).toMatchObject({ database: "ok", cache: "ok", bus: "ok" });
      expect(await child.stop()).toBe(0);
    } finally {
      await database.drop();
      await dropNatsNamespace(namespace);
      await dropRedisNamespace(namespace);
    }
  }, 120_000);
});
