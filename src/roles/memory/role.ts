import { MEMORY_RPC } from "./contract";
import { publishInvalidation } from "../../platform/edge-cache";
import { AGENT_CACHE_KIND, agentCacheKey } from "../agents/contract";
import type { AppPlatform } from "../clients";
import type { RoleModule } from "../modules";
import { MemoryService } from "./service";

export const memoryRole: RoleModule = {
  name: "memory",
  rpc: MEMORY_RPC,
  deps: ["database", "bus"],
  uses: ["agents"],
  description: "core memory blocks and archival memory (ranked full-text search), builtin memory tools",
  init(p) {
    const service = new MemoryService(
      p.db,
      async (principal, agentId) => {
        await p.clients.agents.getAgent(principal.orgId, agentId); // 404 outside the organization
      },
      (orgId, agentId) => publishInvalidation(p.bus, AGENT_CACHE_KIND, agentCacheKey(orgId, agentId)),
      p.config.idempotencyStaleMs,
    );
    return { service };
  },
};
