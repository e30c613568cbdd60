/**
 * The typed clients of every role. `p.clients.auth.login(...)` is a direct call when the auth
 * role runs in this process and NATS request/reply when it runs elsewhere.
 */
import type { Bus } from "../platform/bus";
import type { Platform } from "../platform/platform";
import { AppError } from "../platform/errors";
import { rpcClient } from "../platform/rpc";
import type { RpcSeal } from "../platform/rpc-seal";
import type { Tracing } from "../platform/tracing";
import type { AgentsClient } from "./agents/contract";
import type { AuthClient } from "./auth/contract";
import type { BillingClient } from "./billing/contract";
import type { MemoryClient } from "./memory/contract";
import type { NotifyClient } from "./notify/contract";
import type { ToolsClient } from "./tools/contract";

/** Each role as others see it: its contract, never its concrete service. */
export interface Clients {
  agents: AgentsClient;
  auth: AuthClient;
  billing: BillingClient;
  memory: MemoryClient;
  notify: NotifyClient;
  tools: ToolsClient;
}

export type AppPlatform = Platform<Clients>;

export function createClients(local: Map<string, object>, bus: () => Bus, seal: () => RpcSeal | undefined, tracing?: Tracing): Clients {
  const remote = new Map<string, object>();
  return new Proxy({} as Clients, {
    get(_t, role: string) {
      const here = local.get(role);
      if (here) return here;
      let client = remote.get(role);
      if (!client) {
        const key = seal();
        if (!key) throw new AppError(503, "service_unavailable", `The ${role} role does not run in this process and no internal key is set to reach it over NATS (AGENTOS_INTERNAL_KEY).`);
        client = rpcClient(bus(), role, key, tracing);
        remote.set(role, client);
      }
      return client;
    },
  });
}

/** The clients a role declared in the module table (`uses`); any other throws at once. */
export function scopeClients(clients: Clients, role: string, uses: readonly (keyof Clients)[]): Clients {
  return new Proxy(clients, {
    get(target, name: string) {
      if (!uses.includes(name as keyof Clients)) {
        throw new Error(`role ${role} calls p.clients.${name} but does not declare it: add "${name}" to its \`uses\` in the module table`);
      }
      return target[name as keyof Clients];
    },
  });
}
