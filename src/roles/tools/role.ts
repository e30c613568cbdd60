import type { AppPlatform } from "../clients";
import type { RoleInstance } from "../modules";
import { ToolsService } from "./service";

/** The tools role's code; what it is (deps, uses, rpc) is its row in src/roles/modules.ts. */
export function init(p: AppPlatform): RoleInstance {
  const service = new ToolsService({
    db: p.db,
    bus: p.bus,
    log: p.log,
    toolsSubjectPrefix: p.config.toolsSubjectPrefix,
    outbound: { allowPrivate: p.config.allowPrivateTargets },
    memory: () => p.clients.memory,
    agents: () => p.clients.agents,
    idempotencyStaleMs: p.config.idempotencyStaleMs,
    secrets: () => p.secrets,
  });
  return { service };
}
