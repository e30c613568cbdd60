/**
 * The runtime's floor for the footprint scenario: the smallest HTTP server Bun can compile
 * (Bun.serve answering /readyz), measured exactly like an AgentOS role.
 */
const port = Number(/^--port=(\d+)$/.exec(Bun.argv.find((a) => a.startsWith("--port=")) ?? "")?.[1] ?? 8080);
Bun.serve({ port, hostname: "127.0.0.1", fetch: () => new Response("ok") });
