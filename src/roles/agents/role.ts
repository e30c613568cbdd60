import { AGENTS_RPC, type AgentsClient } from "./contract";
import type { AppPlatform } from "../clients";
import type { RoleInstance } from "../modules";
import { RUNS_STREAM, RunStore, RunsService } from "../../runs";
import { startScheduler } from "./schedules/scheduler";
import { SchedulesService } from "./schedules/service";
import { ProvidersService } from "./providers";
import { AgentsService } from "./service";

export function createAgentsService(p: AppPlatform, providers = newProviders(p)): { surface: AgentsClient; schedules: SchedulesService } {
  const agents = new AgentsService({
    db: p.db,
    bus: () => p.bus,
    memory: () => p.clients.memory,
    tools: () => p.clients.tools,
    idempotencyStaleMs: p.config.idempotencyStaleMs,
    messageBatchMax: p.config.messageBatchMax,
    assertModelServed: (orgId, model) => providers.assertModelServed(orgId, model),
  });
  const runs = new RunsService({
    db: p.db,
    store: new RunStore(p.db, () => p.bus, p.database.oneTrip),
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
  // Each fire goes through the run API like a client's create: quotas and options apply alike.
  const schedules = new SchedulesService({
    db: p.db,
    log: p.log,
    createThread: (orgId, input, key) => agents.createThread(orgId, input, key),
    createRun: (orgId, threadId, input, key) => runs.createRun(orgId, threadId, input, key),
    idempotencyStaleMs: p.config.idempotencyStaleMs,
    misfireGraceMs: p.config.scheduleMisfireGraceMs,
  });
  return { surface: servedSurface({ AgentsService: agents, RunsService: runs, SchedulesService: schedules, ProvidersService: providers }), schedules };
}

function newProviders(p: AppPlatform) {
  return new ProvidersService(p.db, p.secrets, { allowPrivate: p.config.allowPrivateTargets }, p.config.idempotencyStaleMs);
}

/** One service object for the role: each contract method bound to the one service that implements it. */
function servedSurface(services: Record<string, object>): AgentsClient {
  const surface: Record<string, unknown> = {};
  for (const method of AGENTS_RPC) {
    const owners = Object.entries(services).filter(([, s]) => method in s);
    if (owners.length !== 1) throw new Error(`agents role: ${method} is implemented by ${owners.map(([n]) => n).join(" and ") || "no service"}`);
    const owner = owners[0][1] as Record<string, unknown>;
    surface[method] = (owner[method] as (...args: unknown[]) => unknown).bind(owner);
  }
  return surface as AgentsClient;
}

/** The agents role's code; what it is (deps, uses, rpc) is its row in src/roles/modules.ts. */
export function init(p: AppPlatform): RoleInstance {
  const providers = newProviders(p);
  const { surface, schedules } = createAgentsService(p, providers);
  let scheduler: ReturnType<typeof startScheduler> | undefined;
  return {
    service: surface,
    async start() {
      // Runs are enqueued on create and on resume.
      await p.bus.ensureStream(RUNS_STREAM);
      await providers.resealStaleKeys(p.log);
      // Every agents replica runs the scheduler: PostgreSQL keys make each fire happen once.
      scheduler = startScheduler({ schedules, intervalMs: p.config.scheduleIntervalMs, log: p.log });
    },
    stop: () => scheduler?.stop(),
  };
}
