/**
 * agentos_db_statements_total counts what the store is sent — each query (in transactions
 * too) and each transaction — the same way on PostgreSQL and on the embedded PGlite, so the
 * runs bench can report statements per run.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestDatabase, describeReal } from "../../../test/support/backends";
import { silentLogger } from "../logging";
import { openDatabase, type Database } from "./index";
import { rowsOf } from "./rows";

/** After open (its own queries: migrations are not applied here), a query, then a transaction of two statements. */
async function countsOf(open: (onStatement: (kind: "statement" | "transaction") => void) => Promise<Database>) {
  const counts = { statement: 0, transaction: 0 };
  const database = await open((kind) => counts[kind]++);
  try {
    const before = { ...counts };
    const one = rowsOf<{ v: number }>(await database.db.execute(sql`select ${41}::int + 1 as v`));
    expect(one[0].v).toBe(42);
    await database.db.transaction(async (tx) => {
      await tx.execute(sql`select 1`);
      await tx.execute(sql`select ${"a"}::text as v`);
    });
    return { statement: counts.statement - before.statement, transaction: counts.transaction - before.transaction };
  } finally {
    await database.close();
  }
}

describe("statement counts, embedded", () => {
  test("each query and each transaction is counted once", async () => {
    const dir = mkdtempSync(join(tmpdir(), "agentos-statements-"));
    try {
      expect(await countsOf((onStatement) => openDatabase({ dataDir: dir, log: silentLogger, onStatement }))).toEqual({ statement: 3, transaction: 1 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

await describeReal("statement counts, PostgreSQL", () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(() => database?.drop());

  for (const prepare of [true, false]) {
    test(`each query and each transaction is counted once (prepared statements ${prepare ? "on" : "off"})`, async () => {
      expect(await countsOf((onStatement) => openDatabase({ url: database.url, dataDir: "/nonexistent", log: silentLogger, poolSize: 2, prepare, onStatement }))).toEqual({ statement: 3, transaction: 1 });
    });
  }
});
