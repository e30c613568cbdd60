import { AGENTS_RPC } from "./contract";
import type { AppPlatform } from "../clients";
import type { RoleModule } from "../modules";
import { RUNS_STREAM } from "../orchestration/queue";
import { RunStore } from "../orchestration/store";
import { AgentsService } from "./service";

export function createAgentsService(p: AppPlatform) {
  return new AgentsService({
    db: p.db,
    store: new RunStore(p.db, () => p.bus),
    bus: () => p.bus,
    log: p.log,
    memory: () => p.clients.memory,
    tools: () => p.clients.tools,
    // Quota hook: the billing role wires `p.clients.billing.assertRunAllowed` here.
    beforeRunCreate: (orgId) => p.clients.billing.assertRunAllowed(orgId),
    costOf: (items) => p.clients.billing.modelCosts(items),
    idempotencyStaleMs: p.config.idempotencyStaleMs,
  });
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
