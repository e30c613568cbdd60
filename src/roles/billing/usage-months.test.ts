/**
 * The month counters (usage_months) the quota checks read: after any mix of events they equal
 * the sums over usage_records per (organization, UTC month), and migration 0008 backfills them
 * from the usage rows recorded before it — on the embedded database and on real PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestDatabase, describeReal, uniqueName } from "../../../test/support/backends";
import { openDatabase, type Database } from "../../platform/db";
import { rowsOf } from "../../platform/db/rows";
import { newId } from "../../platform/ids";
import { silentLogger } from "../../platform/logging";
import type { DomainEvent } from "../../platform/outbox";
import { monthlyUsage, UsageLedger } from "./ledger";
import { loadBillingSettings } from "./plans";

const BACKFILL_TAG = "0008_usage_months";

const event = (orgId: string, type: string, at: string, payload: Record<string, unknown>, id = newId("evt")): DomainEvent => ({ id, org_id: orgId, type, created_at: at, payload });
const run = (orgId: string, at: string) => event(orgId, "run.created", at, { run_id: newId("run"), agent_id: "agt_x" });
const modelCall = (orgId: string, at: string, tokens: number, kind = "model_call") =>
  event(orgId, "step.completed", at, { kind, model: "gpt-4o", run_id: "run_x", step_id: newId("stp"), usage: { prompt_tokens: tokens - 1, completion_tokens: 1, total_tokens: tokens } });
const toolCall = (orgId: string, at: string) => event(orgId, "tool_call.completed", at, { run_id: "run_x", step_id: newId("stp"), name: "t" });

type Counter = { org_id: string; period: string; runs: number; tokens: number };
const sorted = (rows: Counter[]) => rows.map((r) => ({ ...r, runs: Number(r.runs), tokens: Number(r.tokens) })).sort((a, b) => `${a.org_id}${a.period}`.localeCompare(`${b.org_id}${b.period}`));

async function counters(d: Database, orgs: string[]) {
  const list = orgs.map((o) => `'${o}'`).join(",");
  return sorted(rowsOf<Counter>(await d.db.execute(`select org_id, period, runs, tokens from usage_months where org_id in (${list})` as any)));
}

/** The same figures summed from the ledger rows; months with neither runs nor tokens have no counter. */
async function sums(d: Database, orgs: string[]) {
  const list = orgs.map((o) => `'${o}'`).join(",");
  const rows = rowsOf<Counter>(await d.db.execute(`select org_id, to_char(occurred_at at time zone 'UTC', 'YYYY-MM') as period,
      count(*) filter (where kind = 'run') as runs, coalesce(sum(total_tokens), 0) as tokens
    from usage_records where org_id in (${list}) group by 1, 2` as any));
  return sorted(rows).filter((r) => r.runs > 0 || r.tokens > 0);
}

/** Runs, model calls, a summarize step, tool calls, a redelivered event, both sides of a month boundary, two orgs. */
async function recordMix(ledger: UsageLedger, a: string, b: string) {
  const duplicate = modelCall(a, "2026-03-10T12:00:00.000Z", 500);
  const events = [
    run(a, "2026-03-01T00:00:00.000Z"),
    run(a, "2026-03-15T08:00:00.000Z"),
    modelCall(a, "2026-03-15T08:00:01.000Z", 120),
    modelCall(a, "2026-03-15T08:00:02.000Z", 33, "summarize"),
    toolCall(a, "2026-03-15T08:00:03.000Z"),
    duplicate,
    duplicate,
    modelCall(a, "2026-03-31T23:59:59.999Z", 7),
    run(a, "2026-04-01T00:00:00.000Z"),
    modelCall(a, "2026-04-01T00:00:00.001Z", 1000),
    toolCall(b, "2026-03-02T00:00:00.000Z"),
    run(b, "2026-03-20T00:00:00.000Z"),
    modelCall(b, "2026-03-20T00:00:01.000Z", 42),
  ];
  const recorded = [];
  for (const e of events) recorded.push(await ledger.record(e));
  expect(recorded.filter(Boolean).length).toBe(events.length - 1); // the redelivery records nothing
  // And concurrently: one more run each, recorded from three deliveries at once.
  const again = run(b, "2026-03-21T00:00:00.000Z");
  expect((await Promise.all([ledger.record(again), ledger.record(again), ledger.record(again)])).filter(Boolean).length).toBe(1);
}

function counterSuite(open: () => Promise<{ database: Database; cleanup(): Promise<void> }>) {
  let database: Database;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ database, cleanup } = await open());
    await database.migrate();
  });
  afterAll(() => cleanup?.());

  test("the counters equal the sums of usage_records per organization and UTC month", async () => {
    const a = uniqueName("org_a");
    const b = uniqueName("org_b");
    await recordMix(new UsageLedger(database.db, loadBillingSettings({}), silentLogger), a, b);
    const expected = [
      { org_id: a, period: "2026-03", runs: 2, tokens: 120 + 33 + 500 + 7 },
      { org_id: a, period: "2026-04", runs: 1, tokens: 1000 },
      { org_id: b, period: "2026-03", runs: 2, tokens: 42 },
    ];
    expect(await sums(database, [a, b])).toEqual(sorted(expected));
    expect(await counters(database, [a, b])).toEqual(sorted(expected));
    expect(await monthlyUsage(database.db, a, new Date("2026-03-31T23:59:59.999Z"))).toEqual({ runs: 2, tokens: 660 });
    expect(await monthlyUsage(database.db, a, new Date("2026-04-30T00:00:00Z"))).toEqual({ runs: 1, tokens: 1000 });
    expect(await monthlyUsage(database.db, b, new Date("2026-05-01T00:00:00Z"))).toEqual({ runs: 0, tokens: 0 });
  });

  test("migration 0008 backfills the counters from the usage rows recorded before it", async () => {
    const a = uniqueName("org_a");
    const b = uniqueName("org_b");
    await recordMix(new UsageLedger(database.db, loadBillingSettings({}), silentLogger), a, b);
    const expected = await sums(database, [a, b]);
    // Back to the database as it was before 0008: usage rows, no counters.
    await database.db.execute(`drop table usage_months` as any);
    await database.db.execute(`delete from agentos_migrations where tag = '${BACKFILL_TAG}'` as any);
    expect(await database.migrate()).toEqual([BACKFILL_TAG]);
    expect(await counters(database, [a, b])).toEqual(expected);
    expect(expected.length).toBe(3);
  });
}

describe("usage month counters on the embedded database", () => {
  counterSuite(async () => {
    const dir = mkdtempSync(join(tmpdir(), "agentos-usage-months-"));
    const database = await openDatabase({ dataDir: dir, log: silentLogger });
    return { database, cleanup: async () => { await database.close(); rmSync(dir, { recursive: true, force: true }); } };
  });
});

await describeReal("usage month counters on PostgreSQL", () => {
  counterSuite(async () => {
    const pg = await createTestDatabase();
    const database = await openDatabase({ url: pg.url, dataDir: "/nonexistent", log: silentLogger });
    return { database, cleanup: async () => { await database.close(); await pg.drop(); } };
  });
});
