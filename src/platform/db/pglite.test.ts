/**
 * The embedded PGlite (0.5.x, PostgreSQL 18): memory settings on the command line, persistence,
 * the Drizzle pglite driver, full-text search, and a clear refusal of a data dir written by
 * another PostgreSQL major version.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { and, eq, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/pglite";
import { customType, index, integer, pgTable, text } from "drizzle-orm/pg-core";
import { closePglite, openPglite, type PGlite } from "./pglite";

const TIMEOUT = 60_000;
const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "agentos-pglite-"));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function setting(db: PGlite, name: string): Promise<string> {
  const r = await db.query<{ v: string }>("select current_setting($1) as v", [name]);
  return r.rows[0]!.v;
}

describe("openPglite", () => {
  test(
    "in memory: PostgreSQL 18 with shared_buffers=8MB and wal_buffers=1MB by default",
    async () => {
      const db = await openPglite("memory://");
      try {
        expect(await setting(db, "server_version_num")).toStartWith("18");
        expect(await setting(db, "shared_buffers")).toBe("8MB");
        expect(await setting(db, "wal_buffers")).toBe("1MB");
        // initdb's postgresql.conf is still in force (not replaced by ours)
        expect(await setting(db, "default_text_search_config")).toBe("pg_catalog.english");
        expect(await setting(db, "TimeZone")).toBe("UTC");
      } finally {
        await closePglite(db);
      }
      expect(db.closed).toBe(true);
      await closePglite(db); // twice is fine
      await closePglite(undefined);
    },
    TIMEOUT,
  );

  test(
    "sizes of any length are accepted; malformed ones are refused",
    async () => {
      const db = await openPglite("memory://", { sharedBuffers: "16384kB", walBuffers: "-1" });
      try {
        expect(await setting(db, "shared_buffers")).toBe("16MB");
        expect(await setting(db, "wal_buffers")).toBe("512kB"); // -1 = shared_buffers / 32
      } finally {
        await closePglite(db);
      }
      await expect(openPglite("memory://", { sharedBuffers: "8MB -c fsync=off" })).rejects.toThrow(/invalid shared_buffers/);
      await expect(openPglite("memory://", { walBuffers: "lots" })).rejects.toThrow(/invalid wal_buffers/);
    },
    TIMEOUT,
  );

  test(
    "on disk: data under <dataDir>/pglite persists across close and reopen; settings apply to an existing dir",
    async () => {
      const dir = tempDir();
      const a = await openPglite(dir);
      await a.exec("create table kv (k text primary key, v text not null); insert into kv values ('a', 'kept');");
      await closePglite(a);
      expect(readFileSync(join(dir, "pglite", "PG_VERSION"), "utf8").trim()).toBe("18");

      const b = await openPglite(dir, { sharedBuffers: "32MB" });
      try {
        expect((await b.query<{ v: string }>("select v from kv where k = 'a'")).rows).toEqual([{ v: "kept" }]);
        expect(await setting(b, "shared_buffers")).toBe("32MB");
      } finally {
        await closePglite(b);
      }
    },
    TIMEOUT,
  );

  test(
    "a data dir of another PostgreSQL major version is refused with a migration hint and left untouched",
    async () => {
      const dir = tempDir();
      await closePglite(await openPglite(dir));
      // What a PGlite 0.3.x (PostgreSQL 17) data dir looks like to PostgreSQL 18.
      const pgVersion = join(dir, "pglite", "PG_VERSION");
      writeFileSync(pgVersion, "17\n");
      const before = readdirSync(join(dir, "pglite")).sort();

      const err = await openPglite(dir).then(
        () => null,
        (e: Error) => e,
      );
      expect(err).toBeInstanceOf(Error);
      expect(err!.message).toContain("created by an older embedded PostgreSQL (17)");
      expect(err!.message).toContain("embeds PostgreSQL 18");
      expect(err!.message).toContain("pg_dump");
      expect(readFileSync(pgVersion, "utf8")).toBe("17\n");
      expect(readdirSync(join(dir, "pglite")).sort()).toEqual(before);
      expect(existsSync(join(dir, "pglite", "base"))).toBe(true);
    },
    TIMEOUT,
  );
});

// --- drizzle-orm/pglite over the new PGlite -------------------------------------------------------

const tsvector = customType<{ data: string }>({ dataType: () => "tsvector" });

const accounts = pgTable("accounts", {
  id: text("id").primaryKey(),
  balance: integer("balance").notNull(),
});

const notes = pgTable(
  "notes",
  {
    id: integer("id").primaryKey().generatedAlwaysAsIdentity(),
    content: text("content").notNull(),
    searchVector: tsvector("search_vector").generatedAlwaysAs(sql`to_tsvector('english', content)`),
  },
  (t) => [index("notes_search_idx").using("gin", t.searchVector)],
);

const DDL = `
create table accounts (id text primary key, balance integer not null);
create table notes (
  id integer primary key generated always as identity,
  content text not null,
  search_vector tsvector generated always as (to_tsvector('english', content)) stored
);
create index notes_search_idx on notes using gin (search_vector);
`;

describe("drizzle-orm/pglite on the embedded database", () => {
  test(
    "returning, onConflictDoNothing, transactions with select … for update, rollback, raw execute",
    async () => {
      const client = await openPglite("memory://");
      try {
        await client.exec(DDL);
        const db = drizzle(client, { schema: { accounts, notes } });

        const inserted = await db.insert(accounts).values([{ id: "a", balance: 100 }, { id: "b", balance: 0 }]).returning();
        expect(inserted).toEqual([{ id: "a", balance: 100 }, { id: "b", balance: 0 }]);

        const dup = await db.insert(accounts).values({ id: "a", balance: 999 }).onConflictDoNothing().returning();
        expect(dup).toEqual([]);

        await db.transaction(async (tx) => {
          const [from] = await tx.select().from(accounts).where(eq(accounts.id, "a")).for("update");
          expect(from!.balance).toBe(100);
          await tx.update(accounts).set({ balance: sql`${accounts.balance} - 30` }).where(eq(accounts.id, "a"));
          await tx.update(accounts).set({ balance: sql`${accounts.balance} + 30` }).where(eq(accounts.id, "b"));
        });

        await expect(
          db.transaction(async (tx) => {
            await tx.update(accounts).set({ balance: 0 }).where(eq(accounts.id, "a"));
            throw new Error("abort");
          }),
        ).rejects.toThrow("abort");

        await db.transaction(async (tx) => {
          await tx.update(accounts).set({ balance: -1 }).where(eq(accounts.id, "b"));
          tx.rollback();
        }).catch(() => {});

        const after = await db.select().from(accounts).orderBy(accounts.id);
        expect(after).toEqual([{ id: "a", balance: 70 }, { id: "b", balance: 30 }]);

        const raw: any = await db.execute(sql`select id, balance from accounts where balance > ${50}`);
        expect(raw.rows).toEqual([{ id: "a", balance: 70 }]);

        const updated = await db
          .update(accounts)
          .set({ balance: 1 })
          .where(and(eq(accounts.id, "b"), eq(accounts.balance, 30)))
          .returning({ id: accounts.id });
        expect(updated).toEqual([{ id: "b" }]);
      } finally {
        await closePglite(client);
      }
    },
    TIMEOUT,
  );

  test(
    "full-text search: generated tsvector column, GIN index, websearch_to_tsquery, ts_rank",
    async () => {
      const client = await openPglite("memory://");
      try {
        await client.exec(DDL);
        const db = drizzle(client, { schema: { accounts, notes } });
        await db.insert(notes).values([
          { content: "The quick brown foxes are jumping over lazy dogs" },
          { content: "A fox jumped. The fox ran. Foxes everywhere!" },
          { content: "Nothing about animals here, only databases and indexes" },
        ]);

        const [vec] = await db.select({ v: notes.searchVector }).from(notes).where(eq(notes.id, 1));
        expect(vec!.v).toContain("'fox':"); // stemmed by the english config

        const q = sql`websearch_to_tsquery('english', ${'fox -"lazy dogs"'})`;
        const hits = await db
          .select({ id: notes.id, rank: sql<number>`ts_rank(${notes.searchVector}, ${q})` })
          .from(notes)
          .where(sql`${notes.searchVector} @@ ${q}`)
          .orderBy(sql`ts_rank(${notes.searchVector}, ${q}) desc`);
        expect(hits.map((h) => h.id)).toEqual([2]);
        expect(hits[0]!.rank).toBeGreaterThan(0);

        const ranked: any = await db.execute(
          sql`select id from notes where search_vector @@ websearch_to_tsquery('english', 'foxes OR databases')
              order by ts_rank(search_vector, websearch_to_tsquery('english', 'foxes OR databases')) desc, id`,
        );
        expect(ranked.rows.map((r: any) => r.id)).toEqual([2, 1, 3]);

        // the GIN index is usable for the match
        await client.exec("set enable_seqscan = off");
        const plan = await client.query<{ "QUERY PLAN": string }>(
          "explain select id from notes where search_vector @@ websearch_to_tsquery('english', 'fox')",
        );
        expect(plan.rows.map((r) => r["QUERY PLAN"]).join("\n")).toContain("notes_search_idx");

        // plain to_tsvector also works outside a column
        const direct = await client.query<{ ok: boolean }>(
          "select to_tsvector('english', 'Running runners ran') @@ to_tsquery('english', 'run') as ok",
        );
        expect(direct.rows[0]!.ok).toBe(true);
      } finally {
        await closePglite(client);
      }
    },
    TIMEOUT,
  );
});
