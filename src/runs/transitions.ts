/**
 * Run state changes shared by the API (agents role), the worker and the reconciler. Each
 * writes the run row, its steps, its run event and the domain event (outbox) in one
 * transaction.
 */
import { and, eq, inArray, type SQL } from "drizzle-orm";
import { runSteps } from "../../schema";
import { emitEvent } from "../platform/outbox";
import { promoteNext } from "./multitask";
import type { EventSpec, RunSet, RunStore } from "./store";
import { releaseHolds } from "./budget";
import type { RunStatus } from "./model";
import { runOut, type RunRow } from "./types";

/** Domain-event payload of a run (notify, billing and webhooks consume it). */
export function runPayload(run: RunRow) {
  return {
    run_id: run.id,
    thread_id: run.threadId,
    agent_id: run.agentId,
    model: run.model,
    status: run.status,
    usage: run.usage,
    step_count: run.stepCount,
    error: run.lastError ?? null,
  };
}

const OPEN_STEP_STATUSES = ["in_progress", "requires_action", "approved"];

export type FinalStatus = Extract<RunStatus, "completed" | "failed" | "cancelled" | "expired">;

/**
 * Moves a run to a terminal status: open steps are closed as cancelled, the lease and any
 * required action are cleared, `run.<status>` is appended and emitted to the outbox.
 * Returns null when the guard/fence did not match (someone else changed the run first).
 */
export async function finishRun(
  store: RunStore,
  runId: string,
  opts: {
    status: FinalStatus;
    error?: { code: string; message: string } | null;
    fence?: string;
    guard?: SQL;
    /** Extra writes in the same transaction (e.g. the final assistant message), before open steps are closed. */
    work?: Parameters<RunStore["mutate"]>[1]["work"];
    /** Extra run columns and run events (before `run.<status>`) of writes folded into this transaction; their data must not depend on `work`. */
    set?: RunSet;
    events?: EventSpec[];
  },
) {
  const ended = await store.mutate(runId, {
    fence: opts.fence,
    guard: opts.guard,
    set: {
      ...opts.set,
      status: opts.status,
      lastError: opts.error ?? null,
      completedAt: new Date(),
      leaseOwner: null,
      leaseExpiresAt: null,
      requiredAction: null,
      requiresActionSince: null,
    },
    // The writes are independent (a step closed by `work` is set by id, whatever the order):
    // sent at once, they cost one round trip.
    pipelined: true,
    work: async (tx, run) => {
      await Promise.all([
        (async () => {
          await opts.work?.(tx, run);
          // After `work`, which may settle the last call's hold: what is still held was never used.
          if (run.budget || run.apiKeyId) await releaseHolds(tx, runId);
        })(),
        tx
          .update(runSteps)
          .set({ status: "cancelled", completedAt: new Date() })
          .where(and(eq(runSteps.runId, runId), inArray(runSteps.status, OPEN_STEP_STATUSES))),
        emitEvent(tx, { orgId: run.orgId, type: `run.${opts.status}`, payload: runPayload(run) }),
      ]);
    },
    events: [...(opts.events ?? []), { type: `run.${opts.status}`, data: (run: RunRow) => runOut(run) }],
  });
  // The thread is free: its next enqueued run starts (a failure here is repaired by the reconciler).
  if (ended) await promoteNext(store, ended.run.threadId, { discardRolledBack: ended.run.rolledBack }).catch(() => {});
  return ended;
}
