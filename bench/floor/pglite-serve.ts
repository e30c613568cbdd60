/**
 * The embedded database's floor for the footprint scenario: what `--role=all` on the embedded
 * defaults needs at the least — PGlite opened on `--data-dir` exactly as AgentOS opens it
 * (src/platform/db/pglite.ts: the same embedded wasm, data bundle, memory settings and vector
 * extension; the same heap growth restart), one query, and Bun.serve. Measured like AgentOS's
 * embedded boot: a first boot creates the database, a restart opens it.
 */
import { openPglite } from "../../src/platform/db/pglite";
import { applyHeapGrowth } from "../../src/platform/heap-growth";

const arg = (name: string) => Bun.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
applyHeapGrowth({ jsHeapGrowth: "auto", databaseUrl: undefined });
const port = Number(arg("port") ?? 8080);
const db = await openPglite(arg("data-dir") ?? "/tmp/agentos-pglite-floor");
await db.query("select 1");
Bun.serve({ port, hostname: "127.0.0.1", fetch: () => new Response("ok") });
