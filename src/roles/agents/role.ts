import { AGENTS_RPC, type AgentsClient } from "./contract";
import type { AppPlatform } from "../clients";
import type { RoleModule } from "../modules";
import { RUNS_STREAM, RunStore, RunsService } from "../../runs";
import { AgentsService } from "./service";

export function createAgentsService(p: AppPlatform): AgentsClient {
  const agents = new AgentsService({
    db: p.db,
    bus: () => p.bus,
    memory: () => p.clients.memory,
    tools: () => p.clients.tools,
    idempotencyStaleMs: p.config.idempotencyStaleMs,
  });
  const runs = new RunsService({
    db: p.db,
    store: new RunStore(p.db, () => p.bus),
    bus: () => p.bus,
    log: p.log,
    requireThread: (orgId, threadId) => agents.threadRow(orgId, threadId),
    // Quota hook: the billing role wires `p.clients.billing.assertRunAllowed` here.
    beforeRunCreate: (orgId) => p.clients.billing.assertRunAllowed(orgId),
    optionChecks: {
      resolveTools: async (orgId, refs) => {
        const { tools, missing } = await p.clients.tools.getRunTools(orgId, refs);
        return { names: tools.map((t) => t.name), missing };
      },
      checkOutputSchema: (schema) => p.clients.tools.checkOutputSchema(schema),
    },
    costOf: (items) => p.clients.billing.modelCosts(items),
    idempotencyStaleMs: p.config.idempotencyStaleMs,
  });
  return servedSurface(agents, runs);
}

/** One service object for the role: each contract method bound to the service that implements it. */
function servedSurface(agents: AgentsService, runs: RunsService): AgentsClient {
  const surface: Record<string, unknown> = {};
  for (const method of AGENTS_RPC) {
    if (method in agents && method in runs) throw new Error(`agents role: ${method} is implemented twice (AgentsService and RunsService)`);
    const owner: Record<string, unknown> = method in runs ? (runs as never) : (agents as never);
    surface[method] = (owner[method] as (...args: unknown[]) => unknown).bind(owner);
  }
  return surface as AgentsClient;
}

export const agentsRole: RoleModule = {
  name: "agents",
  rpc: AGENTS_RPC,
  deps: ["database", "bus", "cache", "outbox"],
  uses: ["memory", "tools", "billing"],
  description: "agent orchestration: agents, threads, messages, runs (create, cancel, tool outputs, events)",
  init(p) {
    const service = createAgentsService(p);
    return {
      service,
      // Runs are enqueued on create and on resume.
      start: () => p.bus.ensureStream(RUNS_STREAM),
    };
  },
};
