/**
 * Tracing when the collector is not there (issue 14): spans are exported in batches from a
 * bounded queue off the request path, so a collector that refuses connections or accepts and
 * never answers neither fails nor slows requests, and shutdown is not held up by it. (The
 * span tree of a run across split roles is asserted in test/cluster.test.ts.)
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createTestDatabase, describeReal, REAL_URLS, uniqueName } from "./support/backends";
import { freePort, startChild, type ChildProcess } from "./support/binary";
import { http } from "./support/cluster";
import { TEST_JWT_SECRET } from "./support/harness";

await describeReal("tracing with an unreachable collector", () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let blackhole: Bun.TCPSocketListener<undefined>;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    // Accepts connections and never answers: an export can only time out.
    blackhole = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  });

  afterAll(async () => {
    for (const c of children) if (c.proc.exitCode === null) await c.stop("SIGKILL");
    blackhole?.stop(true);
    await database?.drop();
  });

  for (const kind of ["refusing", "silent"] as const) {
    test(`a ${kind} collector: every request succeeds, /healthz stays fast, shutdown is bounded`, async () => {
      const endpoint = kind === "refusing" ? `http://127.0.0.1:${await freePort()}` : `http://127.0.0.1:${blackhole.port}`;
      const child = await startChild(
        ["serve", `--database-url=${database.url}`, `--redis-url=${REAL_URLS.redis}`, `--nats-url=${REAL_URLS.nats}`, `--namespace=${uniqueName("otel")}`, `--jwt-secret=${TEST_JWT_SECRET}`],
        { env: { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_SERVICE_NAME: "agentos-test" } },
      );
      children.push(child);
      const session = (await http(child.url, "POST", "/v1/auth/signup", { body: { email: `${uniqueName("o")}@example.com`, password: "correct horse battery" } })).body;
      expect((await http(child.url, "PUT", "/v1/billing/plan", { token: session.access_token, body: { plan: "enterprise" } })).status).toBe(200);
      let slowestHealth = 0;
      const probe = (async () => {
        for (let i = 0; i < 40; i++) {
          const t0 = performance.now();
          await fetch(`${child.url}/healthz`);
          slowestHealth = Math.max(slowestHealth, performance.now() - t0);
          await Bun.sleep(25);
        }
      })();
      // Far more spans than one export batch, across the exporter's timeouts.
      const statuses: number[] = [];
      for (let round = 0; round < 10; round++) {
        const replies = await Promise.all(Array.from({ length: 30 }, () => http(child.url, "GET", "/v1/agents", { token: session.access_token })));
        statuses.push(...replies.map((r) => r.status));
      }
      await probe;
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      expect(slowestHealth).toBeLessThan(100);
      const t0 = Date.now();
      expect(await child.stop()).toBe(0);
      expect(Date.now() - t0).toBeLessThan(15_000);
    }, 90_000);
  }
});
