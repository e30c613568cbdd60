/**
 * The run queue and the live subjects of runs. A doorbell carries only the run id;
 * PostgreSQL holds the run. `msgId` = run id + attempt + event cursor, so retried publishes
 * of the same state are deduplicated by the broker while every new state rings again.
 */
import type { Bus } from "../platform/bus";
import type { Logger } from "../platform/logging";
import type { RunRow } from "./types";

export const RUNS_STREAM = { name: "RUNS", subjects: ["runs"], kind: "workqueue" as const };
export const RUNS_SUBJECT = "runs";
export const WORKER_DURABLE = "workers";

export interface RunDoorbell {
  run_id: string;
}

/** Published after every committed run event: SSE streams and waiters re-read the database. */
export const runLiveSubject = (bus: Bus, runId: string) => bus.subject(`live.runs.${runId}`);
/** Published by the agents role when a cancel is accepted: the worker aborts the in-flight call. */
export const runCancelSubject = (bus: Bus, runId: string) => bus.subject(`live.runs.${runId}.cancel`);

export async function enqueueRun(bus: Bus, run: Pick<RunRow, "id" | "attempts" | "nextSeq">, suffix = ""): Promise<void> {
  await bus.publishDurable(RUNS_STREAM.name, bus.subject(RUNS_SUBJECT), { run_id: run.id } satisfies RunDoorbell, {
    msgId: `${run.id}:${run.attempts}:${run.nextSeq}${suffix}`,
  });
}

/** Enqueue that never throws: a lost doorbell is re-rung by the reconciler. */
export async function tryEnqueueRun(bus: Bus, log: Logger, run: Pick<RunRow, "id" | "attempts" | "nextSeq">): Promise<void> {
  try {
    await enqueueRun(bus, run);
  } catch (err) {
    log.warn("run enqueue failed; the reconciler will re-enqueue it", { run_id: run.id, error: err });
  }
}
