/**
 * The reconciler: PostgreSQL is the source of truth, the queue only rings doorbells, and
 * doorbells get lost (JetStream acknowledges before fsync; the in-process bus dies with its
 * process). Periodically it re-enqueues runs left `queued`, unleased `in_progress`, or
 * `in_progress`/`cancelling` whose lease expired (their worker died), and expires runs idle
 * in `requires_action` beyond the configured time. Several reconcilers may run: every
 * action is conditional, duplicate doorbells are dropped by the worker's lease acquire.
 */
import { and, eq, lt, sql } from "drizzle-orm";
import { runs } from "../../schema";
import type { Bus } from "../platform/bus";
import type { Logger } from "../platform/logging";
import { pacedLoop } from "../platform/outage";
import { promoteStalledPending } from "./multitask";
import { enqueueRun } from "./queue";
import type { RunSettings } from "./settings";
import { msInterval, type RunStore } from "./store";
import { finishRun } from "./transitions";

const BATCH = 500;

export async function requeueStranded(store: RunStore, bus: Bus, graceMs: number): Promise<number> {
  const grace = sql`now() - ${msInterval(graceMs)}`;
  const stranded = await store.db
    .select({ id: runs.id, attempts: runs.attempts, nextSeq: runs.nextSeq })
    .from(runs)
    .where(
      sql`(${runs.status} = 'queued' and ${runs.updatedAt} < ${grace})
        or (${runs.status} in ('in_progress','cancelling') and (
              (${runs.leaseOwner} is null and ${runs.updatedAt} < ${grace}) or ${runs.leaseExpiresAt} < now()))`,
    )
    .limit(BATCH);
  // A new msgId per reconcile window: the broker must not dedupe a re-ring of a lost doorbell.
  const window = `:r${Math.floor(Date.now() / 10_000)}`;
  for (const run of stranded) await enqueueRun(bus, run, window);
  return stranded.length;
}

export async function expireIdleRuns(store: RunStore, timeoutMs: number): Promise<number> {
  const idle = await store.db
    .select({ id: runs.id })
    .from(runs)
    .where(and(eq(runs.status, "requires_action"), lt(runs.requiresActionSince, sql`now() - ${msInterval(timeoutMs)}`)))
    .limit(BATCH);
  let expired = 0;
  for (const { id } of idle) {
    const r = await finishRun(store, id, {
      status: "expired",
      error: { code: "requires_action_timeout", message: `No tool outputs were submitted within ${Math.round(timeoutMs / 1000)} s.` },
      guard: and(eq(runs.status, "requires_action"), lt(runs.requiresActionSince, sql`now() - ${msInterval(timeoutMs)}`)),
    });
    if (r) expired++;
  }
  return expired;
}

/**
 * On the embedded default only one process uses the database, so every lease left behind
 * belongs to a crashed predecessor: free them so the first reconcile resumes those runs.
 */
export async function releaseAllLeases(store: RunStore): Promise<void> {
  await store.db
    .update(runs)
    .set({ leaseOwner: null, leaseExpiresAt: null })
    .where(sql`${runs.status} in ('queued','in_progress','cancelling') and ${runs.leaseOwner} is not null`);
}

export function startReconciler(opts: { store: RunStore; bus: Bus; log: Logger; settings: RunSettings; onExpired?: (n: number) => void }) {
  const { store, bus, log, settings } = opts;
  let first = true;
  const tick = async () => {
    // The first pass re-rings everything at once: a restarted process lost its in-memory queue.
    const graceMs = first ? 0 : settings.requeueAfterMs;
    first = false;
    const requeued = await requeueStranded(store, bus, graceMs);
    const expired = await expireIdleRuns(store, settings.requiresActionTimeoutMs);
    const promoted = await promoteStalledPending(store, graceMs);
    if (requeued || expired || promoted) log.info("reconciler", { requeued, expired, promoted });
    if (expired) opts.onExpired?.(expired);
  };
  return pacedLoop("reconciler", log, settings.reconcileIntervalMs, tick);
}
