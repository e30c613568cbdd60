/**
 * The HTTP platform every process shares: request ids, the error shape for every failure
 * (malformed JSON, schema, unknown route, 413, 415, internal), one JSON access-log line per
 * request, Prometheus metrics, and /healthz, /readyz, /metrics. Only these cross-cutting
 * concerns are global; controllers are separate Elysia instances mounted beside them.
 */
import { Elysia, t } from "elysia";
import { currentContext, traceIdOf } from "../context";
import { AppError } from "../errors";
import { newId } from "../ids";
import type { Logger } from "../logging";
import type { Metrics } from "../metrics";
import { outageOf } from "../outage";
import { appErrorResponse, errorResponse, validationDetails } from "./errors";
import { ErrorResponse } from "./models";

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
/** Deeper JSON is refused: no API body nests this far, and deep values stall jsonb handling. */
export const MAX_JSON_DEPTH = 64;

/**
 * What PostgreSQL cannot store or should not be asked to: NUL characters and lone
 * surrogates in strings or keys (text and jsonb reject them), and nesting past MAX_JSON_DEPTH.
 */
export function findUnstorable(value: unknown, depth = 0): string | null {
  if (typeof value === "string") return value.includes("\u0000") ? "a NUL character (\\u0000)" : value.isWellFormed() ? null : "an unpaired UTF-16 surrogate";
  if (value === null || typeof value !== "object") return null;
  if (depth >= MAX_JSON_DEPTH) return `nesting deeper than ${MAX_JSON_DEPTH} levels`;
  if (Array.isArray(value)) {
    for (const v of value) {
      const problem = findUnstorable(v, depth + 1);
      if (problem) return problem;
    }
    return null;
  }
  for (const [k, v] of Object.entries(value)) {
    const problem = findUnstorable(k) ?? findUnstorable(v, depth + 1);
    if (problem) return problem;
  }
  return null;
}

/**
 * Every JSON body of the API is an object that PostgreSQL can store as it is. Checked after
 * Elysia's own JSON parser (a custom parser would hide the bodies from the OpenAPI document).
 */
function checkJsonBody(body: unknown) {
  // A declared JSON body that is empty, `null` or unparsable reaches here as nothing (Elysia
  // does not fail optional bodies on a parse error): refuse it rather than act on no input.
  if (body === undefined || body === null) throw new AppError(400, "invalid_json", "The body is not a JSON object (empty, null or not valid JSON).");
  if (typeof body !== "object" || Array.isArray(body)) throw new AppError(400, "invalid_body", "The body must be a JSON object.");
  const problem = findUnstorable(body);
  if (problem) throw new AppError(400, "invalid_body", `The body contains ${problem}.`);
}
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
    // A backend outage reaches here wrapped by the ORM: 503 backend_unavailable, not a 500.
    const outage = outageOf(error);
    if (outage) return appErrorResponse(outage, info.id);
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
      if (/%00/.test(request.url)) {
        set.status = 400;
        return errorResponse(400, "invalid_request", "The URL contains a NUL character (%00).", info.id);
      }
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
    .onTransform({ as: "global" }, ({ request, body }) => {
      if (BODY_METHODS.has(request.method) && isJson(request.headers.get("content-type"))) checkJsonBody(body);
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
    .get("/healthz", () => ({ status: "ok" as const }), {
      response: { 200: t.Object({ status: t.Literal("ok") }) },
      detail: { tags: ["health"], summary: "Liveness: the process is up", security: [] },
    })
    .get(
      "/readyz",
      async ({ request }) => {
        const { ready, checks } = await opts.readiness();
        if (ready) return { status: "ready" as const, checks };
        const reasons = Object.entries(checks).filter(([, v]) => v !== "ok").map(([k, v]) => `${k}: ${v}`);
        // A Response (not a typed body): the 503 of a health probe bypasses response validation.
        return errorResponse(503, "not_ready", reasons.join("; "), requestInfo(request).id, { checks }) as never;
      },
      {
        response: { 200: t.Object({ status: t.Literal("ready"), checks: t.Record(t.String(), t.String()) }), 503: ErrorResponse },
        detail: { tags: ["health"], summary: "Readiness: backends reachable and migrations applied", security: [] },
      },
    )
    .get(
      "/metrics",
      () => new Response(metrics.registry.render(), { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } }),
      { detail: { tags: ["health"], summary: "Prometheus metrics (text exposition format)", security: [] } },
    );
}
