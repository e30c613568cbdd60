/**
 * The framework's floor for the footprint scenario: Elysia with one route on Bun.serve,
 * compiled like AgentOS, measured exactly like an AgentOS role.
 */
import { Elysia } from "elysia";

const port = Number(/^--port=(\d+)$/.exec(Bun.argv.find((a) => a.startsWith("--port=")) ?? "")?.[1] ?? 8080);
new Elysia().get("/readyz", () => "ok").listen({ port, hostname: "127.0.0.1" });
