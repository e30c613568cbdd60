/**
 * Applies the embedded migrations once, in order, inside one transaction that holds a
 * transaction-scoped advisory lock: two processes starting at once serialise here and the
 * second finds everything applied.
 */
import { sha256Hex } from "../hash";
import { sql } from "drizzle-orm";
import { migrations } from "../../../schema/migrations";
import type { Logger } from "../logging";
import type { Db } from "./index";
import { rowsOf } from "./rows";

const LOCK_KEY = 0x6167_656e; // "agen"

export async function applyMigrations(db: Db, log: Logger): Promise<string[]> {
  const applied: string[] = [];
  await db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${LOCK_KEY})`);
    await tx.execute(sql`create table if not exists agentos_migrations (
      tag text primary key,
      hash text not null,
      applied_at timestamptz not null default now()
    )`);
    const done = new Set(
      rowsOf<{ tag: string }>(await tx.execute(sql`select tag from agentos_migrations`)).map((r) => r.tag),
    );
    for (const m of migrations) {
      if (done.has(m.tag)) continue;
      for (const statement of m.sql.split("--> statement-breakpoint")) {
        if (statement.trim()) await tx.execute(sql.raw(statement));
      }
      const hash = sha256Hex(m.sql);
      await tx.execute(sql`insert into agentos_migrations (tag, hash) values (${m.tag}, ${hash})`);
      applied.push(m.tag);
    }
  });
  if (applied.length) log.info("migrations applied", { migrations: applied });
  return applied;
}

export async function pendingMigrations(db: Db): Promise<string[]> {
  try {
    const rows = rowsOf<{ tag: string }>(await db.execute(sql`select tag from agentos_migrations`));
    const done = new Set(rows.map((r) => r.tag));
    return migrations.map((m) => m.tag).filter((t) => !done.has(t));
  } catch {
    return migrations.map((m) => m.tag);
  }
}
