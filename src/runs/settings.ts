/**
 * Tunables of run orchestration, as the run loop, worker and reconciler see them. They are
 * operational knobs (src/platform/config.ts: flags with environment twins); tests shorten them.
 */
import type { Config } from "../platform/config";

export interface RunSettings {
  /** How long a worker owns a run without renewing (renewed every third of it). */
  leaseMs: number;
  /** Runs idle in `requires_action` longer than this expire. */
  requiresActionTimeoutMs: number;
  /** How often the reconciler scans PostgreSQL for runs whose doorbell was lost. */
  reconcileIntervalMs: number;
  /** A run `queued` (or unleased `in_progress`) this long without progress gets a new doorbell. */
  requeueAfterMs: number;
  /** Runs one worker process executes at once. */
  workerConcurrency: number;
  /** JetStream ack wait of a run doorbell; `job.working()` extends it while the run executes. */
  ackWaitMs: number;
  /** Model request bounds (the provider retries 429/5xx/timeouts within them). */
  modelTimeoutMs: number;
  modelMaxRetries: number;
  modelBackoffMs: number;
  /** message.delta events are coalesced into one persisted event per this many ms. */
  deltaFlushMs: number;
  /** Tool calls of one model turn executed at once when parallel_tool_calls is on. */
  toolCallConcurrency: number;
}

export function runSettings(config: Config): RunSettings {
  return {
    leaseMs: config.runLeaseMs,
    requiresActionTimeoutMs: config.requiresActionTimeoutMs,
    reconcileIntervalMs: config.reconcileIntervalMs,
    requeueAfterMs: config.requeueAfterMs,
    workerConcurrency: config.workerConcurrency,
    ackWaitMs: config.runAckWaitMs,
    modelTimeoutMs: config.modelTimeoutMs,
    modelMaxRetries: config.modelMaxRetries,
    modelBackoffMs: config.modelBackoffMs,
    deltaFlushMs: config.deltaFlushMs,
    toolCallConcurrency: config.toolCallConcurrency,
  };
}
