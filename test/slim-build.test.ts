/**
 * The slim build (`bun run build --slim` → dist/agentos-slim) for split deployments: no
 * embedded database (PGlite's wasm and data) and no source map in the binary. Without
 * DATABASE_URL it stops with one line saying so; with the real back ends it serves the API
 * like the full build (the same role and route code: only the embedded database is absent).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestDatabase, describeReal, dropNatsNamespace, dropRedisNamespace, REAL_URLS, uniqueName } from "./support/backends";
import { ensureBinary, startChild, type ChildProcess } from "./support/binary";
import { TEST_INTERNAL_KEY, TEST_JWT_SECRET } from "./support/harness";

let slim = "";
let dataDir = "";
beforeAll(() => {
  slim = ensureBinary("slim");
  dataDir = mkdtempSync(join(tmpdir(), "agentos-slim-"));
}, 300_000);
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe("slim build", () => {
  test("is smaller than the full build by the embedded database and the source map", () => {
    const full = ensureBinary("full");
    // PGlite's wasm + data (~15 MB) and the map (~9 MB): at least 15 MB smaller
    expect(statSync(full).size - statSync(slim).size).toBeGreaterThan(15 * 1024 * 1024);
  });

  test("without DATABASE_URL it stops with one line asking for it", () => {
    const r = Bun.spawnSync([slim, "serve", `--data-dir=${dataDir}`, "--port=0"], { env: { PATH: process.env.PATH ?? "" }, stdout: "pipe", stderr: "pipe", timeout: 60_000 });
    expect(r.exitCode).not.toBe(0);
    const stderr = r.stderr.toString().trim();
    expect(stderr.split("\n")).toHaveLength(1);
    expect(stderr).toContain("slim build");
    expect(stderr).toContain("DATABASE_URL");
  });

  test("--version and --help work", () => {
    const r = Bun.spawnSync([slim, "--version"], { stdout: "pipe" });
    expect(r.stdout.toString()).toMatch(/^agentos \d+\.\d+\.\d+/);
  });
});

await describeReal("slim build on the real back ends", () => {
  let child: ChildProcess;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  const namespace = uniqueName("slim");
  beforeAll(async () => {
    database = await createTestDatabase();
    child = await startChild(
      ["serve", "--role=all", `--data-dir=${dataDir}`, `--database-url=${database.url}`, `--redis-url=${REAL_URLS.redis}`, `--nats-url=${REAL_URLS.nats}`, `--namespace=${namespace}`],
      { cmd: [slim], env: { JWT_SECRET: TEST_JWT_SECRET, AGENTOS_INTERNAL_KEY: TEST_INTERNAL_KEY }, readyTimeoutMs: 120_000 },
    );
  }, 180_000);
  afterAll(async () => {
    await child?.stop();
    await database?.drop();
    await dropNatsNamespace(namespace).catch(() => {});
    await dropRedisNamespace(namespace).catch(() => {});
  });

  test("signs up, creates an agent and reads it (cached the second time)", async () => {
    const post = (path: string, body: unknown, token?: string) =>
      fetch(child.url + path, { method: "POST", headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
    const signup = await post("/v1/auth/signup", { email: `${uniqueName("u")}@example.com`, password: "slim-build-password" });
    expect(signup.status).toBe(201);
    const token = ((await signup.json()) as any).access_token;
    const agent = await post("/v1/agents", { name: "slim", model: "m" }, token);
    expect(agent.status).toBe(201);
    const id = ((await agent.json()) as any).id;
    for (let i = 0; i < 2; i++) {
      const read = await fetch(`${child.url}/v1/agents/${id}`, { headers: { authorization: `Bearer ${token}` } });
      expect(read.status).toBe(200);
      expect(((await read.json()) as any).name).toBe("slim");
    }
  });
});
