/**
 * The HTTP surface of a process without the gateway: /healthz, /readyz and /metrics only, with
 * the bodies, status codes, content types, x-request-id and error shape of httpPlatform's
 * routes (app.ts), the same request metrics and access log — but no Elysia, which such a
 * process would otherwise load for three routes (≈ 10 MiB of RSS). CORS headers are left out:
 * no browser calls a role's probes.
 */
import { currentContext } from "../context";
import { newId } from "../ids";
import type { Logger } from "../logging";
import type { Metrics } from "../metrics";
import { logRequest } from "./access-log";
import { errorResponse } from "./errors";

export interface HealthRoutesOptions {
  log: Logger;
  metrics: Metrics;
  readiness: () => Promise<{ ready: boolean; checks: Record<string, string> }>;
}

const JSON_TYPE = "application/json;charset=utf-8"; // what Elysia sends for an object
const METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export function healthRoutes(opts: HealthRoutesOptions): (request: Request) => Promise<Response> {
  const { log, metrics } = opts;
  const json = (body: unknown, requestId: string) => new Response(JSON.stringify(body), { headers: { "content-type": JSON_TYPE, "x-request-id": requestId } });

  async function route(request: Request, pathname: string, requestId: string): Promise<[string, Response]> {
    if (/%00/.test(request.url)) return ["", errorResponse(400, "invalid_request", "The URL contains a NUL character (%00).", requestId)];
    if (request.method === "GET") {
      switch (pathname) {
        case "/healthz":
          return [pathname, json({ status: "ok" }, requestId)];
        case "/readyz": {
          const { ready, checks } = await opts.readiness();
          if (ready) return [pathname, json({ status: "ready", checks }, requestId)];
          const reasons = Object.entries(checks).filter(([, v]) => v !== "ok").map(([k, v]) => `${k}: ${v}`);
          return [pathname, errorResponse(503, "not_ready", reasons.join("; "), requestId, { checks })];
        }
        case "/metrics":
          return [pathname, new Response(metrics.registry.render(), { headers: { "content-type": METRICS_TYPE, "x-request-id": requestId } })];
      }
    }
    return ["", errorResponse(404, "route_not_found", `No route ${request.method} ${pathname}. See /swagger for the API.`, requestId)];
  }

  return async (request) => {
    const start = performance.now();
    const requestId = currentContext()?.requestId ?? newId("req");
    const pathname = new URL(request.url).pathname;
    const [matched, response] = await route(request, pathname, requestId);
    const seconds = (performance.now() - start) / 1000;
    const labels = { route: matched || "unmatched", method: request.method, status: response.status };
    metrics.httpDuration.observe(seconds, labels);
    metrics.httpRequests.inc(labels);
    logRequest(log, { method: request.method, path: pathname, route: matched, status: response.status, seconds, requestId });
    return response;
  };
}
