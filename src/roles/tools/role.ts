import { TOOLS_RPC } from "./contract";
import type { AppPlatform } from "../clients";
import type { RoleModule } from "../modules";
import { ToolsService } from "./service";
import { loadSecretBox } from "../../platform/secrets";

export const toolsRole: RoleModule = {
  name: "tools",
  rpc: TOOLS_RPC,
  deps: ["database", "bus"],
  uses: ["memory", "agents"],
  description: "tool registry (http, nats, client, mcp servers; builtin memory tools) and tool execution for runs",
  init(p: AppPlatform) {
    // Loaded at start, so a bad key ends start-up rather than failing a request later.
    const secrets = loadSecretBox(p.config, p.log);
    const service = new ToolsService({
      db: p.db,
      bus: p.bus,
      log: p.log,
      toolsSubjectPrefix: p.config.toolsSubjectPrefix,
      outbound: { allowPrivate: p.config.allowPrivateTargets },
      memory: () => p.clients.memory,
      agents: () => p.clients.agents,
      idempotencyStaleMs: p.config.idempotencyStaleMs,
      secrets: () => secrets,
    });
    return { service };
  },
};
