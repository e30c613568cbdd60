/**
 * THE table of modules: the platform's backends and the service roles, with their
 * dependencies. `--role=` picks targets; their dependencies come along; `all` is just a
 * node that depends on every role. Nothing else in the code base decides start order.
 */
import { ModuleGraph, type ModuleDef, type Service } from "../platform/lifecycle";
import { scopeClients, type AppPlatform, type Clients } from "./clients";
import { AGENTS_RPC } from "./agents/contract";
import { AUTH_RPC } from "./auth/contract";
import { BILLING_RPC } from "./billing/contract";
import { MEMORY_RPC } from "./memory/contract";
import { NOTIFY_RPC } from "./notify/contract";
import { TOOLS_RPC } from "./tools/contract";

// Only light modules are imported statically here: every backend's and role's code (and its
// libraries) is reached through `import()`, a chunk of its own in the binary (scripts/build.ts:
// splitting) that only a process running that module loads.

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
  /** The role's code (its role.ts `init`), imported only by a process that runs the role. */
  load(): Promise<RoleInit>;
}
export type RoleInit = (p: AppPlatform) => Promise<RoleInstance> | RoleInstance;
export interface RoleInstance extends Service {
  /** Methods other roles call via `p.clients.<role>`; served over NATS when the bus is NATS. */
  service?: object;
}

export const ROLE_MODULES: RoleModule[] = [
  {
    name: "gateway",
    deps: ["database", "cache", "bus"],
    uses: ["auth", "agents", "billing", "memory", "notify", "tools"],
    description: "the public HTTP edge: /v1 API, auth guard, rate limits, Swagger UI",
    load: () => import("./gateway/role").then((m) => m.init),
  },
  {
    name: "auth",
    rpc: AUTH_RPC,
    deps: ["database", "cache", "bus"],
    uses: [],
    description: "accounts, sessions (JWT + rotating refresh tokens), API keys, organization members",
    load: () => import("./auth/role").then((m) => m.init),
  },
  {
    name: "billing",
    rpc: BILLING_RPC,
    deps: ["database", "bus", "outbox"],
    uses: [],
    description: "plans, quotas, the usage ledger (from events) and monthly statements",
    load: () => import("./billing/role").then((m) => m.init),
  },
  {
    name: "memory",
    rpc: MEMORY_RPC,
    deps: ["database", "bus", "outbox"],
    uses: ["agents"],
    description: "core memory blocks (per agent and shared) and archival memory (hybrid full-text + embedding search), builtin memory tools",
    load: () => import("./memory/role").then((m) => m.init),
  },
  {
    name: "tools",
    rpc: TOOLS_RPC,
    deps: ["database", "bus"],
    uses: ["memory", "agents"],
    description: "tool registry (http, nats, client, mcp servers; builtin memory tools) and tool execution for runs",
    load: () => import("./tools/role").then((m) => m.init),
  },
  {
    name: "notify",
    rpc: NOTIFY_RPC,
    deps: ["database", "bus"],
    uses: [],
    description: "webhooks (signed, retried, persisted deliveries) and the in-app inbox; the /v1/ws fan-out is served by gateways",
    load: () => import("./notify/role").then((m) => m.init),
  },
  {
    name: "agents",
    rpc: AGENTS_RPC,
    deps: ["database", "bus", "cache", "outbox"],
    uses: ["memory", "tools", "billing"],
    description: "agent orchestration: agents, threads, messages, runs (create, cancel, tool outputs, events), schedules and the scheduler that fires them, model providers",
    load: () => import("./agents/role").then((m) => m.init),
  },
  {
    name: "worker",
    deps: ["database", "bus", "cache", "outbox"],
    uses: ["memory", "tools", "agents", "auth", "billing"],
    description: "executes runs taken from the run queue: prompt, model calls, tool calls, streaming, cancel, resume",
    load: () => import("./worker/role").then((m) => m.init),
  },
];

const backends: ModuleDef<AppPlatform>[] = [
  {
    name: "database",
    deps: [],
    description: "PostgreSQL (DATABASE_URL) or embedded PGlite; applies migrations at start",
    async init(p) {
      const { openDatabase } = await import("../platform/db");
      const { pendingMigrations } = await import("../platform/db/migrate");
      const counts = { statement: p.metrics.dbStatements.bind({ kind: "statement" }), transaction: p.metrics.dbStatements.bind({ kind: "transaction" }) };
      p.database = await openDatabase({
        url: p.config.databaseUrl, dataDir: p.config.dataDir, log: p.log, poolSize: p.config.databasePoolSize, prepare: p.config.databasePreparedStatements, connectTimeoutMs: p.config.databaseConnectTimeoutMs,
        onStatement: (kind) => counts[kind](),
      });
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
      const { openCache } = await import("../platform/cache");
      p.cache = await openCache({ url: p.config.redisUrl, namespace: p.config.namespace, log: p.log });
      return { stop: () => p.cache.close(), health: () => p.cache.problem() };
    },
  },
  {
    name: "bus",
    deps: [],
    description: "NATS with JetStream (NATS_URL) or the in-process bus",
    async init(p) {
      const { openBus } = await import("../platform/bus");
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
      if (p.config.internalKey) p.rpcSeal = new (await import("../platform/rpc-seal")).RpcSeal(p.config.internalKey);
      return { stop: () => p.bus.close(), health: () => p.bus.problem() };
    },
  },
  {
    name: "outbox",
    deps: ["database", "bus"],
    description: "transactional outbox relay: committed domain events → EVENTS stream + live fan-out",
    async init(p) {
      const { EVENTS_STREAM, startOutboxRelay } = await import("../platform/outbox");
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
      const init = await role.load();
      const serveRpc = role.rpc && p.bus.kind === "nats" && p.rpcSeal ? (await import("../platform/rpc")).serveRpc : undefined;
      const instance = await init(scoped);
      let unserve: (() => void) | undefined;
      if (instance.service) p.local.set(role.name, instance.service);
      return {
        async start() {
          await instance.start?.();
          // Split deployments reach this role over NATS request/reply (queue group = role),
          // sealed with the internal key; without one (--role=all) nothing is served.
          if (instance.service && role.rpc && serveRpc && p.rpcSeal) {
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
