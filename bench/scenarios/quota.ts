/**
 * quota: what the month's usage costs the quota check (every run create) and the ledger's alert
 * check (every metered step) for an organization with many usage rows this month. Seeds `rows`
 * usage_records for one org (a third runs, the rest model calls), fills its usage_months counter
 * with migration 0008's backfill statement, then times, alternating, the former query (count +
 * sum over the month's usage_records, index on org_id, occurred_at) against monthlyUsage() (one
 * counter row by primary key). In process, straight on the database: a statement's cost, not an
 * HTTP figure. Real PostgreSQL and/or the embedded PGlite (--modes).
 */
import { and, eq, gte, lt, sql } from "drizzle-orm";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { usageRecords } from "../../schema";
import { migrations } from "../../schema/migrations";
import { createTestDatabase } from "../../test/support/backends";
import { openDatabase, type Database, type DbOrTx } from "../../src/platform/db";
import { rowsOf } from "../../src/platform/db/rows";
import { silentLogger } from "../../src/platform/logging";
import { monthlyUsage } from "../../src/roles/billing/ledger";
import { monthOf } from "../../src/roles/billing/plans";
import { machineInfo } from "../lib/machine";
import { loadAverage, round } from "../lib/proc";
import { printTable, writeResults } from "../lib/results";
import type { Mode } from "../lib/target";

const ORG = "org_bench_quota";

/** monthlyUsage() before usage_months: the month's rows summed on every call. */
async function monthlySum(db: DbOrTx, orgId: string, at = new Date()) {
  const { start, end } = monthOf(at);
  const [row] = await db
    .select({
      runs: sql<number>`count(*) filter (where ${usageRecords.kind} = 'run')`.mapWith(Number),
      tokens: sql<number>`coalesce(sum(${usageRecords.totalTokens}), 0)`.mapWith(Number),
    })
    .from(usageRecords)
    .where(and(eq(usageRecords.orgId, orgId), gte(usageRecords.occurredAt, start), lt(usageRecords.occurredAt, end)));
  return { runs: row?.runs ?? 0, tokens: row?.tokens ?? 0 };
}

async function seed(database: Database, rows: number) {
  const month = monthOf(new Date()).start.toISOString();
  // Inside the current month whatever the day: spread over its first 24 hours.
  await database.db.execute(sql.raw(`insert into usage_records (id, org_id, event_id, kind, model, prompt_tokens, completion_tokens, total_tokens, occurred_at)
    select 'use_bq_' || i, '${ORG}', 'evt_bq_' || i, case when i % 3 = 0 then 'run' else 'model_call' end,
      case when i % 3 = 0 then null else 'gpt-4o' end, case when i % 3 = 0 then 0 else 90 end, case when i % 3 = 0 then 0 else 10 end,
      case when i % 3 = 0 then 0 else 100 end, '${month}'::timestamptz + ((i % 86400) * interval '1 second')
    from generate_series(1, ${rows}) as i`));
  // The counters as the migration backfills them (its last statement), timed.
  const backfill = migrations.find((m) => m.tag === "0008_usage_months")!.sql.split("--> statement-breakpoint").at(-1)!;
  await database.db.execute(sql.raw(`delete from usage_months`));
  const t0 = performance.now();
  await database.db.execute(sql.raw(backfill));
  const backfillMs = performance.now() - t0;
  await database.db.execute(sql.raw(`analyze usage_records`));
  await database.db.execute(sql.raw(`analyze usage_months`));
  return backfillMs;
}

/** ms per call: median and mean over `n` calls, the two queries alternating in blocks of 10. */
async function timeBoth(database: Database, n: number) {
  const calls = { sum: [] as number[], counter: [] as number[] };
  const fns = { sum: () => monthlySum(database.db, ORG), counter: () => monthlyUsage(database.db, ORG) };
  for (const f of Object.values(fns)) for (let i = 0; i < 5; i++) await f(); // warm-up: plans, cache
  for (let block = 0; block < n / 10; block++) {
    for (const [name, f] of Object.entries(fns) as [keyof typeof fns, () => Promise<unknown>][]) {
      for (let i = 0; i < 10; i++) {
        const t0 = performance.now();
        await f();
        calls[name].push(performance.now() - t0);
      }
    }
  }
  const stats = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return { median_ms: round(s[Math.floor(s.length / 2)], 3), mean_ms: round(xs.reduce((a, b) => a + b, 0) / xs.length, 3) };
  };
  return { sum: stats(calls.sum), counter: stats(calls.counter) };
}

/** PostgreSQL's own view of each statement: execution time and shared buffers touched. */
async function explain(database: Database) {
  const { start, end } = monthOf(new Date());
  const plan = async (q: string) => {
    const rows = rowsOf<{ "QUERY PLAN": unknown }>(await database.db.execute(sql.raw(`explain (analyze, buffers, format json) ${q}`)));
    const p = (typeof rows[0]["QUERY PLAN"] === "string" ? JSON.parse(rows[0]["QUERY PLAN"] as string) : rows[0]["QUERY PLAN"])[0];
    return { exec_ms: round(p["Execution Time"], 3), buffers: (p.Plan["Shared Hit Blocks"] ?? 0) + (p.Plan["Shared Read Blocks"] ?? 0) };
  };
  return {
    sum: await plan(`select count(*) filter (where kind = 'run'), coalesce(sum(total_tokens), 0) from usage_records
      where org_id = '${ORG}' and occurred_at >= '${start.toISOString()}' and occurred_at < '${end.toISOString()}'`),
    counter: await plan(`select runs, tokens from usage_months where org_id = '${ORG}' and period = '${monthOf(new Date()).period}'`),
  };
}

async function openFor(mode: Mode) {
  if (mode === "real") {
    const pg = await createTestDatabase();
    const database = await openDatabase({ url: pg.url, dataDir: "/nonexistent", log: silentLogger });
    return { database, cleanup: async () => { await database.close(); await pg.drop(); } };
  }
  const dir = mkdtempSync(join(tmpdir(), "agentos-bench-quota-"));
  const database = await openDatabase({ dataDir: dir, log: silentLogger });
  return { database, cleanup: async () => { await database.close(); rmSync(dir, { recursive: true, force: true }); } };
}

export async function runQuota(opts: { modes: Mode[]; rows: number; iterations: number }) {
  const machine = machineInfo();
  const results: Record<string, unknown>[] = [];
  for (const mode of opts.modes) {
    const { database, cleanup } = await openFor(mode);
    try {
      await database.migrate();
      const backfillMs = await seed(database, opts.rows);
      const [before, after] = [await monthlySum(database.db, ORG), await monthlyUsage(database.db, ORG)];
      if (before.runs !== after.runs || before.tokens !== after.tokens) throw new Error(`counter ${JSON.stringify(after)} != sum ${JSON.stringify(before)}`);
      const timed = await timeBoth(database, opts.iterations);
      const plans = mode === "real" ? await explain(database) : null;
      results.push({
        mode, rows: opts.rows, load: loadAverage().join(" "),
        sum_median_ms: timed.sum.median_ms, counter_median_ms: timed.counter.median_ms,
        sum_mean_ms: timed.sum.mean_ms, counter_mean_ms: timed.counter.mean_ms,
        ratio: round(timed.sum.median_ms / timed.counter.median_ms, 1),
        pg_exec_ms: plans ? `${plans.sum.exec_ms} → ${plans.counter.exec_ms}` : "",
        pg_buffers: plans ? `${plans.sum.buffers} → ${plans.counter.buffers}` : "",
        backfill_ms: round(backfillMs, 1),
      });
    } finally {
      await cleanup();
    }
  }
  printTable(results);
  console.log(`results: ${writeResults("quota", { machine, options: opts, results })}`);
}
