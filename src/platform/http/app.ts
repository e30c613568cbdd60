/**
 * The HTTP platform every process shares: request ids, the error shape for every failure
 * (malformed JSON, schema, unknown route, 413, 415, internal), one JSON access-log line per
 * request, Prometheus metrics, and /healthz, /readyz, /metrics. Only these cross-cutting
 * concerns are global; controllers are separate Elysia instances mounted beside them.
 */
import { Elysia } from "elysia";
import { currentContext, traceIdOf } from "../context";
import { AppError } from "../errors";
import { newId } from "../ids";
import type { Logger } from "../logging";
import type { Metrics } from "../metrics";
import { appErrorResponse, errorResponse, validationDetails } from "./errors";

export interface HttpPlatformOptions {
  log: Logger;
  metrics: Metrics;
  maxBodyBytes: number;
  /** Null when ready, otherwise the reasons (for /readyz). */
  readiness: () => Promise<{ ready: boolean; checks: Record<string, string> }>;
}

interface RequestInfo {
  id: string;
  start: number;
  traceparent?: string;
}

const BODY_METHODS = new Set(["POST", "PUT", "PATCH"]);
const requests = new WeakMap<Request, RequestInfo>();

export function requestInfo(request: Request): RequestInfo {
  let info = requests.get(request);
  if (!info) {
    const ctx = currentContext();
    const incoming = request.headers.get("x-request-id");
    const id = ctx?.requestId ?? (incoming && /^[\w.:-]{1,128}$/.test(incoming) ? incoming : newId("req"));
    info = { id, start: performance.now(), traceparent: ctx?.traceparent ?? request.headers.get("traceparent") ?? undefined };
    requests.set(request, info);
  }
  return info;
}

function isJson(contentType: string | null) {
  if (!contentType) return false;
  const type = contentType.split(";")[0].trim().toLowerCase();
  return type === "application/json" || (type.startsWith("application/") && type.endsWith("+json"));
}

export function httpPlatform(opts: HttpPlatformOptions) {
  const { log, metrics, maxBodyBytes } = opts;

  function renderError(code: string | number, error: unknown, request: Request): Response {
    const info = requestInfo(request);
    if (error instanceof AppError) return appErrorResponse(error, info.id);
    switch (code) {
      case "VALIDATION":
        return errorResponse(400, "validation_failed", "The request does not match the schema; see details.fields.", info.id, validationDetails(error as any));
      case "PARSE":
        return errorResponse(400, "invalid_json", "The body is not valid JSON.", info.id);
      case "NOT_FOUND":
        return errorResponse(404, "route_not_found", `No route ${request.method} ${new URL(request.url).pathname}. See /swagger for the API.`, info.id);
      case "INVALID_COOKIE_SIGNATURE":
        return errorResponse(400, "invalid_cookie", "A cookie has an invalid signature.", info.id);
    }
    const status = (error as { status?: number })?.status;
    if (typeof status === "number" && status >= 400 && status < 500) {
      return errorResponse(status, status === 413 ? "payload_too_large" : "bad_request", (error as Error).message || "Bad request.", info.id);
    }
    log.error("unhandled error", { request_id: info.id, path: new URL(request.url).pathname, error: error as Error, stack: (error as Error)?.stack });
    return errorResponse(500, "internal_error", "Something went wrong on our side; the request id identifies it in our logs.", info.id);
  }
  return new Elysia({ name: "http-platform" })
    .onRequest(({ request, set }) => {
      const info = requestInfo(request);
      set.headers["x-request-id"] = info.id;
      if (!BODY_METHODS.has(request.method)) return;
      const length = Number(request.headers.get("content-length") ?? "0");
      if (length > maxBodyBytes) {
        set.status = 413;
        return errorResponse(413, "payload_too_large", `The body is ${length} bytes; the limit is ${maxBodyBytes} bytes.`, info.id);
      }
      // Requests built in-process (app.handle) may carry a body without a content-length.
      const hasBody = length > 0 || request.headers.has("transfer-encoding") || (!request.headers.has("content-length") && request.body !== null);
      if (hasBody && !isJson(request.headers.get("content-type"))) {
        set.status = 415;
        return errorResponse(415, "unsupported_media_type", "Send the body as JSON with `Content-Type: application/json`.", info.id);
      }
    })
    .onError({ as: "global" }, (ctx) => {
      // Keep set.status in step with the response so access logs and metrics see it.
      const response = renderError(ctx.code, ctx.error, ctx.request);
      ctx.set.status = response.status;
      return response;
    })
    .onAfterResponse({ as: "global" }, ({ request, route, set }) => {
      const info = requestInfo(request);
      const seconds = (performance.now() - info.start) / 1000;
      const status = typeof set.status === "number" ? set.status : 200;
      const labels = { route: route || "unmatched", method: request.method, status };
      metrics.httpDuration.observe(seconds, labels);
      metrics.httpRequests.inc(labels);
      if (log.level === "debug" || log.level === "info") {
        log.info("request", {
          method: request.method,
          path: new URL(request.url).pathname,
          route,
          status,
          duration_ms: Math.round(seconds * 100_000) / 100,
          request_id: info.id,
          trace_id: traceIdOf(info.traceparent),
        });
      }
    })
    .get("/healthz", () => ({ status: "ok" }), { detail: { tags: ["health"], summary: "Liveness: the process is up" } })
    .get(
      "/readyz",
      async ({ request }) => {
        const { ready, checks } = await opts.readiness();
        if (ready) return { status: "ready", checks };
        const reasons = Object.entries(checks).filter(([, v]) => v !== "ok").map(([k, v]) => `${k}: ${v}`);
        return errorResponse(503, "not_ready", reasons.join("; "), requestInfo(request).id, { checks });
      },
      { detail: { tags: ["health"], summary: "Readiness: backends reachable and migrations applied" } },
    )
    .get(
      "/metrics",
      () => new Response(metrics.registry.render(), { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } }),
      { detail: { tags: ["health"], summary: "Prometheus metrics" } },
    );
}
