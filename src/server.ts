/**
 * One AgentOS process: resolves the roles asked for, starts their modules in dependency
 * order, serves HTTP (health, metrics and — with the gateway — the /v1 API), and on
 * shutdown turns /readyz to 503 at once, drains in-flight requests, then stops modules in
 * reverse order, all bounded by the shutdown timeout.
 */
import type { Elysia } from "elysia";
import type { Config } from "./platform/config";
import { FatalError } from "./platform/errors";
import { healthRoutes } from "./platform/http/health";
import { startHttpServer } from "./platform/http/server";
import { ModuleManager } from "./platform/lifecycle";
import { createLogger, type Logger } from "./platform/logging";
import { createMetrics } from "./platform/metrics";
import { loadSecretBox, useSecretBox } from "./platform/secrets";
import { openTracing } from "./platform/tracing";
import { VERSION } from "./version";
import { createClients, type AppPlatform } from "./roles/clients";
import { moduleGraph, ROLE_NAMES } from "./roles/modules";

export interface RunningProcess {
  port: number;
  platform: AppPlatform;
  /** What answers HTTP (for `app.handle(new Request(...))` in tests): Elysia with the gateway, else the health routes. */
  app: { handle(request: Request): Promise<Response> };
  shutdown(reason?: string): Promise<void>;
}

export function validateRoles(config: Config) {
  for (const role of config.roles) {
    if (!ROLE_NAMES.includes(role)) throw new FatalError(`unknown role '${role}' (roles: ${ROLE_NAMES.join(", ")})`);
  }
  if (config.roles.length === 0) throw new FatalError("--role needs at least one role");
  const split = !config.roles.includes("all");
  if (split && (!config.databaseUrl || !config.natsUrl)) {
    throw new FatalError(
      `--role=${config.roles.join(",")} runs part of AgentOS, so the parts must share PostgreSQL and NATS: set DATABASE_URL and NATS_URL (the embedded defaults serve only --role=all)`,
    );
  }
  if (split && !config.internalKey) {
    throw new FatalError(
      `--role=${config.roles.join(",")} calls the other roles over NATS, sealed with a key every process shares: set AGENTOS_INTERNAL_KEY (at least 32 bytes, e.g. \`openssl rand -base64 48\`)`,
    );
  }
  if (config.natsUrl && config.toolsSubjectPrefix.split(".")[0] === config.namespace) {
    throw new FatalError(`--tools-subject-prefix=${config.toolsSubjectPrefix} lies under the namespace '${config.namespace}': tool workers must never reach AgentOS's own subjects`);
  }
}

export async function startProcess(config: Config, log: Logger = createLogger(config.logLevel)): Promise<RunningProcess> {
  validateRoles(config);
  const metrics = createMetrics();
  const local = new Map<string, object>();
  const tracing = await openTracing({
    endpoint: config.otlpEndpoint,
    tracesEndpoint: config.otlpTracesEndpoint,
    headers: config.otlpHeaders,
    serviceName: config.otelServiceName ?? `agentos-${config.roles.join("+")}`,
    sampler: config.otelTracesSampler,
    samplerArg: config.otelTracesSamplerArg,
    attributes: { "agentos.roles": config.roles.join(","), "service.version": VERSION },
  }, log);
  const p = {
    config,
    log,
    metrics,
    tracing,
    local,
    draining: false,
    controllers: [],
    websockets: [],
    fastRoutes: [],
  } as unknown as AppPlatform;
  p.secrets = loadSecretBox(config, log);
  useSecretBox(p.secrets);
  p.clients = createClients(local, () => p.bus, () => p.rpcSeal, tracing);

  const manager = new ModuleManager(moduleGraph);
  const started = new Set<string>();
  try {
    await manager.start(config.roles, p, (name) => started.add(name));
  } catch (err) {
    await manager.stop(() => {});
    throw err;
  }

  const readiness = async () => {
    const checks: Record<string, string> = {};
    if (p.draining) checks.process = "shutting down";
    const probe = async (name: string, fn: () => Promise<string | null>) => {
      try {
        checks[name] = (await Promise.race([fn(), Bun.sleep(2000).then(() => "timed out")])) ?? "ok";
      } catch (err) {
        checks[name] = (err as Error).message;
      }
    };
    // Each started module reports its own health (backends: reachable, migrations applied).
    await Promise.all(manager.healthChecks().filter(([name]) => started.has(name)).map(([name, fn]) => probe(name, async () => fn())));
    return { ready: Object.values(checks).every((v) => v === "ok"), checks };
  };

  const api = p.controllers.length ? await apiApp(config, p, readiness) : undefined;
  const fetch = api?.fetch ?? healthRoutes({ log, metrics, readiness });
  const http = startHttpServer({ fetch, fastPath: api?.fastPath, port: config.port, hostname: config.host, maxBodyBytes: config.maxBodyBytes, bodyTimeoutMs: config.bodyTimeoutMs, websockets: p.websockets });
  log.info("agentos started", { roles: config.roles, modules: [...started], port: http.port, database: p.database?.kind, cache: p.cache?.kind, bus: p.bus?.kind });

  let stopping: Promise<void> | undefined;
  const shutdown = (reason = "shutdown") =>
    (stopping ??= (async () => {
      p.draining = true;
      log.info("shutting down: draining", { reason, in_flight: http.inFlight() });
      const deadline = Date.now() + config.shutdownTimeoutMs;
      await http.stop(Math.max(0, deadline - Date.now()) / 2);
      await Promise.race([
        manager.stop((name, err) => log.error("module failed to stop", { module: name, error: err })),
        Bun.sleep(Math.max(0, deadline - Date.now())).then(() => log.warn("shutdown timeout reached; exiting anyway")),
      ]);
      metrics.stop();
      await Promise.race([tracing.shutdown(), Bun.sleep(Math.max(0, deadline - Date.now()))]);
      log.info("stopped", { reason });
    })());

  return { port: http.port, platform: p, app: { handle: async (request) => fetch(request) }, shutdown };
}

/**
 * The API (the gateway's controllers) on Elysia, with the HTTP platform and CORS: imported only
 * by a process that mounts controllers; the other roles answer their probes with healthRoutes.
 */
async function apiApp(config: Config, p: AppPlatform, readiness: () => Promise<{ ready: boolean; checks: Record<string, string> }>) {
  const [{ Elysia }, { createCors }, { createFastPath }, { httpPlatform }, { createInputContract }] = await Promise.all([
    import("elysia"),
    import("./platform/http/cors"),
    import("./platform/http/fast-path"),
    import("./platform/http/app"),
    import("./platform/http/contract"),
  ]);
  // normalize: "typebox" — the default normalisation coerces a string or array sent for a `t.Record`
  // field into an object ({"0":"n",…}); TypeBox normalisation rejects it instead.
  const contract = createInputContract();
  const cors = createCors(config.corsOrigins);
  let app = new Elysia({ name: "agentos", normalize: "typebox" })
    .use(httpPlatform({ log: p.log, metrics: p.metrics, tracing: p.tracing, maxBodyBytes: config.maxBodyBytes, readiness, contract }))
    .use(cors.plugin);
  for (const controller of p.controllers) app = app.use(controller as Elysia);
  // Before compiling and before the OpenAPI document is first read: it closes the API's body schemas.
  contract.adopt(app.routes, { prefix: "/v1/" });
  app.compile();
  // Off with tracing: a fast answer would have no server span.
  const fastPath = config.httpFastPath && !p.tracing.enabled && p.fastRoutes.length ? createFastPath({ routes: p.fastRoutes, cors, metrics: p.metrics, log: p.log }) : undefined;
  return { fetch: app.fetch, fastPath };
}
