/**
 * The outage pieces in-process: the database circuit (fail fast while open, probe, close by
 * itself), the one mapping to 503 backend_unavailable (through ORM `cause` wrappers, over
 * HTTP and RPC), background pacing, consumers holding a message through an outage, and the
 * RPC client failing fast while the bus is down. The compiled binary against real killed
 * servers: test/outages.test.ts.
 */
import { RpcSeal } from "./rpc-seal";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { createTestDatabase, describeReal, REAL_URLS, uniqueName } from "../../test/support/backends";
import { startTcpProxy, type TcpProxy } from "../../test/support/tcp-proxy";
import { waitFor } from "../../test/support/wait";
import { startNatsServer } from "../../test/support/cluster";
import { createOrgRateLimiter } from "../roles/gateway/rate-limits";
import { MemoryBus, openBus } from "./bus";
import { MemoryCache } from "./cache";
import { openCache } from "./cache";
import { openDatabase, rowsOf, sql } from "./db";
import { connectionFailure, DatabaseGate } from "./db/gate";
import { AppError } from "./errors";
import { httpPlatform } from "./http/app";
import { withIdempotency } from "./idempotency";
import { createLogger, silentLogger } from "./logging";
import { createMetrics } from "./metrics";
import { backendUnavailable, holdThroughDatabaseOutage, outageOf, RetryPacer } from "./outage";
import { rpcClient, serveRpc } from "./rpc";

const refused = () => Object.assign(new Error("connect ECONNREFUSED 10.0.0.5:5432"), { code: "ECONNREFUSED" });
/** What Drizzle throws: its own error with the driver's in `cause`. */
const wrapped = (cause: unknown) => Object.assign(new Error("Failed query: select 1\nparams: "), { cause });

function recordingLogger() {
  const lines: { level: string; msg: string }[] = [];
  const log = createLogger("debug", {}, (line) => lines.push(JSON.parse(line)));
  return { log, lines };
}

describe("connection errors", () => {
  test("driver codes, errnos and SQLSTATEs of a server going away are outages, found through cause chains; others are not", () => {
    expect(connectionFailure(refused())).toBe("connection refused");
    expect(connectionFailure(wrapped({ code: "CONNECTION_CLOSED" }))).toBe("connection closed");
    expect(connectionFailure({ code: "57P01" })).toBe("server shutting down");
    expect(connectionFailure({ code: "57P03" })).toBe("server starting up");
    expect(connectionFailure({ code: "23505" })).toBeNull(); // unique violation: a real error
    expect(connectionFailure(new Error("boom"))).toBeNull();
  });

  test("outageOf finds the 503 behind wrappers and nothing else", () => {
    const outage = backendUnavailable("database", "connection refused");
    expect(outage.status).toBe(503);
    expect(outage.code).toBe("backend_unavailable");
    expect(outage.details).toEqual({ backend: "database" });
    expect(outage.headers).toEqual({ "retry-after": "1" });
    expect(outageOf(wrapped(outage))).toBe(outage);
    expect(outageOf(new AppError(404, "not_found", "x"))).toBeNull();
    expect(outageOf(wrapped(new Error("x")))).toBeNull();
  });
});

describe("the database circuit", () => {
  test("opens on the first connection error, fails at once while open, closes when a probe succeeds", async () => {
    let serverUp = false;
    let probes = 0;
    const { log, lines } = recordingLogger();
    const gate = new DatabaseGate(async () => {
      probes++;
      if (!serverUp) throw refused();
    }, log, 20);
    gate.check(); // closed: passes
    const err = await gate.observe(Promise.reject(wrapped(refused()))).catch((e) => e);
    expect(outageOf(err)?.message).toBe("The database (PostgreSQL) is unavailable (connection refused); retry shortly.");
    expect(err.message).not.toContain("10.0.0.5");
    expect(() => gate.check()).toThrow(/PostgreSQL\) is unavailable/);
    expect(gate.problem()).toMatch(/^postgresql unavailable: connection refused/);
    // Other errors pass through untouched and do not open the circuit.
    const fresh = new DatabaseGate(async () => {}, log, 20);
    const unique = Object.assign(new Error("duplicate key"), { code: "23505" });
    expect(await fresh.observe(Promise.reject(unique)).catch((e) => e)).toBe(unique);
    expect(fresh.problem()).toBeNull();

    let available = false;
    const waiting = gate.whenAvailable().then(() => (available = true));
    await Bun.sleep(100);
    expect(available).toBe(false);
    expect(probes).toBeGreaterThan(1);
    serverUp = true;
    await waiting;
    expect(gate.problem()).toBeNull();
    gate.check();
    expect(await gate.observe(Promise.resolve(42))).toBe(42);
    // Logged once when it opened and once when it closed, not per query or probe.
    expect(lines.filter((l) => /database (unavailable|available again)/.test(l.msg)).map((l) => l.level)).toEqual(["warn", "info"]);
    gate.close();
  });
});

describe("answers during an outage", () => {
  test("HTTP: an ORM-wrapped outage renders as 503 backend_unavailable with Retry-After, not a 500", async () => {
    const app = new Elysia()
      .use(httpPlatform({ log: silentLogger, metrics: createMetrics(), maxBodyBytes: 1024, readiness: async () => ({ ready: true, checks: {} }) }))
      .get("/db", () => {
        throw wrapped(backendUnavailable("database", "connection refused"));
      });
    const res = await app.handle(new Request("http://local/db"));
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    const body: any = await res.json();
    expect(body.error.code).toBe("backend_unavailable");
    expect(body.error.details).toEqual({ backend: "database" });
    expect(body.error.request_id).toBeString();
  });

  test("RPC: the serving side sends the outage as a 503; the client fails at once while the bus is down", async () => {
    const bus = new MemoryBus("t");
    const service = {
      async read() {
        throw wrapped(backendUnavailable("database", "connection refused"));
      },
    };
    const seal = new RpcSeal("outage-test-internal-key-0123456789abcdef");
    const stop = serveRpc(bus, { role: "agents", service, methods: ["read"], seal, log: silentLogger });
    const client = rpcClient<typeof service>(bus, "agents", seal);
    const err = await client.read().catch((e) => e);
    expect([err.status, err.code, err.details]).toEqual([503, "backend_unavailable", { backend: "database" }]);
    // A bus that reports a problem: no request is sent, the 503 names the bus.
    (bus as any).problem = () => "nats disconnected for 3s";
    const started = performance.now();
    const down = await client.read().catch((e) => e);
    expect(performance.now() - started).toBeLessThan(50);
    expect([down.status, down.code, down.details]).toEqual([503, "backend_unavailable", { backend: "bus" }]);
    expect(down.message).toContain("NATS");
    stop();
    await bus.close();
  });
});

describe("rate limits while billing is unreachable", () => {
  test("the org keeps its last known limit instead of dropping to the conservative fallback", async () => {
    let billingUp = true;
    const limiter = createOrgRateLimiter({
      cache: new MemoryCache(),
      log: silentLogger,
      getLimits: async () => {
        if (!billingUp) throw backendUnavailable("bus", "nats disconnected");
        return { requests_per_minute: 500 } as any;
      },
    });
    const principal = { orgId: "org_a" } as any;
    expect((await limiter.afterAuth(principal))["x-ratelimit-limit"]).toBe("500");
    billingUp = false;
    limiter.forget("org_a"); // as when the cached limit expires during the outage
    expect((await limiter.afterAuth(principal))["x-ratelimit-limit"]).toBe("500");
    // An org never seen before gets the conservative fallback.
    expect((await limiter.afterAuth({ orgId: "org_new" } as any))["x-ratelimit-limit"]).toBe("60");
  });
});

describe("background work during an outage", () => {
  test("RetryPacer doubles the wait up to its bound and logs an outage once, its end once", () => {
    const { log, lines } = recordingLogger();
    const pacer = new RetryPacer("relay", log, 100, 1_000);
    const outage = wrapped(backendUnavailable("database"));
    expect([1, 2, 3, 4, 5, 6].map(() => pacer.failed(outage))).toEqual([100, 200, 400, 800, 1000, 1000]);
    pacer.succeeded();
    expect(pacer.failed(outage)).toBe(100);
    pacer.succeeded();
    expect(lines.map((l) => `${l.level} ${l.msg}`)).toEqual([
      "warn relay: paused while a backend is down; will resume by itself",
      "info relay: resumed",
      "warn relay: paused while a backend is down; will resume by itself",
      "info relay: resumed",
    ]);
    pacer.failed(new Error("boom"));
    expect(lines.at(-1)!.msg).toBe("relay failed; will retry");
  });

  test("a consumer holds its message (heartbeats) until the database is back; other errors are not held", async () => {
    let release!: () => void;
    const database = { whenAvailable: () => new Promise<void>((r) => (release = r)) };
    let held = false;
    const hold = holdThroughDatabaseOutage(wrapped(backendUnavailable("database")), database, () => {}).then((v) => (held = v));
    await Bun.sleep(30);
    expect(held).toBe(false); // still waiting
    release();
    await hold;
    expect(held).toBe(true);
    expect(await holdThroughDatabaseOutage(new Error("boom"), database, () => {})).toBe(false);
    // Shutdown ends the wait: the message goes back undone.
    const shutdown = new AbortController();
    const stopping = holdThroughDatabaseOutage(backendUnavailable("database"), { whenAvailable: () => new Promise<void>(() => {}) }, () => {}, { signal: shutdown.signal });
    shutdown.abort("shutdown");
    expect(await stopping).toBe(true);
    // A bus outage is not the database's: not held here (the caller's usual retry applies).
    expect(await holdThroughDatabaseOutage(backendUnavailable("bus"), database, () => {})).toBe(false);
  });
});

await describeReal("outages in-process against the real servers behind a proxy that is cut", () => {
  let pgProxy: TcpProxy;
  let redisProxy: TcpProxy;
  let testDb: Awaited<ReturnType<typeof createTestDatabase>>;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    const pg = new URL(REAL_URLS.postgres);
    const redis = new URL(REAL_URLS.redis);
    pgProxy = await startTcpProxy({ host: pg.hostname, port: Number(pg.port || 5432) });
    redisProxy = await startTcpProxy({ host: redis.hostname, port: Number(redis.port || 6379) });
  });
  afterAll(async () => {
    pgProxy?.stop();
    redisProxy?.stop();
    await testDb?.drop();
  });

  test("PostgreSQL: queries and transactions fail within the bound with the 503, then work again by themselves", async () => {
    const database = await openDatabase({ url: pgProxy.url(testDb.url), dataDir: "/nonexistent", log: silentLogger, connectTimeoutMs: 1000 });
    try {
      await database.db.execute(sql`create table t (n int)`);
      pgProxy.cut();
      for (const attempt of [
        () => database.db.execute(sql`select 1`),
        () => database.db.transaction(async (tx) => tx.execute(sql`insert into t values (1)`)),
        () => database.db.execute(sql`select 2`),
      ]) {
        const started = performance.now();
        const err = await attempt().then(() => null, (e) => e);
        expect(performance.now() - started).toBeLessThan(2_000);
        expect(outageOf(err)?.details).toEqual({ backend: "database" });
      }
      expect(database.problem()).toMatch(/^postgresql unavailable/);
      pgProxy.restore();
      await Promise.race([database.whenAvailable(), Bun.sleep(5_000)]);
      expect(database.problem()).toBeNull();
      await database.db.transaction(async (tx) => tx.execute(sql`insert into t values (2)`));
      expect(rowsOf<{ n: number }>(await database.db.execute(sql`select n from t`))).toEqual([{ n: 2 }]);
    } finally {
      await database.close();
    }
  });

  test("an Idempotency-Key claimed just before the database went away is released once it is back", async () => {
    const database = await openDatabase({ url: pgProxy.url(testDb.url), dataDir: "/nonexistent", log: silentLogger, connectTimeoutMs: 1000 });
    try {
      await database.migrate();
      const request = { orgId: "org_outage", scope: { key: "create-1", route: "POST /v1/threads" }, body: { a: 1 }, staleClaimMs: 60_000 };
      const first = await withIdempotency(database.db, request, async () => {
        pgProxy.cut(); // the claim is in; the work meets the outage
        await database.db.execute(sql`select 1`);
        return { status: 201, body: { id: "never" } };
      }).catch((e) => e);
      expect(outageOf(first)?.details).toEqual({ backend: "database" });
      pgProxy.restore();
      await Promise.race([database.whenAvailable(), Bun.sleep(5_000)]);
      // Within a few seconds (not the 60 s of a stale claim) a retry runs the work.
      const retried = await waitFor("the retry to be accepted", async () => {
        const r = await withIdempotency(database.db, request, async () => ({ status: 201, body: { id: "thr_1" } })).catch((e) => e);
        return r?.status === 201 ? r : null;
      }, 5_000, 200);
      expect(retried).toEqual({ status: 201, body: { id: "thr_1" }, replayed: false });
    } finally {
      await database.close();
    }
  });

  test("NATS: a request waiting for its reply fails at once when the connection drops, not at its timeout", async () => {
    const nats = await startNatsServer();
    const bus = await openBus({ url: nats.url, namespace: uniqueName("o"), log: silentLogger, name: "outage-test" });
    try {
      // A responder that never answers: without the fix the request waits its 15 s.
      bus.subscribe(bus.subject("rpc.slow.m"), () => {}, { queue: "slow" });
      await Bun.sleep(50);
      const started = performance.now();
      const pending = bus.request(bus.subject("rpc.slow.m"), {}, { timeoutMs: 15_000 }).catch((e) => e);
      await Bun.sleep(100);
      await nats.stop("SIGKILL");
      const err = await pending;
      expect(outageOf(err)?.details).toEqual({ backend: "bus" });
      expect(performance.now() - started).toBeLessThan(2_000);
      expect(bus.problem()).toMatch(/nats disconnected/);
      await nats.start();
      await waitFor("the bus to reconnect", () => bus.problem() === null, 10_000);
    } finally {
      await bus.close();
      await nats.destroy();
    }
  });

  test("Redis: values fail fast with the 503, rate limits are counted in-process meanwhile, it reconnects by itself", async () => {
    const cache = await openCache({ url: redisProxy.url(REAL_URLS.redis), namespace: uniqueName("o"), log: silentLogger });
    try {
      await cache.set("k", { v: 1 }, 10_000);
      expect(await cache.get("k")).toEqual({ v: 1 });
      expect((await cache.rateLimit("key", 3, 60_000)).allowed).toBe(true); // 1 of 3 in Redis
      redisProxy.cut();
      await waitFor("the client to notice", async () => (await cache.problem()) !== null, 5_000);
      const started = performance.now();
      expect(outageOf(await cache.get("k").catch((e) => e))?.details).toEqual({ backend: "cache" });
      // Local counting starts afresh: 3 allowed, the 4th refused.
      const local = [];
      for (let i = 0; i < 4; i++) local.push((await cache.rateLimit("key", 3, 60_000)).allowed);
      expect(local).toEqual([true, true, true, false]);
      expect(performance.now() - started).toBeLessThan(500);
      redisProxy.restore();
      await waitFor("the client to reconnect", async () => (await cache.problem()) === null, 10_000);
      expect(await cache.get("k")).toEqual({ v: 1 });
      // Back on the shared counter: 1 used before the outage, so 2 more allowed.
      const shared = [];
      for (let i = 0; i < 3; i++) shared.push((await cache.rateLimit("key", 3, 60_000)).allowed);
      expect(shared).toEqual([true, true, false]);
    } finally {
      await cache.close();
    }
  });
});
