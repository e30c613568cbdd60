/**
 * Parameterised queries run as named prepared statements on PostgreSQL (half the client CPU of
 * an insert, see index.ts), in transactions too, unless DATABASE_PREPARED_STATEMENTS=false.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { createTestDatabase, describeReal } from "../../../test/support/backends";
import { silentLogger } from "../logging";
import { openDatabase, type Database } from "./index";
import { rowsOf } from "./rows";

await describeReal("prepared statements", () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(() => database?.drop());

  /** Prepared statements of the one pooled connection, after a parameterised query outside and inside a transaction. */
  async function preparedAfterQueries(prepare: boolean) {
    const db: Database = await openDatabase({ url: database.url, dataDir: "/nonexistent", log: silentLogger, poolSize: 1, prepare });
    try {
      const one = rowsOf<{ v: number }>(await db.db.execute(sql`select ${41}::int + 1 as v`));
      expect(one[0].v).toBe(42);
      await db.db.transaction(async (tx) => {
        const inTx = rowsOf<{ v: string }>(await tx.execute(sql`select ${"in"}::text || ${"tx"}::text as v`));
        expect(inTx[0].v).toBe("intx");
      });
      const rows = rowsOf<{ statement: string }>(await db.db.execute(sql`select statement from pg_prepared_statements`));
      return rows.map((r) => r.statement);
    } finally {
      await db.close();
    }
  }

  test("on by default: outside and inside transactions", async () => {
    const statements = await preparedAfterQueries(true);
    expect(statements.some((s) => s.includes("+ 1 as v"))).toBe(true);
    expect(statements.some((s) => s.includes("|| $2::text"))).toBe(true);
  });

  test("off: no query of ours is prepared (postgres.js prepares only its own: type fetch, probe, commit)", async () => {
    const statements = await preparedAfterQueries(false);
    expect(statements.filter((s) => s.includes("$1"))).toEqual([]);
  });
});
