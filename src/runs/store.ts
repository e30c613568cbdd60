/**
 * The run store: every change to a run, its steps and its events goes through `mutate`, one
 * transaction that (1) updates the run row — guarded, and for worker writes fenced by the
 * lease (`lease_owner = me AND lease_expires_at > now()`) — reserving one `seq` per event by
 * bumping `next_seq` in that same statement, (2) runs the caller's step/message/outbox
 * writes, (3) inserts the events. The row lock taken in (1) serialises writers of one run, so
 * two workers that both believe they own it cannot both write, and seqs never collide.
 * After commit a doorbell on `live.runs.<id>` tells SSE streams to re-read.
 */
import { and, asc, eq, gt, inArray, isNull, lt, or, sql, type SQL } from "drizzle-orm";
import { runEvents, runSteps, runs } from "../../schema";
import type { Bus } from "../platform/bus";
import type { Db, Tx } from "../platform/db";
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
  /** Event payload, or a function of the updated run and what `work` returned. */
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
}

export const leaseHeld = (owner: string) => and(eq(runs.leaseOwner, owner), gt(runs.leaseExpiresAt, sql`now()`));
export const leaseFree = () => or(isNull(runs.leaseOwner), lt(runs.leaseExpiresAt, sql`now()`));
export const msInterval = (ms: number) => sql`(${Math.round(ms)}::int * interval '1 millisecond')`;

export class RunStore {
  constructor(
    readonly db: Db,
    readonly bus: () => Bus,
  ) {}

  /** Returns the updated run and the seqs of its events, or null when the guard/fence did not match. */
  async mutate<W = undefined>(runId: string, opts: MutateOptions<W>): Promise<{ run: RunRow; work: W; seqs: number[] } | null> {
    const events = opts.events ?? [];
    const result = await this.db.transaction(async (tx) => {
      const where = and(eq(runs.id, runId), opts.fence ? leaseHeld(opts.fence) : undefined, opts.guard);
      const [run] = await tx
        .update(runs)
        .set({ ...opts.set, nextSeq: sql`${runs.nextSeq} + ${events.length}::int`, updatedAt: sql`now()` } as RunSet)
        .where(where)
        .returning();
      if (!run) return null;
      const first = run.nextSeq - events.length;
      const seqs = events.map((_, i) => first + i);
      const insertEvents = async (work: W) => {
        if (!events.length) return;
        await tx.insert(runEvents).values(
          events.map((e, i) => ({
            runId,
            seq: seqs[i],
            id: newId("evt"),
            orgId: run.orgId,
            type: e.type,
            data: (typeof e.data === "function" ? (e.data as (r: RunRow, w: W) => unknown)(run, work) : e.data) ?? {},
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
    if (result && result.seqs.length) this.ring(runId, result.seqs[result.seqs.length - 1], result.run.status);
    return result;
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
      events: [{ type: "run.in_progress", data: (run: RunRow) => ({ run_id: run.id, status: run.status, attempt: run.attempts }) }],
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
