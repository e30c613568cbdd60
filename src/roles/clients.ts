/**
 * The typed clients of every role. `p.clients.auth.login(...)` is a direct call when the auth
 * role runs in this process and NATS request/reply when it runs elsewhere.
 */
import type { Bus } from "../platform/bus";
import type { Platform } from "../platform/platform";
import { rpcClient } from "../platform/rpc";
import type { AgentsService } from "./agents/service";
import type { AuthService } from "./auth/service";
import type { BillingService } from "./billing/service";
import type { MemoryService } from "./memory/service";
import type { NotifyService } from "./notify/service";
import type { ToolsService } from "./tools/service";

export interface Clients {
  agents: AgentsService;
  auth: AuthService;
  billing: BillingService;
  memory: MemoryService;
  notify: NotifyService;
  tools: ToolsService;
}

export type AppPlatform = Platform<Clients>;

export function createClients(local: Map<string, object>, bus: () => Bus): Clients {
  const remote = new Map<string, object>();
  return new Proxy({} as Clients, {
    get(_t, role: string) {
      const here = local.get(role);
      if (here) return here;
      let client = remote.get(role);
      if (!client) {
        client = rpcClient(bus(), role);
        remote.set(role, client);
      }
      return client;
    },
  });
}
