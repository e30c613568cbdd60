import { publishInvalidation } from "../../platform/edge-cache";
import { AGENT_CACHE_KIND, agentCacheKey, type AgentsContract } from "../agents/contract";
import type { AppPlatform } from "../clients";
import type { RoleModule } from "../modules";
import { MemoryService } from "./service";

/** The part of the agents role the memory role relies on: agent lookup scoped to an organization (404 otherwise). */
type AgentsLookup = AgentsContract & { getAgent(orgId: string, id: string): Promise<{ id: string }> };

export const agentsLookup = (p: AppPlatform) => (p.clients as unknown as { agents: AgentsLookup }).agents;

export const memoryRole: RoleModule = {
  name: "memory",
  deps: ["database", "bus"],
  description: "core memory blocks and archival memory (ranked full-text search), builtin memory tools",
  init(p) {
    const service = new MemoryService(
      p.db,
      async (principal, agentId) => {
        await agentsLookup(p).getAgent(principal.orgId, agentId);
      },
      (orgId, agentId) => publishInvalidation(p.bus, AGENT_CACHE_KIND, agentCacheKey(orgId, agentId)),
    );
    return { service };
  },
};
