/**
 * Backend outages (SPEC §6): while PostgreSQL, Redis or NATS is down, what needs it fails at
 * once with 503 `backend_unavailable` (never a 500, never a wait for a timeout), and work
 * that runs in the background waits for the backend instead of spinning or giving up. Each
 * backend adapter turns its own connection errors into `backendUnavailable(...)`; everything
 * above it only asks `outageOf(err)`.
 */
import { AppError } from "./errors";
import type { Logger } from "./logging";

export type Backend = "database" | "cache" | "bus";

const NAMES: Record<Backend, string> = {
  database: "The database (PostgreSQL)",
  cache: "The cache (Redis)",
  bus: "The message bus (NATS)",
};

export const BACKEND_UNAVAILABLE = "backend_unavailable";

/** 503 naming the backend; `reason` must not carry URLs or credentials (driver messages do not). */
export function backendUnavailable(backend: Backend, reason?: string): AppError {
  return new AppError(503, BACKEND_UNAVAILABLE, `${NAMES[backend]} is unavailable${reason ? ` (${reason})` : ""}; retry shortly.`, { backend }, { "retry-after": "1" });
}

/** The backend_unavailable AppError behind `err` (ORMs wrap driver errors in `cause`), or null. */
export function outageOf(err: unknown): AppError | null {
  for (let e = err, depth = 0; e && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof AppError) return e.code === BACKEND_UNAVAILABLE ? e : null;
  }
  return null;
}

/**
 * Pacing of a background loop (relay, reconciler, dispatcher): after a failure the next try
 * waits longer (doubling up to `maxMs`); an outage is logged once when it starts and once
 * when it ends, not on every try.
 */
export class RetryPacer {
  private failures = 0;
  private outage: string | null = null;

  constructor(private what: string, private log: Logger, private baseMs: number, private maxMs = 5_000) {}

  /** Records a failed pass; returns how long to wait before the next one. */
  failed(err: unknown): number {
    this.failures++;
    const outage = outageOf(err);
    if (outage) {
      if (this.outage === null) this.log.warn(`${this.what}: paused while a backend is down; will resume by itself`, { error: outage.message });
      this.outage = outage.message;
    } else {
      this.log.warn(`${this.what} failed; will retry`, { error: err });
    }
    return Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.failures - 1, 10));
  }

  succeeded() {
    if (this.outage !== null) this.log.info(`${this.what}: resumed`);
    this.failures = 0;
    this.outage = null;
  }
}

/**
 * Runs `tick` every `intervalMs` until stopped, pacing retries with a RetryPacer when a pass
 * fails (a backend outage is logged once, not every interval). `stop()` wakes the wait and
 * resolves when the pass in flight has ended.
 */
export function pacedLoop(what: string, log: Logger, intervalMs: number, tick: () => Promise<void>): { stop(): Promise<void> } {
  let stopped = false;
  let wake: (() => void) | null = null;
  const pacer = new RetryPacer(what, log, intervalMs, Math.max(5_000, intervalMs));
  const loop = (async () => {
    while (!stopped) {
      let delay = intervalMs;
      try {
        await tick();
        pacer.succeeded();
      } catch (err) {
        if (!stopped) delay = pacer.failed(err);
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, delay);
      });
    }
  })();
  return {
    async stop() {
      stopped = true;
      wake?.();
      await loop;
    },
  };
}

/**
 * A durable consumer's handling of a database outage: the message is held (heartbeats keep
 * it ours) until the database answers again, then redelivered at once — an outage must not
 * use up a message's deliveries (the bus parks it after `maxDeliver`, and a parked usage
 * event would be a lost usage row). True when `err` was such an outage.
 */
export async function holdThroughDatabaseOutage(
  err: unknown,
  database: { whenAvailable(): Promise<void> },
  heartbeat: () => void,
  opts: { signal?: AbortSignal; maxWaitMs?: number } = {},
): Promise<boolean> {
  const outage = outageOf(err);
  if ((outage?.details as { backend?: string } | undefined)?.backend !== "database") return false;
  const beat = setInterval(heartbeat, 5_000);
  let onAbort = () => {};
  try {
    // Shutdown (the signal) ends the wait too: the message is handed back undone.
    const aborted = new Promise<void>((resolve) => {
      onAbort = () => resolve();
      if (opts.signal?.aborted) resolve();
      opts.signal?.addEventListener("abort", onAbort, { once: true });
    });
    await Promise.race([database.whenAvailable(), aborted, Bun.sleep(opts.maxWaitMs ?? 15 * 60_000)]);
  } finally {
    clearInterval(beat);
    opts.signal?.removeEventListener("abort", onAbort);
  }
  return true;
}
