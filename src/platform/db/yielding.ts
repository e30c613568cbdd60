/**
 * PGlite answers on the JavaScript thread: a query is synchronous WebAssembly followed by a
 * promise that is already settled, so a backlog of queries (1,000 concurrent requests, each a
 * chain of statements) runs as one uninterrupted microtask chain. The event loop then never
 * turns: no connection is accepted (Bun's listen backlog is 512; the kernel drops the rest,
 * and resets them once its SYN-ACK retries run out: ECONNRESET at the client), no model reply
 * and no timer (lease renewals) is handled, for tens of seconds. So a query or transaction
 * that starts once the thread has run `sliceMs` without the loop turning first lets it turn.
 * Alone on the thread (one run at a time) a query never waits: the loop turns between requests.
 */
import { AsyncLocalStorage } from "node:async_hooks";

export interface YieldingClient {
  query: (...args: any[]) => Promise<any>;
  exec: (...args: any[]) => Promise<any>;
  transaction: (fn: (tx: any) => Promise<any>) => Promise<any>;
}

/** The loop's turn: a timer, so that timers (not only I/O) run too. */
const turn = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/**
 * Requests and runs come first. The one connection is a queue: a run's next statement waited
 * behind the outbox relay's and the event consumers' transactions (billing, webhooks,
 * notifications) fed by the run's own previous step — in the runs bench timeline, 20-40 ms of
 * a run. Background work (`inBackground`) therefore starts once no foreground statement has
 * been running or started for QUIET_MS — typically while the runs wait for their model — or
 * after MAX_GIVE_WAY_MS, so that under sustained load it still advances.
 */
const QUIET_MS = 2;
const MAX_GIVE_WAY_MS = 20;
const background = new AsyncLocalStorage<true>();
let embedded = false;
let foregroundInFlight = 0;
let lastForeground = -Infinity;

/** Runs `work` (relay, event consumers) after foreground statements on the embedded database; at once on PostgreSQL. */
export async function inBackground<T>(work: () => Promise<T>): Promise<T> {
  if (!embedded || background.getStore()) return work();
  const deadline = performance.now() + MAX_GIVE_WAY_MS;
  while ((foregroundInFlight > 0 || performance.now() - lastForeground < QUIET_MS) && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return background.run(true, work);
}

export function yieldingClient<C extends YieldingClient>(client: C, sliceMs = 4): C {
  embedded = true;
  /** Since when the thread has run without the loop turning (a marker is pending), or null. */
  let runningSince: number | null = null;
  const fair = <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const now = performance.now();
      if (runningSince === null) {
        runningSince = now;
        setTimeout(() => (runningSince = null), 0);
      } else if (now - runningSince >= sliceMs) {
        await turn();
      }
      if (background.getStore()) return fn(...args);
      foregroundInFlight++;
      lastForeground = performance.now();
      try {
        return await fn(...args);
      } finally {
        foregroundInFlight--;
        lastForeground = performance.now();
      }
    };
  client.query = fair(client.query.bind(client));
  client.exec = fair(client.exec.bind(client));
  client.transaction = fair(client.transaction.bind(client));
  return client;
}
