/**
 * A transaction in one round trip (PostgreSQL through postgres.js): BEGIN, its statements and
 * COMMIT written at once, without waiting for any answer in between. For writes whose
 * statements are all known before the first one runs, and which need none of their results to
 * decide what comes next: the run store's fenced writes (src/runs/store.ts), where the fence is
 * a statement that raises when it matches nothing, so the rest of the transaction is aborted
 * and COMMIT rolls back.
 *
 * The statements come from ordinary Drizzle code run against a recording database (`record`):
 * each statement is kept instead of sent and answers at once with a result that cannot be
 * read: a statement that reads its result (RETURNING, a select, a row count) fails, as that
 * result does not exist before the batch runs. The embedded PGlite has no round trips to save
 * and has no OneTrip.
 */
import type { Tx } from "./index";
import { COMMITTED_BY_CALLER } from "./postgres-patch";

/** A statement as Drizzle builds it: SQL text with $n placeholders, and its parameters. */
export interface Statement {
  sql: string;
  params: unknown[];
}

export type Row = Record<string, unknown>;

export interface OneTrip {
  /** The statements `work` sends, in order, recorded instead of sent. */
  record(work: (tx: Tx) => Promise<unknown>): Promise<Statement[]>;
  /**
   * BEGIN, the statements and COMMIT at once; each statement's rows. The first statement that
   * fails aborts the transaction (the ones after it fail with 25P02, COMMIT rolls back): its
   * error is thrown, as a transaction's would be.
   */
  send(statements: Statement[]): Promise<Row[][]>;
}

/** The part of a postgres.js client used here (ours is wrapped: counted, gated, prepared statements). */
interface PgClient {
  begin(fn: (tx: PgTx) => Promise<unknown>): Promise<unknown>;
}
interface PgTx {
  unsafe(sql: string, params?: unknown[]): { execute(): Promise<Row[]> };
  (strings: TemplateStringsArray): { execute(): Promise<Row[]> };
}

const IN_FAILED_TRANSACTION = "25P02";

export function oneTripOver(client: PgClient, drizzle: (client: object) => unknown): OneTrip {
  return {
    async record(work) {
      const statements: Statement[] = [];
      const unreadable = () => new Error("a statement of a one-round-trip write cannot read its result (RETURNING, select, row count): it has none before the batch runs");
      const refused = () => Promise.reject(unreadable());
      // Awaited like a result (`then` is absent), unusable as one.
      const noResult = new Proxy([], { get: (_, key) => (key === "then" ? undefined : (() => { throw unreadable(); })()) });
      const recorder = {
        // Drizzle's postgres.js driver sets its parsers here; nothing is parsed.
        options: { parsers: {}, serializers: {} },
        unsafe(sql: string, params: unknown[] = []) {
          statements.push({ sql, params });
          return { values: refused, then: (ok: (v: unknown) => unknown, ko: (e: unknown) => unknown) => Promise.resolve(noResult).then(ok, ko) };
        },
        begin: () => Promise.reject(new Error("a one-round-trip write is already one transaction")),
      };
      await work(drizzle(recorder) as Tx);
      return statements;
    },

    async send(statements) {
      const done = (await client.begin(async (tx) => {
        // Executed in this order, on the transaction's connection, in one write.
        const sent = statements.map((s) => tx.unsafe(s.sql, s.params).execute());
        const commit = tx`commit`.execute();
        const settled = await Promise.allSettled([...sent, commit]);
        const failures = settled.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => r.reason as { code?: string });
        // Not thrown here: the transaction is over (our COMMIT rolled a failed one back) and
        // its connection may serve another already; a throw would send a ROLLBACK into it.
        // The cause, not the statements refused after it.
        const failure = failures.find((e) => e?.code !== IN_FAILED_TRANSACTION) ?? failures[0];
        return { failure, rows: settled.slice(0, -1).map((r) => (r as PromiseFulfilledResult<Row[]>).value), [COMMITTED_BY_CALLER]: true };
      })) as { failure?: unknown; rows: Row[][] };
      if (done.failure) throw done.failure;
      return done.rows;
    },
  };
}
