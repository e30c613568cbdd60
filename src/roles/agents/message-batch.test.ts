/**
 * Concurrent message writes are committed together (group commit, src/platform/db/batcher.ts),
 * on the embedded PGlite and on the real PostgreSQL: every request keeps its own answer, a
 * missing or foreign thread is a 404 for that request alone, a database error in a batch fails
 * only the bad row, Idempotency-Key writes replay as before, and an outage loses nothing.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { createTestDatabase, describeReal, REAL_URLS } from "../../../test/support/backends";
import { startTcpProxy, type TcpProxy } from "../../../test/support/tcp-proxy";
import { openDatabase, rowsOf, type Database } from "../../platform/db";
import { AppError } from "../../platform/errors";
import { silentLogger } from "../../platform/logging";
import { outageOf } from "../../platform/outage";
import { AgentsService } from "./service";

const TIMEOUT = 60_000;

function serviceOn(database: Database, messageBatchMax = 64) {
  return new AgentsService({
    db: database.db,
    bus: () => { throw new Error("no bus in this test"); },
    memory: () => { throw new Error("no memory role in this test"); },
    tools: () => { throw new Error("no tools role in this test"); },
    idempotencyStaleMs: 60_000,
    messageBatchMax,
    assertModelServed: async () => {},
  });
}

const statusOf = (p: Promise<unknown>) => p.then((r) => (r as { status: number }).status, (e) => (e instanceof AppError ? e.status : `${(e as Error).message}`));
/** How many statements the service's batcher sent (private: read for the test only). */
const batchStats = (s: AgentsService) => (s as unknown as { messageWrites: { stats: { batches: number; items: number; largest: number; retriedAlone: number } } }).messageWrites.stats;

function batchingSuite(open: () => Promise<Database>) {
  let database: Database;
  let service: AgentsService;
  let threadA: string;
  let threadB: string;
  let foreignThread: string;
  beforeAll(async () => {
    database = await open();
    await database.migrate();
    service = serviceOn(database);
    threadA = (await service.createThread("org_a", {})).body.id;
    threadB = (await service.createThread("org_a", {})).body.id;
    foreignThread = (await service.createThread("org_other", {})).body.id;
  }, TIMEOUT);
  afterAll(() => database?.close());

  test("concurrent writes share statements; each gets its own 201 body; ids unique, created_at follows the ids", async () => {
    const before = { ...batchStats(service) };
    const inputs = Array.from({ length: 40 }, (_, i) => ({ thread: i % 2 ? threadA : threadB, role: (i % 3 ? "user" : "assistant") as "user" | "assistant", content: `m${i} ünï "q" \\ ${"x".repeat(i)}`, metadata: i % 4 ? { i, nested: { ok: true } } : undefined }));
    const results = await Promise.all(inputs.map((m) => service.createMessage("org_a", m.thread, { role: m.role, content: m.content, metadata: m.metadata })));
    const stats = batchStats(service);
    expect(stats.batches - before.batches).toBeLessThan(inputs.length); // batched, not one statement each
    expect(stats.largest).toBeGreaterThan(1);
    results.forEach((r, i) => {
      expect(r.status).toBe(201);
      expect(r.replayed).toBe(false);
      expect(r.body).toEqual({
        id: expect.stringMatching(/^msg_/), object: "message", thread_id: inputs[i].thread, role: inputs[i].role, content: inputs[i].content,
        tool_calls: null, tool_call_id: null, run_id: null, parsed: null, metadata: inputs[i].metadata ?? {}, created_at: expect.any(String),
      });
    });
    const ids = results.map((r) => r.body.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids); // issued in submission order
    const times = results.map((r) => Date.parse(r.body.created_at));
    for (let i = 1; i < times.length; i++) expect(times[i]).toBeGreaterThanOrEqual(times[i - 1]);
    // What was answered is what was stored.
    const stored = await service.getMessage("org_a", inputs[7].thread, ids[7]);
    expect(stored).toEqual(results[7].body);
  }, TIMEOUT);

  test("a missing thread or another organization's thread is a 404 for that request only", async () => {
    const calls = [
      service.createMessage("org_a", threadA, { role: "user", content: "ok 1" }),
      service.createMessage("org_a", foreignThread, { role: "user", content: "foreign" }),
      service.createMessage("org_a", "thr_01ARZ3NDEKTSV4RRFFQ69G5FAV", { role: "user", content: "missing" }),
      service.createMessage("org_a", "not-an-id", { role: "user", content: "bad id" }),
      service.createMessage("org_a", threadB, { role: "user", content: "ok 2" }),
    ];
    expect(await Promise.all(calls.map(statusOf))).toEqual([201, 404, 404, 404, 201]);
    const foreign = rowsOf<{ n: number }>(await database.db.execute(sql`select count(*)::int as n from messages where thread_id = ${foreignThread}`));
    expect(foreign[0].n).toBe(0);
  }, TIMEOUT);

  test("a database error in a batch fails only the bad row: the others are inserted one by one", async () => {
    await database.db.execute(sql.raw(`alter table messages add constraint test_no_poison check (content <> 'poison')`));
    try {
      const before = batchStats(service).retriedAlone;
      const contents = ["fine 1", "fine 2", "poison", "fine 3", "fine 4"];
      const statuses = await Promise.all(contents.map((content) => statusOf(service.createMessage("org_a", threadA, { role: "user", content }))));
      expect(statuses.filter((s) => s === 201)).toHaveLength(4);
      expect(statuses[2]).not.toBe(201);
      expect(batchStats(service).retriedAlone).toBeGreaterThan(before);
      const stored = rowsOf<{ content: string }>(await database.db.execute(sql`select content from messages where content in ('fine 1', 'fine 2', 'fine 3', 'fine 4', 'poison') order by id`));
      expect(stored.map((r) => r.content)).toEqual(["fine 1", "fine 2", "fine 3", "fine 4"]);
    } finally {
      await database.db.execute(sql.raw(`alter table messages drop constraint test_no_poison`));
    }
  }, TIMEOUT);

  test("Idempotency-Key writes: the first writes (batched with others), a retry replays it, another body is refused", async () => {
    const scope = (key: string) => ({ key, route: "POST /v1/threads/:id/messages" });
    const [first, plain] = await Promise.all([
      service.createMessage("org_a", threadA, { role: "user", content: "once" }, scope("k-1")),
      service.createMessage("org_a", threadA, { role: "user", content: "plain" }),
    ]);
    expect([first.status, first.replayed, plain.status]).toEqual([201, false, 201]);
    const again = await service.createMessage("org_a", threadA, { role: "user", content: "once" }, scope("k-1"));
    expect(again).toEqual({ ...first, replayed: true });
    expect(await statusOf(service.createMessage("org_a", threadA, { role: "user", content: "other" }, scope("k-1")))).toBe(409);
    const missing = service.createMessage("org_a", "thr_01ARZ3NDEKTSV4RRFFQ69G5FAV", { role: "user", content: "x" }, scope("k-2"));
    expect(await statusOf(missing)).toBe(404);
    expect(await statusOf(service.createMessage("org_a", "thr_01ARZ3NDEKTSV4RRFFQ69G5FAV", { role: "user", content: "x" }, scope("k-2")))).toBe(404); // the stored 404 replays
    const once = rowsOf<{ n: number }>(await database.db.execute(sql`select count(*)::int as n from messages where content = 'once'`));
    expect(once[0].n).toBe(1);
  }, TIMEOUT);

  test("--message-batch-max=1: one statement per message (concurrently, no group commit), same answers", async () => {
    const single = serviceOn(database, 1);
    const results = await Promise.all([1, 2, 3].map((i) => single.createMessage("org_a", threadB, { role: "user", content: `single ${i}` })));
    expect(results.map((r) => r.body.content)).toEqual(["single 1", "single 2", "single 3"]);
    expect(batchStats(single)).toMatchObject({ batches: 3, largest: 1 });
  }, TIMEOUT);
}

describe("message group commit [embedded PGlite]", () => {
  batchingSuite(() => openDatabase({ dataDir: "memory://", log: silentLogger }));
});

await describeReal("message group commit", () => {
  let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
  describe("", () => {
    beforeAll(async () => {
      testDb = await createTestDatabase();
    });
    batchingSuite(() => openDatabase({ url: testDb.url, dataDir: "/nonexistent", log: silentLogger }));
  });

  describe("when the connection dies", () => {
    let proxyDb: Awaited<ReturnType<typeof createTestDatabase>>;
    let proxy: TcpProxy;
    beforeAll(async () => {
      proxyDb = await createTestDatabase();
      const pg = new URL(REAL_URLS.postgres);
      proxy = await startTcpProxy({ host: pg.hostname, port: Number(pg.port || 5432) });
    });
    afterAll(async () => {
      proxy?.stop();
      await proxyDb?.drop();
      await testDb?.drop();
    });

    test("every request of the batches in flight gets the 503, nothing is half-done, and writes work again once it is back", async () => {
      const database = await openDatabase({ url: proxy.url(proxyDb.url), dataDir: "/nonexistent", log: silentLogger, connectTimeoutMs: 1000 });
      try {
        await database.migrate();
        const service = serviceOn(database);
        const thread = (await service.createThread("org_a", {})).body.id;
        const inFlight = Array.from({ length: 20 }, (_, i) => service.createMessage("org_a", thread, { role: "user", content: `during ${i}` }).then(() => "ok", (e) => e));
        proxy.cut();
        const outcomes = await Promise.all(inFlight);
        // Each request answered (none hangs); the ones that did not commit say why.
        expect(outcomes.some((o) => o !== "ok")).toBe(true);
        for (const o of outcomes) if (o !== "ok") expect(outageOf(o)?.details).toEqual({ backend: "database" });
        proxy.restore();
        await Promise.race([database.whenAvailable(), Bun.sleep(5_000)]);
        const after = await Promise.all([1, 2, 3].map((i) => service.createMessage("org_a", thread, { role: "user", content: `after ${i}` })));
        expect(after.map((r) => r.status)).toEqual([201, 201, 201]);
        // What was answered 201 is stored; what failed is not (each batch is one statement: all or nothing).
        const stored = rowsOf<{ content: string }>(await database.db.execute(sql`select content from messages where thread_id = ${thread}`)).map((r) => r.content);
        const answeredOk = outcomes.map((o, i) => (o === "ok" ? `during ${i}` : null)).filter(Boolean);
        expect(stored.filter((c) => c.startsWith("during")).sort()).toEqual((answeredOk as string[]).sort());
        expect(stored.filter((c) => c.startsWith("after"))).toHaveLength(3);
      } finally {
        await database.close();
      }
    }, TIMEOUT);
  });
});
