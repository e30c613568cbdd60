/**
 * The gateway: the public HTTP edge. It authenticates (JWT verified locally, API keys via the
 * auth role, both cached), and mounts every role's controller under /v1 plus the OpenAPI
 * document and Swagger UI. Controllers call roles through typed clients, so the gateway runs
 * the same code whether the roles are in this process or behind NATS.
 */
import { sha256Hex } from "../../platform/hash";
import { Elysia } from "elysia";
import { createAuthGuard } from "../../platform/http/auth-guard";
import { API_KEYS_CHANGED, type ApiKeysChanged } from "../../platform/principal";
import { swaggerUi } from "../../platform/http/swagger-ui";
import { consoleUi } from "../../platform/http/console";
import { createJwt, loadJwtSecret } from "../../platform/jwt";
import { AGENT_CACHE_KIND } from "../agents/contract";
import type { AgentOut } from "../agents/model";
import { providersController } from "../agents/providers-routes";
import { agentReadFastRoute, agentsController } from "../agents/routes";
import { schedulesController } from "../agents/schedules/routes";
import { createEdgeCache } from "../../platform/edge-cache";
import { authController } from "../auth/routes";
import { PLAN_CHANGED } from "../billing/contract";
import { billingController } from "../billing/routes";
import { memoryController } from "../memory/routes";
import { LiveHub, liveEventsRoute } from "../notify/live";
import { notifyController } from "../notify/routes";
import { toolsController } from "../tools/routes";
import { mcpEndpointController } from "../agents/mcp-routes";
import type { AppPlatform } from "../clients";
import type { RoleInstance } from "../modules";
import { gatewayDocument } from "./openapi";
import { createOrgRateLimiter } from "./rate-limits";

export function buildGatewayApp(p: AppPlatform) {
  const jwt = createJwt(loadJwtSecret(p.config, p.log), p.config.accessTokenTtlSeconds);
  const rateLimiter = createOrgRateLimiter({ cache: p.cache, log: p.log, getLimits: (orgId) => p.clients.billing.getLimits(orgId) });
  const guard = createAuthGuard({
    jwt,
    seed: crypto.randomUUID(),
    resolveApiKey: (key) => p.clients.auth.resolveApiKey(sha256Hex(key)),
    afterAuth: (principal) => rateLimiter.afterAuth(principal),
    afterAuthNow: (principal) => rateLimiter.afterAuthNow(principal),
  });
  // GET /v1/ws lives on the gateway (the edge with the auth guard); events arrive over the bus (see notify/live.ts).
  const live = new LiveHub(p.bus, p.metrics.websocketConnections, p.log);
  const unsubscribe = p.bus.subscribe<ApiKeysChanged>(p.bus.subject(API_KEYS_CHANGED), (m) => {
    guard.forgetApiKeys();
    if (typeof m.data?.key_id === "string") live.keyDeleted(m.data.key_id);
  });
  const unsubscribePlans = p.bus.subscribe<{ org_id?: string }>(p.bus.subject(PLAN_CHANGED), (m) => rateLimiter.forget(m.data?.org_id));
  p.websockets.push(liveEventsRoute(live, guard.authenticate));
  const agentCache = createEdgeCache<AgentOut>(p.bus, AGENT_CACHE_KIND);
  p.fastRoutes.push(agentReadFastRoute(guard, agentCache));
  const v1 = new Elysia({ prefix: "/v1" }).use(authController(p, guard)).use(agentsController(p, guard, agentCache)).use(schedulesController(p, guard)).use(billingController(p, guard)).use(notifyController(p, guard)).use(memoryController(p, guard)).use(toolsController(p, guard)).use(mcpEndpointController(p, guard)).use(providersController(p, guard));
  const app = new Elysia({ name: "gateway" })
    .use(gatewayDocument("/swagger/json"))
    .use(swaggerUi({ path: "/swagger", specPath: "/swagger/json" }))
    .use(consoleUi({ path: "/console" }))
    .use(v1);
  const stop = () => {
    unsubscribe();
    unsubscribePlans();
    live.stop();
    agentCache.close();
  };
  return { app, guard, stop };
}

/** The gateway role's code; what it is (deps, uses, rpc) is its row in src/roles/modules.ts. */
export function init(p: AppPlatform): RoleInstance {
  const gateway = buildGatewayApp(p);
  p.controllers.push(gateway.app);
  return { stop: gateway.stop };
}
