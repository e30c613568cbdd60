import type { AppPlatform } from "../clients";
import type { RoleModule } from "../modules";
import { ToolsService } from "./service";

export const toolsRole: RoleModule = {
  name: "tools",
  deps: ["database", "bus"],
  description: "tool registry (http, nats, client; builtin memory tools) and tool execution for runs",
  init(p: AppPlatform) {
    const service = new ToolsService({
      db: p.db,
      bus: p.bus,
      log: p.log,
      // Tool subjects are used as they are: keep users off AgentOS's own subjects (RPC, runs, events) and NATS internals.
      reservedSubjects: [...new Set([p.config.namespace, "agentos", "_INBOX", "$JS", "$SYS", "$KV", "$O"])],
      outbound: { allowPrivate: p.config.allowPrivateTargets },
      memory: () => p.clients.memory,
      agents: () => p.clients.agents,
    });
    return { service };
  },
};
