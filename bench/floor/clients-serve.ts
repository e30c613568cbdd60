/**
 * The back ends' floor for the footprint scenario: what every split role needs at the least —
 * postgres.js with one query, the NATS client connected and flushed, and Bun.serve — compiled
 * like AgentOS and measured exactly like an AgentOS role (`--database-url=`, `--nats-url=`).
 */
import { connect } from "@nats-io/transport-node";
import postgres from "postgres";

const arg = (name: string) => Bun.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const port = Number(arg("port") ?? 8080);
const sql = postgres(arg("database-url") ?? "postgres://postgres@127.0.0.1:5432/postgres", { max: 1 });
await sql`select 1`;
const nats = await connect({ servers: arg("nats-url") ?? "127.0.0.1:4222" });
await nats.flush();
Bun.serve({ port, hostname: "127.0.0.1", fetch: () => new Response("ok") });
