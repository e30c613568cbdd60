/**
 * Relay semantics of the transactional outbox: every committed event is published with its
 * id as the dedupe key; a crash between publish and mark re-publishes (consumers dedupe by
 * id); concurrent relays never publish or mark a row twice and skip nothing; a row committed
 * after a later-id row is still relayed (no "id > last seen" cursor).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { createTestDatabase, describeReal } from "../../test/support/backends";
import { MemoryBus, type Headers } from "./bus";
import { openDatabase, rowsOf, type Database, type Db } from "./db";
import { silentLogger } from "./logging";
import { EVENTS_STREAM, emitEvent, relayOnce, startOutboxRelay, type DomainEvent } from "./outbox";
import type { EventType } from "./event-types";

/** A MemoryBus that records every durable publish (before the broker's msgId dedupe). */
class RecordingBus extends MemoryBus {
  durable: { msgId: string; subject: string; data: DomainEvent }[] = [];
  live: { subject: string; data: DomainEvent }[] = [];
  failLiveOnce = false;
  async publishDurable(stream: string, subject: string, data: unknown, opts: { msgId: string; headers?: Headers }) {
    this.durable.push({ msgId: opts.msgId, subject, data: data as DomainEvent });
    return super.publishDurable(stream, subject, data, opts);
  }
  publish(subject: string, data: unknown, headers?: Headers) {
    if (subject.includes(".live.")) {
      if (this.failLiveOnce) {
        this.failLiveOnce = false;
        throw new Error("simulated crash after the durable publish, before the row is marked");
      }
      this.live.push({ subject, data: data as DomainEvent });
    }
    super.publish(subject, data, headers);
  }
}

async function unpublished(db: Db): Promise<number> {
  const [row] = rowsOf<{ n: number | string }>(await db.execute(sql`select count(*) as n from outbox_events where published_at is null`));
  return Number(row.n);
}

async function emitMany(db: Db, n: number, orgId = "org_test") {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(await emitEvent(db, { orgId, type: "test.happened" as EventType, payload: { i } }));
  return ids;
}

function relaySuite(open: () => Promise<{ database: Database; second: () => Promise<Database>; close(): Promise<void> }>, opts: { concurrentTransactions: boolean }) {
  let env: Awaited<ReturnType<typeof open>>;
  let db: Db;
  beforeAll(async () => {
    env = await open();
    db = env.database.db;
  });
  afterAll(() => env?.close());

  const freshBus = async () => {
    const bus = new RecordingBus("tns");
    await bus.ensureStream(EVENTS_STREAM);
    return bus;
  };

  test("committed events are published durably (msgId = event id) and live, then marked", async () => {
    const bus = await freshBus();
    const id = await emitEvent(db, { orgId: "org_a", type: "run.completed", payload: { run_id: "run_1" } });
    expect(await relayOnce(db, bus)).toBeGreaterThanOrEqual(1);
    const sent = bus.durable.find((d) => d.msgId === id)!;
    expect(sent.subject).toBe("tns.events.run.completed");
    expect(sent.data).toMatchObject({ id, org_id: "org_a", type: "run.completed", payload: { run_id: "run_1" } });
    expect(new Date(sent.data.created_at).toISOString()).toBe(sent.data.created_at);
    expect(bus.live.find((l) => l.data.id === id)?.subject).toBe("tns.live.org_a");
    expect(await unpublished(db)).toBe(0);
    expect(await relayOnce(db, bus)).toBe(0);
  });

  test("an event emitted in a rolled-back transaction is never published", async () => {
    const bus = await freshBus();
    await db.transaction(async (tx) => {
      await emitEvent(tx, { orgId: "org_a", type: "never.happened" as EventType, payload: {} });
      tx.rollback();
    }).catch(() => {});
    expect(await relayOnce(db, bus)).toBe(0);
    expect(bus.durable.length).toBe(0);
  });

  test("a crash between publish and mark re-publishes with the same id; the stream's consumers see it once", async () => {
    const bus = await freshBus();
    const seen: string[] = [];
    await bus.consume<DomainEvent>(EVENTS_STREAM.name, async (job) => {
      seen.push(job.data.id);
      return "ack";
    }, { durable: "probe", concurrency: 1, ackWaitMs: 5000, maxDeliver: 3 });
    const [id] = await emitMany(db, 1);
    bus.failLiveOnce = true;
    await expect(relayOnce(db, bus)).rejects.toThrow("simulated crash");
    expect(await unpublished(db)).toBe(1); // the mark rolled back with the relay's transaction
    expect(await relayOnce(db, bus)).toBe(1);
    expect(bus.durable.filter((d) => d.msgId === id).length).toBe(2); // published twice …
    await Bun.sleep(20);
    expect(seen.filter((s) => s === id).length).toBe(1); // … deduplicated by the event id
    expect(await unpublished(db)).toBe(0);
  });

  test("two relays running concurrently publish and mark every row exactly once", async () => {
    const other = await env.second();
    try {
      const bus = await freshBus();
      const ids = await emitMany(db, 120);
      const drain = async (d: Db) => {
        let total = 0;
        for (;;) {
          const n = await relayOnce(d, bus, 7);
          if (n === 0 && (await unpublished(d)) === 0) return total;
          total += n;
        }
      };
      const [a, b] = await Promise.all([drain(db), drain(other.db)]);
      expect(a + b).toBe(120);
      if (opts.concurrentTransactions) expect(a > 0 && b > 0).toBe(true);
      const counts = new Map<string, number>();
      for (const d of bus.durable) counts.set(d.msgId, (counts.get(d.msgId) ?? 0) + 1);
      for (const id of ids) expect(counts.get(id)).toBe(1);
      const [row] = rowsOf<{ n: number | string; max: number | string }>(await db.execute(sql`select count(*) as n, max(attempts) as max from outbox_events where id in ${sql.raw(`(${ids.map((i) => `'${i}'`).join(",")})`)}`));
      expect(Number(row.n)).toBe(120);
      expect(Number(row.max)).toBe(1); // marked once each
    } finally {
      if (other !== env.database) await other.close();
    }
  });

  test("the relay loop relays events committed after it started and stops cleanly", async () => {
    const bus = await freshBus();
    const relay = startOutboxRelay(db, bus, silentLogger, 20);
    const [id] = await emitMany(db, 1);
    relay.poke();
    for (let i = 0; i < 100 && !bus.durable.some((d) => d.msgId === id); i++) await Bun.sleep(10);
    await relay.stop();
    expect(bus.durable.some((d) => d.msgId === id)).toBe(true);
  });

  if (opts.concurrentTransactions) {
    test("a row committed after a later one is not skipped (no 'id > last seen')", async () => {
      const bus = await freshBus();
      let releaseEarly!: () => void;
      const hold = new Promise<void>((r) => (releaseEarly = r));
      let earlyId = "";
      const early = db.transaction(async (tx) => {
        earlyId = await emitEvent(tx, { orgId: "org_a", type: "test.early" as EventType, payload: {} });
        await hold; // committed only after the later event was relayed
      });
      while (!earlyId) await Bun.sleep(5);
      const other = await env.second();
      try {
        const lateId = await emitEvent(other.db, { orgId: "org_a", type: "test.late" as EventType, payload: {} });
        expect(earlyId < lateId).toBe(true);
        expect(await relayOnce(other.db, bus)).toBe(1);
        expect(bus.durable.map((d) => d.msgId)).toEqual([lateId]);
        releaseEarly();
        await early;
        expect(await relayOnce(other.db, bus)).toBe(1);
        expect(bus.durable.map((d) => d.msgId)).toEqual([lateId, earlyId]);
      } finally {
        await other.close();
      }
    });
  }
}

describe("outbox relay on the embedded PGlite", () => {
  relaySuite(async () => {
    const dir = mkdtempSync(join(tmpdir(), "agentos-outbox-"));
    const database = await openDatabase({ dataDir: dir, log: silentLogger });
    await database.migrate();
    return {
      database,
      // PGlite is one connection: a "second relay" shares it (transactions serialise).
      second: async () => database,
      async close() {
        await database.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }, { concurrentTransactions: false });
});

await describeReal("outbox relay on PostgreSQL", () => {
  relaySuite(async () => {
    const created = await createTestDatabase();
    const database = await openDatabase({ url: created.url, dataDir: "", log: silentLogger });
    await database.migrate();
    return {
      database,
      second: () => openDatabase({ url: created.url, dataDir: "", log: silentLogger }),
      async close() {
        await database.close();
        await created.drop();
      },
    };
  }, { concurrentTransactions: true });
});
