/**
 * Stands in for ./pglite.ts in the slim build (`bun run build --slim`): split deployments
 * always have DATABASE_URL, so the slim binary leaves PGlite's WebAssembly and data out
 * (≈ 5 MB of the image compressed). Without DATABASE_URL it stops with this message.
 */
import type { PGlite } from "@electric-sql/pglite";
import { FatalError } from "../errors";

export type { PGlite };
export interface OpenPgliteOptions {
  [key: string]: unknown;
}

export const SLIM_NO_EMBEDDED_DATABASE =
  "this is the slim build of AgentOS: it has no embedded database. Set DATABASE_URL (--database-url) to a PostgreSQL server, or use the full build.";

export async function openPglite(_dataDir: string, _options: OpenPgliteOptions = {}): Promise<PGlite> {
  throw new FatalError(SLIM_NO_EMBEDDED_DATABASE);
}

export async function closePglite(_db: PGlite | undefined | null): Promise<void> {}
