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
export interface YieldingClient {
  query: (...args: any[]) => Promise<any>;
  exec: (...args: any[]) => Promise<any>;
  transaction: (fn: (tx: any) => Promise<any>) => Promise<any>;
}

/** The loop's turn: a timer, so that timers (not only I/O) run too. */
const turn = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

export function yieldingClient<C extends YieldingClient>(client: C, sliceMs = 4): C {
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
      return fn(...args);
    };
  client.query = fair(client.query.bind(client));
  client.exec = fair(client.exec.bind(client));
  client.transaction = fair(client.transaction.bind(client));
  return client;
}
