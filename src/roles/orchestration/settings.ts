/**
 * Tunables of run orchestration. They are operational knobs rather than product flags, so
 * they come from the environment (read once when a role starts); tests shorten them.
 */
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
}

function num(env: Record<string, string | undefined>, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  return Number.isFinite(n) && n >= 0 ? n : fallback;
}

export function runSettings(env: Record<string, string | undefined> = process.env): RunSettings {
  return {
    leaseMs: num(env, "AGENTOS_RUN_LEASE_MS", 30_000),
    requiresActionTimeoutMs: num(env, "AGENTOS_REQUIRES_ACTION_TIMEOUT_MS", 24 * 3600_000),
    reconcileIntervalMs: num(env, "AGENTOS_RECONCILE_INTERVAL_MS", 5_000),
    requeueAfterMs: num(env, "AGENTOS_REQUEUE_AFTER_MS", 60_000),
    workerConcurrency: num(env, "AGENTOS_WORKER_CONCURRENCY", 64),
    ackWaitMs: num(env, "AGENTOS_RUN_ACK_WAIT_MS", 60_000),
    modelTimeoutMs: num(env, "AGENTOS_MODEL_TIMEOUT_MS", 120_000),
    modelMaxRetries: num(env, "AGENTOS_MODEL_MAX_RETRIES", 3),
    modelBackoffMs: num(env, "AGENTOS_MODEL_BACKOFF_MS", 500),
    deltaFlushMs: num(env, "AGENTOS_DELTA_FLUSH_MS", 50),
  };
}
