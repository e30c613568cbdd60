/**
 * The relational store: PostgreSQL through postgres.js when DATABASE_URL is set, the embedded
 * PGlite otherwise. Both are Drizzle `PgDatabase`s over one schema, so every repository runs
 * unchanged on either.
 */
import { sql } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from "drizzle-orm/pg-core";
import { FatalError } from "../errors";
import { redactUrl } from "../config";
import type { Logger } from "../logging";
import { DatabaseGate } from "./gate";
import { applyMigrations } from "./migrate";
import { oneTripOver, type OneTrip } from "./one-trip";
import { yieldingClient } from "./yielding";

/**
 * Without Drizzle's relational query API (`db.query.<table>`): nothing uses it, and given the
 * schema Drizzle builds a query builder per table (31) for the database and again for every
 * transaction: ~7 µs of each (1,000 minimal PGlite transactions, best of 16: 138 → 131 µs).
 */
export type Db = PgDatabase<PgQueryResultHKT>;
export type Tx = PgTransaction<PgQueryResultHKT, Record<string, never>, any>;
/** Either the database or an open transaction: repositories accept both. */
export type DbOrTx = Db | Tx;

export interface Database {
  kind: "postgres" | "pglite";
  db: Db;
  /** Throws when the store cannot answer `select 1`. */
  ping(): Promise<void>;
  /** Null while the store answers; otherwise why not (an outage: queries fail with 503 meanwhile). */
  problem(): string | null;
  /** Resolves once the store answers again (at once when it does): background work waits here. */
  whenAvailable(): Promise<void>;
  migrate(): Promise<string[]>;
  close(): Promise<void>;
  /** PostgreSQL only: transactions sent in one round trip (one-trip.ts). */
  oneTrip?: OneTrip;
}

/** Told of every statement and transaction sent (agentos_db_statements_total): what a request or a run costs the store. */
export type OnStatement = (kind: "statement" | "transaction") => void;
const uncounted: OnStatement = () => {};

export async function openDatabase(opts: { url?: string; dataDir: string; log: Logger; poolSize?: number; connectTimeoutMs?: number; prepare?: boolean; onStatement?: OnStatement }): Promise<Database> {
  return opts.url ? openPostgres(opts.url, opts.log, opts.poolSize, opts.connectTimeoutMs, opts.prepare, opts.onStatement) : openEmbedded(opts.dataDir, opts.log, opts.onStatement);
}

type SqlClient = { unsafe: Function; begin: Function; savepoint?: Function };
type Unsafe = (query: string, params?: unknown[], options?: object) => unknown;

/** A postgres.js client whose `unsafe` (and every transaction's, savepoints' too) is `wrap(unsafe)`; `onBegin` at each transaction. */
function withQueries<C extends object>(client: C & SqlClient, wrap: (unsafe: Unsafe) => Unsafe, onBegin?: () => void): C {
  return new Proxy(client, {
    get(target, prop, receiver) {
      if (prop === "unsafe") return wrap((query, params, options) => target.unsafe(query, params, options));
      if (prop === "begin" || prop === "savepoint") {
        const open = Reflect.get(target, prop, receiver) as Function;
        return (...args: unknown[]) => {
          if (prop === "begin") onBegin?.();
          const fn = args.pop() as (tx: SqlClient) => unknown;
          return open.call(target, ...args, (tx: SqlClient) => fn(withQueries(tx, wrap)));
        };
      }
      return Reflect.get(target, prop, receiver);
    },
  });
}

/**
 * Named prepared statements for every query with parameters, in transactions too. postgres.js
 * prepares tagged-template queries, but Drizzle sends everything through `unsafe`, which does
 * not by default: each query was parsed and planned again by PostgreSQL and cost the client a
 * Parse/Describe round of encoding. Measured here (32 concurrent inserts, 10 connections):
 * 150 → 65 µs of client CPU per insert, 1.3k → 2.3-2.9k inserts/s. Drizzle's SQL text holds
 * placeholders, never values, so the statements a connection keeps are the app's query shapes
 * (postgres.js re-prepares one that a migration invalidated). Queries without parameters stay
 * on the simple protocol (migrations: several statements in one string). Drizzle passes
 * `prepare: false` unless a query was given a name: overridden here (unless
 * DATABASE_PREPARED_STATEMENTS=false, for a pooler that cannot keep prepared statements).
 */
const preparedByDefault = <C extends object>(client: C & SqlClient): C =>
  withQueries(client, (unsafe) => (query, params, options) => unsafe(query, params, params?.length ? { ...options, prepare: true } : options));

/** Counts each query (in transactions too) and each transaction. */
const countedClient = <C extends object>(client: C & SqlClient, counted: OnStatement): C =>
  withQueries(client, (unsafe) => (query, params, options) => {
    counted("statement");
    return unsafe(query, params, options);
  }, () => counted("transaction"));

/** Drizzle's postgres.js session calls only `unsafe` (queries) and `begin` (transactions) on the client. */
function gatedClient<C extends object>(client: C & { unsafe: Function; begin: Function }, gate: DatabaseGate): C {
  return new Proxy(client, {
    get(target, prop, receiver) {
      // Both answer with a rejected promise (never a synchronous throw) while the circuit is open.
      if (prop === "unsafe") {
        return (...args: unknown[]) => {
          // A postgres.js query is lazy (runs when awaited) and `.values()` must be set before that.
          const run = (start: (query: any) => PromiseLike<unknown>) => {
            try {
              gate.check();
            } catch (err) {
              return Promise.reject(err);
            }
            return gate.observe(start(target.unsafe(...args)));
          };
          return {
            values: () => run((query) => query.values()),
            then: (ok: (v: unknown) => unknown, ko: (e: unknown) => unknown) => run((query) => query).then(ok, ko),
          };
        };
      }
      if (prop === "begin") {
        return async (...args: unknown[]) => {
          gate.check();
          return gate.observe(target.begin(...args));
        };
      }
      return Reflect.get(target, prop, receiver);
    },
  });
}

async function openPostgres(url: string, log: Logger, poolSize = 10, connectTimeoutMs = 1500, prepare = true, counted = uncounted): Promise<Database> {
  const { default: postgres } = await import("postgres");
  const { drizzle } = await import("drizzle-orm/postgres-js");
  const client = postgres(url, {
    max: poolSize,
    connect_timeout: connectTimeoutMs / 1000,
    idle_timeout: 60,
    // Reconnect soon (default: up to 20 s): queries queued in the pool when the server went away wait for it.
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 0.5),
    onnotice: () => {},
    connection: { application_name: "agentos" },
  });
  const probe = () => Promise.race([client`select 1`, Bun.sleep(connectTimeoutMs + 1000).then(() => Promise.reject(Object.assign(new Error("probe timed out"), { code: "CONNECT_TIMEOUT" })))]);
  const gate = new DatabaseGate(probe, log);
  const wrapped = gatedClient(countedClient(prepare ? preparedByDefault(client) : client, counted), gate);
  const db = drizzle(wrapped) as unknown as Db;
  const database: Database = {
    kind: "postgres",
    db,
    ping: async () => {
      gate.check();
      await gate.observe(probe());
    },
    problem: () => gate.problem(),
    whenAvailable: () => gate.whenAvailable(),
    migrate: () => applyMigrations(db, log),
    oneTrip: oneTripOver(wrapped as never, drizzle as never),
    close: () => {
      gate.close();
      return client.end({ timeout: 5 });
    },
  };
  try {
    await database.ping();
  } catch (err) {
    gate.close();
    await client.end({ timeout: 0 }).catch(() => {});
    throw new FatalError(`cannot reach PostgreSQL at ${redactUrl(url)}: ${((err as Error).cause as Error)?.message ?? (err as Error).message}`);
  }
  return database;
}

async function openEmbedded(dataDir: string, log: Logger, counted = uncounted): Promise<Database> {
  const { openPglite, closePglite, instrumentQueries } = await import("./pglite");
  const { drizzle } = await import("drizzle-orm/pglite");
  let client: Awaited<ReturnType<typeof openPglite>>;
  try {
    client = await openPglite(dataDir);
  } catch (err) {
    if (err instanceof FatalError) throw err;
    throw new FatalError(`cannot open the embedded database in ${dataDir}: ${(err as Error).message}`);
  }
  yieldingClient(instrumentQueries(client, counted));
  const db = drizzle(client) as unknown as Db;
  log.info("embedded database opened", { data_dir: dataDir });
  return {
    kind: "pglite",
    db,
    ping: async () => {
      await client.query("select 1");
    },
    problem: () => null,
    whenAvailable: () => Promise.resolve(),
    migrate: () => applyMigrations(db, log),
    close: () => closePglite(client),
  };
}

export { isUniqueViolation } from "./errors";
export type { OneTrip, Statement } from "./one-trip";
export { rowsOf } from "./rows";
export { sql };
