/**
 * The run store: every change to a run, its steps and its events goes through `mutate`, one
 * transaction (or one statement) that (1) updates the run row — guarded, and for worker writes
 * fenced by the lease (`lease_owner = me AND lease_expires_at > now()`) — reserving one `seq`
 * per event by bumping `next_seq` in that same statement, (2) inserts the events, in that
 * statement when their data does not need the updated row in JS, (3) runs the caller's
 * step/message/outbox writes. The row lock taken in (1) serialises writers of one run, so two
 * workers that both believe they own it cannot both write, and seqs never collide. After
 * commit a doorbell on `live.runs.<id>` tells SSE streams to re-read.
 */
import { and, asc, eq, getTableColumns, gt, inArray, isNull, lt, or, SQL, sql } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import { runEvents, runSteps, runs } from "../../schema";
import type { Bus } from "../platform/bus";
import { rowsOf, type Db, type OneTrip, type Tx } from "../platform/db";
import { newId } from "../platform/ids";
import { runLiveSubject } from "./queue";
import type { EventRow, RunEventType, RunRow, StepRow } from "./types";

/** What `live.runs.<id>` carries; `status` is absent from older publishers. */
export interface RunDoorbellMessage {
  seq: number;
  status?: string;
}

export class LeaseLostError extends Error {
  constructor(runId: string) {
    super(`lease on run ${runId} lost`);
    this.name = "LeaseLostError";
  }
}

export type RunSet = Partial<{ [K in keyof typeof runs.$inferInsert]: (typeof runs.$inferInsert)[K] | SQL }>;

export interface EventSpec<W = unknown> {
  type: RunEventType;
  /**
   * Event payload; or SQL built from the updated run row, named `r`, by raw column names
   * (`r.status`; a Drizzle column would render as "runs"."status") — a write then still goes
   * out as one statement; or a function of the updated run and what `work` returned.
   */
  data: unknown | ((run: RunRow, work: W) => unknown);
}

export interface MutateOptions<W> {
  /** Worker writes: only while this owner holds an unexpired lease. */
  fence?: string;
  /** Extra condition on the run row, e.g. `status = 'requires_action'`. */
  guard?: SQL;
  set?: RunSet;
  /** Writes in the same transaction, after the run row is locked and checked. */
  work?: (tx: Tx, run: RunRow) => Promise<W>;
  events?: EventSpec<W>[];
  /**
   * The events' data does not depend on what `work` returns: the event insert is sent together
   * with the work's statements (postgres.js pipelines them on the transaction's connection), so
   * the transaction costs BEGIN, the run update, one round trip of writes, COMMIT.
   */
  pipelined?: boolean;
  /**
   * The run as the caller knows it, for a fenced write whose `work` and events depend on
   * nothing the update changes (its ids, its org): `work` gets it instead of the updated row,
   * and on PostgreSQL the whole transaction goes out in one round trip (see `inOneTrip`).
   * The work's statements must not read their results.
   */
  known?: RunRow;
}

/** SQLSTATE raised by agentos_run_write_matched (migration 0009) when a run write matched no run. */
const NO_RUN_MATCHED = "AG001";
const RUN_COLUMNS = Object.entries(getTableColumns(runs));

const PG_DIALECT = new PgDialect();

const seqsOf = (run: RunRow, events: number) => Array.from({ length: events }, (_, i) => run.nextSeq - events + i);

/** An event's data as inserted after the run update (in a transaction). */
function eventData<W>(e: EventSpec<W>, run: RunRow, work: W, runId: string): unknown {
  if (typeof e.data === "function") return (e.data as (r: RunRow, w: W) => unknown)(run, work);
  if (e.data instanceof SQL) return sql`(select ${e.data} from ${runs} r where r.id = ${runId})`;
  return e.data ?? {};
}

/** A runs row as the driver returns it (column names, driver values) → the Drizzle row. */
function runFromDriver(raw: Record<string, unknown>): RunRow {
  const run: Record<string, unknown> = {};
  for (const [key, column] of RUN_COLUMNS) {
    const value = raw[column.name];
    run[key] = value === null || value === undefined ? null : column.mapFromDriverValue(value);
  }
  return run as RunRow;
}

/** What a write without work returns: the updated run (from its driver row) and its events' seqs. */
function written(updated: Record<string, unknown>, opts: Pick<MutateOptions<unknown>, "events">) {
  const run = runFromDriver(updated);
  return { run, work: undefined, seqs: seqsOf(run, opts.events?.length ?? 0) };
}

export const leaseHeld = (owner: string) => and(eq(runs.leaseOwner, owner), gt(runs.leaseExpiresAt, sql`now()`));
export const leaseFree = () => or(isNull(runs.leaseOwner), lt(runs.leaseExpiresAt, sql`now()`));
export const msInterval = (ms: number) => sql`(${Math.round(ms)}::int * interval '1 millisecond')`;

export class RunStore {
  constructor(
    readonly db: Db,
    readonly bus: () => Bus,
    private oneTrip?: OneTrip,
  ) {}

  /**
   * Returns the updated run and the seqs of its events, or null when the guard/fence did not
   * match. Sent as cheaply as the write allows:
   *   - no work: one statement (the run update with its events), no transaction around it;
   *   - `known`, fenced, on PostgreSQL: one transaction in one round trip (`inOneTrip`);
   *   - otherwise a transaction that waits for the run update (with its events, unless their
   *     data is a function of the updated run) before the rest.
   */
  async mutate<W = undefined>(runId: string, opts: MutateOptions<W>): Promise<{ run: RunRow; work: W; seqs: number[] } | null> {
    const events = opts.events ?? [];
    const inStatement = events.every((e) => typeof e.data !== "function");
    const result = !opts.work && inStatement
      ? await this.inOneStatement(runId, opts)
      : opts.known && opts.fence && !opts.guard && this.oneTrip && inStatement
        ? await this.inOneTrip(runId, opts as MutateOptions<void>, opts.known, this.oneTrip)
        : await this.inTransaction(runId, opts, inStatement);
    if (result && result.seqs.length) this.ring(runId, result.seqs[result.seqs.length - 1], result.run.status);
    return result as { run: RunRow; work: W; seqs: number[] } | null;
  }

  /** Events whose data is known before the update (or built from it in SQL) are inserted by the update's statement. */
  private inTransaction<W>(runId: string, opts: MutateOptions<W>, eventsInStatement: boolean) {
    const events = opts.events ?? [];
    return this.db.transaction(async (tx) => {
      const [run] = eventsInStatement
        ? rowsOf<Record<string, unknown>>(await tx.execute(this.runWrite(runId, opts, false))).map(runFromDriver)
        : await this.runUpdate(tx, runId, opts, events.length);
      if (!run) return null;
      const seqs = seqsOf(run, events.length);
      const insertEvents = async (work: W) => {
        if (!events.length || eventsInStatement) return;
        await tx.insert(runEvents).values(
          events.map((e, i) => ({
            runId,
            seq: seqs[i],
            id: newId("evt"),
            orgId: run.orgId,
            type: e.type,
            data: eventData(e, run, work, runId),
          })),
        );
      };
      const doWork = async () => (opts.work ? await opts.work(tx as Tx, run) : undefined) as W;
      if (opts.pipelined) {
        const [work] = await Promise.all([doWork(), insertEvents(undefined as W)]);
        return { run, work, seqs };
      }
      const work = await doWork();
      await insertEvents(work);
      return { run, work, seqs };
    });
  }

  /** The run row's update of a write: guarded, fenced, reserving one seq per event. */
  private runUpdate(q: Db | Tx, runId: string, opts: Pick<MutateOptions<unknown>, "fence" | "guard" | "set">, events: number) {
    return q
      .update(runs)
      .set({ ...opts.set, nextSeq: sql`${runs.nextSeq} + ${events}::int`, updatedAt: sql`now()` } as RunSet)
      .where(and(eq(runs.id, runId), opts.fence ? leaseHeld(opts.fence) : undefined, opts.guard))
      .returning();
  }

  /**
   * The run update and its events as one statement: the update in a CTE `r`, the events
   * inserted from it (no row updated, no event), the updated row selected. With `mustMatch`
   * the statement raises when it updated nothing (agentos_run_write_matched, migration 0009).
   */
  private runWrite(runId: string, opts: Pick<MutateOptions<unknown>, "fence" | "guard" | "set" | "events">, mustMatch: boolean): SQL {
    const events = opts.events ?? [];
    const update = this.runUpdate(this.db, runId, opts, events.length);
    const rows = events.map((e, i) => sql`(${i}::int, ${newId("evt")}::text, ${e.type}::text, ${e.data instanceof SQL ? e.data : sql`${JSON.stringify(e.data ?? {})}::jsonb`})`);
    const inserted = events.length
      ? sql`, inserted as (insert into ${runEvents} (run_id, seq, id, org_id, type, data)
          select r.id, r.next_seq - ${events.length}::int + e.i, e.id, r.org_id, e.type, e.data from r cross join lateral (values ${sql.join(rows, sql`, `)}) as e (i, id, type, data))`
      : sql``;
    const selected = mustMatch ? sql`select r.* from r right join (select agentos_run_write_matched(count(*)) from r) as matched on true` : sql`select r.* from r`;
    return sql`with r as (${update.getSQL()})${inserted} ${selected}`; // getSQL: no parentheses around the update
  }

  /** A write without work: atomic as one statement, so no BEGIN or COMMIT (one round trip on PostgreSQL). */
  private async inOneStatement(runId: string, opts: MutateOptions<unknown>) {
    const [updated] = rowsOf<Record<string, unknown>>(await this.db.execute(this.runWrite(runId, opts, false)));
    return updated ? written(updated, opts) : null;
  }

  /**
   * A fenced write in one round trip: BEGIN, the run write (`runWrite`, which raises when the
   * lease is lost: the transaction is aborted before the work's statements run), the work's
   * statements recorded beforehand, COMMIT, sent at once. Waiting for the run update first
   * costs three round trips (BEGIN with the update, the rest, COMMIT).
   */
  private async inOneTrip(runId: string, opts: MutateOptions<void>, known: RunRow, oneTrip: OneTrip) {
    const work = opts.work ? await oneTrip.record((tx) => opts.work!(tx, known)) : [];
    let updated;
    try {
      [[updated]] = await oneTrip.send([PG_DIALECT.sqlToQuery(this.runWrite(runId, opts, true)), ...work]);
    } catch (err) {
      if ((err as { code?: string }).code === NO_RUN_MATCHED) return null;
      throw err;
    }
    return written(updated!, opts);
  }

  /** Like `mutate` with a fence, but a lost lease is an error (the worker must stop). */
  async fenced<W = undefined>(runId: string, owner: string, opts: Omit<MutateOptions<W>, "fence">) {
    const r = await this.mutate(runId, { ...opts, fence: owner });
    if (!r) throw new LeaseLostError(runId);
    return r;
  }

  /** `status`: the run's after the write, so a waiter for its end need not re-read it at every step. */
  ring(runId: string, seq: number, status?: string) {
    try {
      this.bus().publish(runLiveSubject(this.bus(), runId), { seq, status } satisfies RunDoorbellMessage);
    } catch {
      /* doorbells are best effort: readers also poll */
    }
  }

  async getRun(runId: string): Promise<RunRow | undefined> {
    const [run] = await this.db.select().from(runs).where(eq(runs.id, runId));
    return run;
  }

  async steps(runId: string): Promise<StepRow[]> {
    return this.db.select().from(runSteps).where(eq(runSteps.runId, runId)).orderBy(asc(runSteps.id));
  }

  async eventsAfter(runId: string, after: number, limit = 500): Promise<EventRow[]> {
    return this.db.select().from(runEvents).where(and(eq(runEvents.runId, runId), gt(runEvents.seq, after))).orderBy(asc(runEvents.seq)).limit(limit);
  }

  /**
   * Takes the lease of a runnable run whose lease is free or expired. A `queued` run becomes
   * `in_progress` (event run.in_progress); `cancelling` stays so the worker finishes the cancel.
   */
  async acquire(runId: string, owner: string, leaseMs: number): Promise<RunRow | null> {
    const lease: RunSet = {
      leaseOwner: owner,
      leaseExpiresAt: sql`now() + ${msInterval(leaseMs)}`,
      attempts: sql`${runs.attempts} + 1`,
      startedAt: sql`coalesce(${runs.startedAt}, now())`,
    };
    // A doorbell usually rings for a fresh run: try `queued` first, without reading the row.
    const fresh = await this.mutate(runId, {
      guard: and(eq(runs.status, "queued"), leaseFree()),
      set: { ...lease, status: "in_progress" },
      events: [{ type: "run.in_progress", data: sql`jsonb_build_object('run_id', r.id, 'status', r.status, 'attempt', r.attempts)` }],
    });
    if (fresh) return fresh.run;
    const current = await this.getRun(runId);
    if (!current || (current.status !== "in_progress" && current.status !== "cancelling")) return null;
    const r = await this.mutate(runId, { guard: and(inArray(runs.status, ["in_progress", "cancelling"]), leaseFree()), set: lease });
    return r?.run ?? null;
  }

  /** Extends the lease; null when it was lost. Returns the row so the caller sees `cancelling`. */
  async renew(runId: string, owner: string, leaseMs: number): Promise<Pick<RunRow, "status"> | null> {
    const [row] = await this.db
      .update(runs)
      .set({ leaseExpiresAt: sql`now() + ${msInterval(leaseMs)}` })
      .where(and(eq(runs.id, runId), leaseHeld(owner)))
      .returning({ status: runs.status });
    return row ?? null;
  }

  /** Gives the lease back (shutdown, or the run paused) so another worker can take it at once. */
  async release(runId: string, owner: string): Promise<void> {
    await this.db.update(runs).set({ leaseOwner: null, leaseExpiresAt: null }).where(and(eq(runs.id, runId), eq(runs.leaseOwner, owner)));
  }
}
