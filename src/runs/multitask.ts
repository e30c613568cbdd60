/**
 * Busy threads (multitask_strategy, LangGraph's "double texting"): at most one run of a thread
 * is active (queued, in_progress, requires_action, cancelling) — the thread row lock
 * serialises creates and the partial unique index `runs_thread_active_key` makes any other
 * outcome impossible. Runs created with `enqueue` while the thread is busy wait as `pending`
 * (their input kept on the run, not yet in the thread) and are promoted to `queued`, oldest
 * first, once the thread has no active run.
 *
 * Lock order, always: the thread row, then run rows. Promotion therefore runs after the
 * ending run's transaction committed (never inside it); if the process dies in between, the
 * reconciler's sweep (`promoteStalledPending`) promotes it.
 */
import { and, asc, eq, inArray, sql } from "drizzle-orm";
import { messages, runEvents, runs, threads } from "../../schema";
import type { Db, Tx } from "../platform/db";
import { newId } from "../platform/ids";
import { Enum } from "../platform/http/models";
import { msInterval, type RunStore } from "./store";
import { enqueueRun } from "./queue";
import { ACTIVE_STATUSES, TERMINAL_STATUSES, type RunRow } from "./types";

export const MULTITASK_STRATEGIES = ["reject", "enqueue", "interrupt", "rollback"] as const;
export const MultitaskStrategy = Enum(MULTITASK_STRATEGIES, {
  description:
    "When the thread already has an active run: reject (409 thread_busy, the default), enqueue (this run waits as `pending`, in order), " +
    "interrupt (the active run is cancelled, its partial work kept, this one starts), rollback (the active run is cancelled and its messages removed)",
});
export type MultitaskStrategy = (typeof MULTITASK_STRATEGIES)[number];

/** A run waiting for its thread (multitask_strategy enqueue). Not active: it holds no lease and no worker sees it. */
export const PENDING = "pending";

/** The runs of the organization's thread that are active or waiting, oldest first. */
export async function liveRunsOf(db: Db, orgId: string, threadId: string) {
  return db
    .select({ id: runs.id, status: runs.status })
    .from(runs)
    .where(and(eq(runs.threadId, threadId), eq(runs.orgId, orgId), inArray(runs.status, [...ACTIVE_STATUSES, PENDING])))
    .orderBy(asc(runs.id));
}

/** The unique index that enforces one active run per thread (a violation means: busy). */
export const isActiveRunConflict = (err: unknown) => {
  const e = err as { code?: string; constraint_name?: string; constraint?: string; cause?: unknown; message?: string };
  const inner = (e?.cause ?? e) as typeof e;
  return (inner?.code === "23505" || e?.code === "23505") && /runs_thread_active_key/.test(`${inner?.constraint_name ?? inner?.constraint ?? ""} ${inner?.message ?? ""} ${e?.message ?? ""}`);
};

/** Removes the messages of the thread's rolled-back runs that have ended (under the thread row lock). */
export async function discardRolledBackMessages(tx: Tx, threadId: string): Promise<void> {
  await tx.delete(messages).where(and(
    eq(messages.threadId, threadId),
    inArray(messages.runId, tx.select({ id: runs.id }).from(runs).where(and(eq(runs.threadId, threadId), eq(runs.rolledBack, true), inArray(runs.status, [...TERMINAL_STATUSES])))),
  ));
}

/**
 * Promotes the oldest `pending` run of the thread to `queued` when no run of it is active,
 * appending its input to the thread; first removes the messages of rolled-back runs that have
 * ended. Rings the run queue for a promoted run. Called after every run end and after a create
 * that had to wait; cheap (one read) when nothing waits.
 */
export async function promoteNext(store: RunStore, threadId: string, opts: { discardRolledBack?: boolean } = {}): Promise<RunRow | null> {
  const db = store.db;
  if (!opts.discardRolledBack) {
    const [waiting] = await db.select({ id: runs.id }).from(runs).where(and(eq(runs.threadId, threadId), eq(runs.status, PENDING))).limit(1);
    if (!waiting) return null;
  }
  const promoted = await db.transaction(async (tx) => {
    const [thread] = await tx.select({ id: threads.id }).from(threads).where(eq(threads.id, threadId)).for("update");
    if (!thread) return null;
    if (opts.discardRolledBack) await discardRolledBackMessages(tx, threadId);
    const [active] = await tx.select({ id: runs.id }).from(runs).where(and(eq(runs.threadId, threadId), inArray(runs.status, [...ACTIVE_STATUSES]))).limit(1);
    if (active) return null;
    const [next] = await tx.select().from(runs).where(and(eq(runs.threadId, threadId), eq(runs.status, PENDING))).orderBy(asc(runs.id)).limit(1).for("update");
    if (!next) return null;
    // The waiting run's input (its messages, as JSON) joins the thread only now, after the runs before it.
    const waiting: { role: string; content: string }[] = next.pendingInput === null ? [] : JSON.parse(next.pendingInput);
    if (waiting.length) {
      await tx.insert(messages).values(waiting.map((m) => ({ id: newId("msg"), orgId: next.orgId, threadId, role: m.role, content: m.content, runId: next.id })));
    }
    const [row] = await tx
      .update(runs)
      .set({ status: "queued", pendingInput: null, promotedAt: sql`now()`, nextSeq: sql`${runs.nextSeq} + 1`, updatedAt: sql`now()` })
      .where(eq(runs.id, next.id))
      .returning();
    await tx.insert(runEvents).values({ runId: row.id, seq: row.nextSeq - 1, id: newId("evt"), orgId: row.orgId, type: "run.queued", data: { run_id: row.id, status: row.status } });
    return row;
  });
  if (promoted) {
    store.ring(promoted.id, promoted.nextSeq - 1, promoted.status);
    // A lost doorbell is re-rung by the reconciler (the run is `queued` in PostgreSQL).
    await enqueueRun(store.bus(), promoted).catch(() => {});
  }
  return promoted;
}

/**
 * The reconciler's safety net: threads with a `pending` run and no active one (the process that
 * ended the active run died before promoting) get their next run promoted.
 */
export async function promoteStalledPending(store: RunStore, graceMs: number): Promise<number> {
  const stalled = await store.db
    .selectDistinct({ threadId: runs.threadId })
    .from(runs)
    .where(sql`${runs.status} = ${PENDING} and ${runs.updatedAt} < now() - ${msInterval(graceMs)}
      and not exists (select 1 from runs a where a.thread_id = ${runs.threadId} and a.status in ('queued','in_progress','requires_action','cancelling'))`)
    .limit(500);
  let promoted = 0;
  for (const { threadId } of stalled) if (await promoteNext(store, threadId)) promoted++;
  return promoted;
}
