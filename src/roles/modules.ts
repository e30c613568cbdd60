/**
 * THE table of modules: the platform's backends and the service roles, with their
 * dependencies. `--role=` picks targets; their dependencies come along; `all` is just a
 * node that depends on every role. Nothing else in the code base decides start order.
 */
import { openBus } from "../platform/bus";
import { openCache } from "../platform/cache";
import { openDatabase } from "../platform/db";
import { pendingMigrations } from "../platform/db/migrate";
import { EVENTS_STREAM, startOutboxRelay } from "../platform/outbox";
import { ModuleGraph, type ModuleDef, type Service } from "../platform/lifecycle";
import { serveRpc } from "../platform/rpc";
import { RpcSeal } from "../platform/rpc-seal";
import { scopeClients, type AppPlatform, type Clients } from "./clients";
import { agentsRole } from "./agents/role";
import { authRole } from "./auth/role";
import { billingRole } from "./billing/role";
import { gatewayRole } from "./gateway/role";
import { memoryRole } from "./memory/role";
import { notifyRole } from "./notify/role";
import { toolsRole } from "./tools/role";
import { workerRole } from "./worker/role";

/** A service role: its init returns the RPC surface other roles call through clients. */
export interface RoleModule {
  name: string;
  deps: string[];
  description: string;
  /** The methods of `service` its contract declares: the only ones served over the bus. */
  rpc?: readonly string[];
  /**
   * The roles it calls through `p.clients` (in-process or over RPC). Calls may form cycles
   * (they are not start-order dependencies); a client the role does not declare throws.
   */
  uses: (keyof Clients)[];
  init(p: AppPlatform): Promise<RoleInstance> | RoleInstance;
}
export interface RoleInstance extends Service {
  /** Methods other roles call via `p.clients.<role>`; served over NATS when the bus is NATS. */
  service?: object;
}

export const ROLE_MODULES: RoleModule[] = [gatewayRole, authRole, billingRole, memoryRole, toolsRole, notifyRole, agentsRole, workerRole];

const backends: ModuleDef<AppPlatform>[] = [
  {
    name: "database",
    deps: [],
    description: "PostgreSQL (DATABASE_URL) or embedded PGlite; applies migrations at start",
    async init(p) {
      p.database = await openDatabase({ url: p.config.databaseUrl, dataDir: p.config.dataDir, log: p.log, poolSize: p.config.databasePoolSize, prepare: p.config.databasePreparedStatements, connectTimeoutMs: p.config.databaseConnectTimeoutMs });
      p.db = p.database.db;
      await p.database.migrate();
      return {
        stop: () => p.database.close(),
        async health() {
          const outage = p.database.problem();
          if (outage) return outage;
          await p.database.ping();
          const pending = await pendingMigrations(p.db);
          return pending.length ? `migrations pending: ${pending.join(", ")}` : null;
        },
      };
    },
  },
  {
    name: "cache",
    deps: [],
    description: "Redis (REDIS_URL) or in-process cache and rate limits",
    async init(p) {
      p.cache = await openCache({ url: p.config.redisUrl, namespace: p.config.namespace, log: p.log });
      return { stop: () => p.cache.close(), health: () => p.cache.problem() };
    },
  },
  {
    name: "bus",
    deps: [],
    description: "NATS with JetStream (NATS_URL) or the in-process bus",
    async init(p) {
      p.bus = await openBus({
        url: p.config.natsUrl,
        namespace: p.config.namespace,
        log: p.log,
        name: `agentos-${p.config.roles.join("+")}`,
        auth: {
          user: p.config.natsUser,
          password: p.config.natsPassword,
          token: p.config.natsToken,
          credsFile: p.config.natsCredsFile,
          nkeyFile: p.config.natsNkeyFile,
          caFile: p.config.natsCaFile,
          certFile: p.config.natsCertFile,
          keyFile: p.config.natsKeyFile,
        },
        onMessage: (direction) => p.metrics.natsMessages.inc({ direction }),
      });
      if (p.config.internalKey) p.rpcSeal = new RpcSeal(p.config.internalKey);
      return { stop: () => p.bus.close(), health: () => p.bus.problem() };
    },
  },
  {
    name: "outbox",
    deps: ["database", "bus"],
    description: "transactional outbox relay: committed domain events → EVENTS stream + live fan-out",
    async init(p) {
      await p.bus.ensureStream(EVENTS_STREAM);
      const relay = startOutboxRelay(p.db, p.bus, p.log, 250, p.tracing);
      return { stop: () => relay.stop() };
    },
  },
];

function roleDef(role: RoleModule): ModuleDef<AppPlatform> {
  return {
    name: role.name,
    deps: role.deps,
    uses: role.uses,
    description: role.description,
    role: true,
    async init(p) {
      // The role sees the whole platform (live, through the prototype) but only its declared clients.
      const scoped: AppPlatform = Object.create(p, { clients: { value: scopeClients(p.clients, role.name, role.uses) } });
      const instance = await role.init(scoped);
      let unserve: (() => void) | undefined;
      if (instance.service) p.local.set(role.name, instance.service);
      return {
        async start() {
          await instance.start?.();
          // Split deployments reach this role over NATS request/reply (queue group = role),
          // sealed with the internal key; without one (--role=all) nothing is served.
          if (instance.service && role.rpc && p.bus.kind === "nats" && p.rpcSeal) {
            unserve = serveRpc(p.bus, {
              role: role.name,
              service: instance.service,
              methods: role.rpc,
              seal: p.rpcSeal,
              log: p.log,
              onRefused: (reason) => p.metrics.rpcRefused.inc({ role: role.name, reason }),
              tracing: p.tracing,
            });
          }
        },
        async stop() {
          unserve?.();
          await instance.stop?.();
        },
        health: instance.health && (() => instance.health!()),
      };
    },
  };
}

export const moduleGraph = new ModuleGraph<AppPlatform>([
  ...backends,
  ...ROLE_MODULES.map(roleDef),
  { name: "all", deps: ROLE_MODULES.map((r) => r.name), description: "every role in one process", role: true },
]);

export const ROLE_NAMES = ["all", ...ROLE_MODULES.map((r) => r.name)];
