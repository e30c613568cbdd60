import { AGENTS_RPC, type AgentsClient } from "./contract";
import type { AppPlatform } from "../clients";
import type { RoleModule } from "../modules";
import { RUNS_STREAM, RunStore, RunsService } from "../../runs";
import { ProvidersService } from "./providers";
import { AgentsService } from "./service";

export function createAgentsService(p: AppPlatform, providers = newProviders(p)): AgentsClient {
  const agents = new AgentsService({
    db: p.db,
    bus: () => p.bus,
    memory: () => p.clients.memory,
    tools: () => p.clients.tools,
    idempotencyStaleMs: p.config.idempotencyStaleMs,
    assertModelServed: (orgId, model) => providers.assertModelServed(orgId, model),
  });
  const runs = new RunsService({
    db: p.db,
    store: new RunStore(p.db, () => p.bus),
    bus: () => p.bus,
    log: p.log,
    requireThread: (orgId, threadId) => agents.threadRow(orgId, threadId),
    // Quota hook: the billing role wires `p.clients.billing.assertRunAllowed` here.
    beforeRunCreate: (orgId) => p.clients.billing.assertRunAllowed(orgId),
    costOf: (items) => p.clients.billing.modelCosts(items),
    idempotencyStaleMs: p.config.idempotencyStaleMs,
  });
  return servedSurface([agents, runs, providers]);
}

function newProviders(p: AppPlatform) {
  return new ProvidersService(p.db, p.secrets, { allowPrivate: p.config.allowPrivateTargets }, p.config.idempotencyStaleMs);
}

/** One service object for the role: each contract method bound to the one service that implements it. */
function servedSurface(services: object[]): AgentsClient {
  const surface: Record<string, unknown> = {};
  for (const method of AGENTS_RPC) {
    const owners = services.filter((s) => method in s) as unknown as Record<string, (...args: unknown[]) => unknown>[];
    if (owners.length !== 1) throw new Error(`agents role: ${method} is implemented ${owners.length} times (AgentsService, RunsService, ProvidersService)`);
    surface[method] = owners[0][method].bind(owners[0]);
  }
  return surface as AgentsClient;
}

export const agentsRole: RoleModule = {
  name: "agents",
  rpc: AGENTS_RPC,
  deps: ["database", "bus", "cache", "outbox"],
  uses: ["memory", "tools", "billing"],
  description: "agent orchestration: agents, threads, messages, runs (create, cancel, tool outputs, events), model providers",
  init(p) {
    const providers = newProviders(p);
    const service = createAgentsService(p, providers);
    return {
      service,
      async start() {
        // Runs are enqueued on create and on resume.
        await p.bus.ensureStream(RUNS_STREAM);
        await providers.resealStaleKeys(p.log);
      },
    };
  },
};
