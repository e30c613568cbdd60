/**
 * The run store's writes as cheap as they can be. On PostgreSQL, what the worker's step
 * boundaries write goes out as BEGIN + one statement (run update and events) + the work +
 * COMMIT at once: checked through a TCP proxy that holds every reply back, so statements sent
 * before an answer show up as one burst. On either store, a write without work is one
 * statement (counted on the embedded PGlite).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eq, sql } from "drizzle-orm";
import { runEvents, runSteps, runs, threads } from "../../schema";
import { createTestDatabase, describeReal } from "../../test/support/backends";
import { startTcpProxy, type TcpProxy } from "../../test/support/tcp-proxy";
import { openDatabase, type Database } from "../platform/db";
import { newId } from "../platform/ids";
import { silentLogger } from "../platform/logging";
import { RunStore, type MutateOptions } from "./store";
import type { RunRow } from "./types";

const OWNER = "worker-a";
const NO_BUS = () => ({ publish() {}, subject: (s: string) => s }) as never;

async function insertRun(database: Database, fields: Partial<RunRow> = {}): Promise<RunRow> {
  const orgId = newId("org");
  const threadId = newId("thr");
  await database.db.insert(threads).values({ id: threadId, orgId });
  const [run] = await database.db
    .insert(runs)
    .values({ id: newId("run"), orgId, threadId, agentId: newId("agt"), model: "m", status: "in_progress", usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }, leaseExpiresAt: sql`now() + interval '1 minute'`, ...fields })
    .returning();
  return run!;
}

/** A step boundary as the worker writes it: a step row, two events, a counter on the run. */
const stepBoundary = (owner: string, stepId: string, opts: { known?: RunRow; work?: MutateOptions<void>["work"] } = {}): MutateOptions<void> => ({
  fence: owner,
  set: { stepCount: sql`${runs.stepCount} + 1` },
  work: opts.work ?? (async (tx, r) => void (await tx.insert(runSteps).values({ id: stepId, orgId: r.orgId, runId: r.id, kind: "model_call", status: "in_progress" }))),
  events: [{ type: "step.created", data: { id: stepId, nested: { text: "é \" ' \\ 💡" } } }, { type: "message.delta", data: { step_id: stepId, delta: "hi" } }],
  pipelined: true,
  known: opts.known,
});

const eventsIn = (database: Database, runId: string) => database.db.select().from(runEvents).where(eq(runEvents.runId, runId)).orderBy(runEvents.seq);

describe("run store on the embedded PGlite", () => {
  const dir = mkdtempSync(join(tmpdir(), "agentos-store-"));
  const counted = { statement: 0, transaction: 0 };
  let database: Database;
  let store: RunStore;
  beforeAll(async () => {
    database = await openDatabase({ dataDir: dir, log: silentLogger, onStatement: (kind) => counted[kind]++ });
    await database.migrate();
    store = new RunStore(database.db, NO_BUS, database.oneTrip);
  });
  afterAll(async () => {
    await database?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const counting = async <T>(fn: () => Promise<T>) => {
    counted.statement = counted.transaction = 0;
    const result = await fn();
    return { result, ...counted };
  };

  test("taking the lease is one statement, no transaction: the run and its run.in_progress event, built in SQL", async () => {
    const run = await insertRun(database, { status: "queued", leaseExpiresAt: null });
    const { result, statement, transaction } = await counting(() => store.acquire(run.id, OWNER, 60_000));
    expect([statement, transaction]).toEqual([1, 0]);
    expect([result!.status, result!.attempts, result!.leaseOwner]).toEqual(["in_progress", 1, OWNER]);
    expect(result!.startedAt).toBeInstanceOf(Date);
    const [event] = await eventsIn(database, run.id);
    expect([event!.seq, event!.type, event!.data]).toEqual([1, "run.in_progress", { run_id: run.id, status: "in_progress", attempt: 1 }]);
    expect(await counting(() => store.acquire(run.id, "worker-b", 60_000)).then((c) => c.result)).toBeNull(); // leased: nobody else takes it
  });

  test("a step boundary is one transaction of two statements (the run with its events, the step); a lost lease writes nothing", async () => {
    const run = await insertRun(database, { leaseOwner: OWNER });
    const stepId = newId("stp");
    const { result, statement, transaction } = await counting(() => store.mutate(run.id, stepBoundary(OWNER, stepId, { known: run })));
    expect([statement, transaction]).toEqual([2, 1]);
    expect([result!.seqs, result!.run.stepCount]).toEqual([[1, 2], 1]);
    expect((await eventsIn(database, run.id)).map((e) => e.data)).toEqual([{ id: stepId, nested: { text: "é \" ' \\ 💡" } }, { step_id: stepId, delta: "hi" }]);
    expect(await store.mutate(run.id, stepBoundary("worker-b", newId("stp"), { known: run }))).toBeNull();
    expect(await eventsIn(database, run.id)).toHaveLength(2);
  });
});

await describeReal("run store: fenced writes in one round trip", () => {
  let created: Awaited<ReturnType<typeof createTestDatabase>>;
  let proxy: TcpProxy;
  let database: Database;
  let store: RunStore;
  const owner = OWNER;

  beforeAll(async () => {
    created = await createTestDatabase();
    const u = new URL(created.url);
    proxy = await startTcpProxy({ host: u.hostname, port: Number(u.port || 5432) }, { replyDelayMs: 15 });
    // One connection: every statement of a write shares it, and it holds the prepared statements.
    database = await openDatabase({ url: proxy.url(created.url), dataDir: "/nonexistent", log: silentLogger, poolSize: 1 });
    await database.migrate();
    store = new RunStore(database.db, NO_BUS, database.oneTrip);
  });
  afterAll(async () => {
    await database?.close();
    proxy?.stop();
    await created?.drop();
  });

  const leasedRun = () => insertRun(database, { leaseOwner: owner });
  const boundary = (run: RunRow, stepId: string, opts: { known?: RunRow; work?: MutateOptions<void>["work"] } = {}) => stepBoundary(owner, stepId, opts);

  const eventsOf = (runId: string) => eventsIn(database, runId);
  const stepsOf = (runId: string) => database.db.select().from(runSteps).where(eq(runSteps.runId, runId));

  test("with `known`, BEGIN, the run update with its events, the work and COMMIT are one round trip (three without)", async () => {
    const run = await leasedRun();
    // First writes of each kind: the connection prepares their statements (described first, one at a time).
    await store.mutate(run.id, boundary(run, newId("stp"), { known: run }));
    await store.mutate(run.id, boundary(run, newId("stp")));

    proxy.resetBursts();
    const oneTrip = await store.mutate(run.id, boundary(run, newId("stp"), { known: run }));
    expect(proxy.clientBursts()).toBe(1);
    proxy.resetBursts();
    const awaited = await store.mutate(run.id, boundary(run, newId("stp")));
    expect(proxy.clientBursts()).toBe(3);

    // Same outcome either way: the updated run, contiguous seqs, the events as given.
    expect(oneTrip!.run.stepCount).toBe(3);
    expect(oneTrip!.seqs).toEqual([5, 6]);
    expect(awaited!.run.stepCount).toBe(4);
    expect(awaited!.seqs).toEqual([7, 8]);
    expect(oneTrip!.run.updatedAt).toBeInstanceOf(Date);
    expect(oneTrip!.run.usage).toEqual({ prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 });
    const events = await eventsOf(run.id);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(events[4]!.data).toEqual({ id: expect.any(String), nested: { text: "é \" ' \\ 💡" } });
    expect(events.every((e) => e.orgId === run.orgId && e.id.startsWith("evt_"))).toBe(true);
    expect(await stepsOf(run.id)).toHaveLength(4);
  });

  test("a lost lease: null, and neither the work nor the events nor the run update is written", async () => {
    const run = await leasedRun();
    await database.db.update(runs).set({ leaseOwner: "worker-b" }).where(eq(runs.id, run.id));
    const stepId = newId("stp");
    // While another transaction waits for the one connection: both settle.
    const both = await Promise.race([
      Promise.all([store.mutate(run.id, boundary(run, stepId, { known: run })), database.db.transaction(async (tx) => tx.select({ id: runs.id }).from(runs).where(eq(runs.id, run.id)))]),
      Bun.sleep(5_000).then(() => "hung" as const),
    ]);
    expect(both).toEqual([null, [{ id: run.id }]]);
    const { fence: _, ...unfenced } = boundary(run, stepId, { known: run });
    await expect(store.fenced(run.id, owner, unfenced)).rejects.toThrow(/lease on run .* lost/);
    expect(await stepsOf(run.id)).toEqual([]);
    expect(await eventsOf(run.id)).toEqual([]);
    const [after] = await database.db.select().from(runs).where(eq(runs.id, run.id));
    expect([after!.nextSeq, after!.stepCount]).toEqual([1, 0]);
    // The connection is out of the aborted transaction: the next write goes through.
    await database.db.update(runs).set({ leaseOwner: owner }).where(eq(runs.id, run.id));
    expect((await store.mutate(run.id, boundary(run, stepId, { known: run })))!.seqs).toEqual([1, 2]);
  });

  test("a work statement that fails rolls the whole write back, the run update and events included", async () => {
    const run = await leasedRun();
    const stepId = newId("stp");
    await store.mutate(run.id, boundary(run, stepId, { known: run }));
    const failed = await store.mutate(run.id, boundary(run, stepId, { known: run })).then(() => null, (e: Error) => e);
    expect(failed?.message).toMatch(/duplicate key|run_steps_pkey/);
    expect((await eventsOf(run.id)).map((e) => e.seq)).toEqual([1, 2]);
    const [after] = await database.db.select().from(runs).where(eq(runs.id, run.id));
    expect([after!.nextSeq, after!.stepCount]).toEqual([3, 1]);
  });

  test("work that reads a statement's result is refused before anything is sent", async () => {
    const run = await leasedRun();
    const reading: MutateOptions<void>["work"] = async (tx, r) => {
      await tx.insert(runSteps).values({ id: newId("stp"), orgId: r.orgId, runId: r.id, kind: "model_call", status: "in_progress" }).returning();
    };
    const refused = await store.mutate(run.id, boundary(run, "unused", { known: run, work: reading })).then(() => null, (e: Error) => e);
    expect(((refused?.cause as Error | undefined) ?? refused)?.message).toMatch(/cannot read its result/); // Drizzle wraps it: "Failed query: …"
    expect(await stepsOf(run.id)).toEqual([]);
    expect(await eventsOf(run.id)).toEqual([]);
  });
});
