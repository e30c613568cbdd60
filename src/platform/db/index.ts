/**
 * The relational store: PostgreSQL through postgres.js when DATABASE_URL is set, the embedded
 * PGlite otherwise. Both are Drizzle `PgDatabase`s over one schema, so every repository runs
 * unchanged on either.
 */
import { sql } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from "drizzle-orm/pg-core";
import * as schema from "../../../schema";
import { FatalError } from "../errors";
import { redactUrl } from "../config";
import type { Logger } from "../logging";
import { applyMigrations } from "./migrate";

export type Schema = typeof schema;
export type Db = PgDatabase<PgQueryResultHKT, Schema>;
export type Tx = PgTransaction<PgQueryResultHKT, Schema, any>;
/** Either the database or an open transaction: repositories accept both. */
export type DbOrTx = Db | Tx;
export { schema };

export interface Database {
  kind: "postgres" | "pglite";
  db: Db;
  /** Throws when the store cannot answer `select 1`. */
  ping(): Promise<void>;
  migrate(): Promise<string[]>;
  close(): Promise<void>;
}

export async function openDatabase(opts: { url?: string; dataDir: string; log: Logger; poolSize?: number }): Promise<Database> {
  return opts.url ? openPostgres(opts.url, opts.log, opts.poolSize) : openEmbedded(opts.dataDir, opts.log);
}

async function openPostgres(url: string, log: Logger, poolSize = 10): Promise<Database> {
  const { default: postgres } = await import("postgres");
  const { drizzle } = await import("drizzle-orm/postgres-js");
  const client = postgres(url, {
    max: poolSize,
    connect_timeout: 5,
    idle_timeout: 60,
    onnotice: () => {},
    connection: { application_name: "agentos" },
  });
  const db = drizzle(client, { schema }) as unknown as Db;
  const database: Database = {
    kind: "postgres",
    db,
    ping: async () => {
      await client`select 1`;
    },
    migrate: () => applyMigrations(db, log),
    close: () => client.end({ timeout: 5 }),
  };
  try {
    await database.ping();
  } catch (err) {
    await client.end({ timeout: 0 }).catch(() => {});
    throw new FatalError(`cannot reach PostgreSQL at ${redactUrl(url)}: ${(err as Error).message}`);
  }
  return database;
}

async function openEmbedded(dataDir: string, log: Logger): Promise<Database> {
  const { openPglite, closePglite } = await import("./pglite");
  const { drizzle } = await import("drizzle-orm/pglite");
  let client: Awaited<ReturnType<typeof openPglite>>;
  try {
    client = await openPglite(dataDir);
  } catch (err) {
    throw new FatalError(`cannot open the embedded database in ${dataDir}: ${(err as Error).message}`);
  }
  const db = drizzle(client, { schema }) as unknown as Db;
  log.info("embedded database opened", { data_dir: dataDir });
  return {
    kind: "pglite",
    db,
    ping: async () => {
      await client.query("select 1");
    },
    migrate: () => applyMigrations(db, log),
    close: () => closePglite(client),
  };
}

export { rowsOf } from "./rows";
export { sql };
