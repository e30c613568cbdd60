/**
 * The HTTP platform every process shares: request ids, the error shape for every failure
 * (malformed JSON, schema, unknown route, 413, 415, internal), one JSON access-log line per
 * request, Prometheus metrics, and /healthz, /readyz, /metrics. Only these cross-cutting
 * concerns are global; controllers are separate Elysia instances mounted beside them.
 */
import type { ValueError } from "@sinclair/typebox/errors";
import { Elysia, t } from "elysia";
import { currentContext, requestIdOf } from "../context";
import { AppError } from "../errors";
import type { Logger } from "../logging";
import type { Metrics } from "../metrics";
import { outageOf } from "../outage";
import { NO_TRACING, type SpanHandle, type Tracing } from "../tracing";
import { logRequest, logsRequests } from "./access-log";
import { paramsError, validationError, type InputContract } from "./contract";
import { appErrorResponse, errorResponse } from "./errors";
import { duplicateKeyIn } from "./json-keys";
import { ErrorResponse } from "./models";
import { findUnstorable } from "../storable";

export interface HttpPlatformOptions {
  log: Logger;
  metrics: Metrics;
  maxBodyBytes: number;
  /** A server span per API request (not for health and metrics probes). */
  tracing?: Tracing;
  /** Null when ready, otherwise the reasons (for /readyz). */
  readiness: () => Promise<{ ready: boolean; checks: Record<string, string> }>;
  /** The routes' input contract (unknown fields and parameters, id shapes); see contract.ts. */
  contract?: InputContract;
}

interface RequestInfo {
  id: string;
  start: number;
  traceparent?: string;
  span?: SpanHandle;
}

const BODY_METHODS = new Set(["POST", "PUT", "PATCH"]);
/**
 * Every JSON body of the API is an object that PostgreSQL can store as it is. Checked after
 * Elysia's own JSON parser (a custom parser would hide the bodies from the OpenAPI document).
 */
function checkJsonBody(body: unknown, request: Request) {
  // A declared JSON body that is empty, `null` or unparsable reaches here as nothing (Elysia
  // does not fail optional bodies on a parse error): refuse it rather than act on no input.
  const refused = bodyProblems.get(request);
  if (refused) throw refused;
  if (body === undefined || body === null) throw new AppError(400, "invalid_json", "The body is not a JSON object (empty, null or not valid JSON).");
  if (typeof body !== "object" || Array.isArray(body)) throw new AppError(400, "invalid_body", "The body must be a JSON object.");
  const problem = findUnstorable(body);
  if (problem) throw new AppError(400, "invalid_body", `The body contains ${problem}.`);
}
const requests = new WeakMap<Request, RequestInfo>();
/** Why the JSON reader refused a body (Elysia swallows parse errors of optional bodies). */
const bodyProblems = new WeakMap<Request, AppError>();

/**
 * Elysia parses JSON with `request.json()`; this request's reader also refuses duplicate keys
 * (JSON.parse would keep the last one silently). Same cost as request.json() unless the body
 * has more colons than keys, which is when a scan for duplicates runs (see json-keys.ts).
 */
function readJsonStrictly(request: Request) {
  const json = async () => {
    const text = await request.text();
    const value = JSON.parse(text);
    const duplicate = duplicateKeyIn(text, value);
    if (duplicate !== null) {
      const problem = new AppError(400, "duplicate_key", `The body has the key '${duplicate.length > 64 ? `${duplicate.slice(0, 64)}…` : duplicate}' twice in one object; send each key once.`);
      bodyProblems.set(request, problem);
      throw problem;
    }
    return value;
  };
  Object.defineProperty(request, "json", { value: json, configurable: true });
}

export function requestInfo(request: Request): RequestInfo {
  let info = requests.get(request);
  if (!info) {
    const ctx = currentContext();
    const id = ctx?.requestId ?? requestIdOf(request);
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

/** The request's server span; children (RPC, outbox rows, runs) see it as the context's traceparent. */
function startRequestSpan(tracing: Tracing, request: Request, info: RequestInfo) {
  const url = new URL(request.url);
  if (!url.pathname.startsWith("/v1")) return;
  info.span = tracing.start(`${request.method} ${url.pathname}`, {
    parent: info.traceparent ?? null,
    kind: "server",
    attributes: { "http.request.method": request.method, "url.path": url.pathname, "agentos.request_id": info.id },
  });
  info.traceparent = info.span.traceparent;
  const ctx = currentContext();
  if (ctx) ctx.traceparent = info.span.traceparent;
}

/** JSON is UTF-8 (RFC 8259 §8.1): a body declared in another charset would be misread. */
function foreignCharset(contentType: string): string | null {
  const m = /;\s*charset\s*=\s*("?)([^";\s]*)\1/i.exec(contentType);
  if (!m) return null;
  const charset = m[2].toLowerCase();
  return charset === "utf-8" || charset === "utf8" ? null : m[2] || "(empty)";
}

interface ElysiaValidationError {
  type?: string;
  value?: unknown;
  validator?: { Errors?: (value: unknown) => Iterable<ValueError> };
}

/**
 * Elysia's validation failures (query types, headers, path parameters; bodies of routes
 * outside the contract) described from the validator's own errors, never from Elysia's
 * message (which formats the value). A malformed id in the path is a 404 (SPEC §4).
 */
function validationResponse(error: ElysiaValidationError, request: Request, requestId: string): Response {
  const errors: ValueError[] = [];
  try {
    for (const e of error.validator?.Errors?.(error.value) ?? []) if (errors.push(e) >= 200) break;
  } catch {
    /* no details rather than no answer */
  }
  if (error.type === "params") return appErrorResponse(paramsError(errors, request.url), requestId);
  return appErrorResponse(validationError(errors, error.type ?? "body"), requestId);
}

export function httpPlatform(opts: HttpPlatformOptions) {
  const { log, metrics, maxBodyBytes } = opts;
  const tracing = opts.tracing ?? NO_TRACING;

  function renderError(code: string | number, error: unknown, request: Request): Response {
    const info = requestInfo(request);
    if (error instanceof AppError) return appErrorResponse(error, info.id);
    // A backend outage reaches here wrapped by the ORM: 503 backend_unavailable, not a 500.
    const outage = outageOf(error);
    if (outage) return appErrorResponse(outage, info.id);
    switch (code) {
      case "VALIDATION":
        if ((error as ElysiaValidationError).type !== "response") return validationResponse(error as ElysiaValidationError, request, info.id);
        return internalError(error, request, info.id); // our reply breaks its own schema
      case "PARSE":
        if ((error as Error).cause instanceof AppError) return appErrorResponse((error as Error).cause as AppError, info.id);
        return errorResponse(400, "invalid_json", "The body is not valid JSON.", info.id);
      case "NOT_FOUND": {
        const pathname = new URL(request.url).pathname;
        // A known path with another method: 405 with the methods it does answer.
        const allowed = opts.contract?.allowedMethods(pathname) ?? [];
        if (allowed.length && !allowed.includes(request.method)) {
          return errorResponse(405, "method_not_allowed", `${request.method} is not allowed on ${pathname}; use ${allowed.join(", ")}.`, info.id, { allowed }, { allow: allowed.join(", ") });
        }
        return errorResponse(404, "route_not_found", `No route ${request.method} ${pathname}. See /swagger for the API.`, info.id);
      }
      case "INVALID_COOKIE_SIGNATURE":
        return errorResponse(400, "invalid_cookie", "A cookie has an invalid signature.", info.id);
    }
    // Elysia's ValidationError formats the offending value into its message: a value it cannot
    // format (an object with a `toString` key) throws from its constructor. That is bad input.
    if (error instanceof TypeError && /ValidationError|mapValueError/.test(error.stack ?? "")) {
      return errorResponse(400, "validation_failed", "The request does not match the schema.", info.id);
    }
    const status = (error as { status?: number })?.status;
    if (typeof status === "number" && status >= 400 && status < 500) {
      return errorResponse(status, status === 413 ? "payload_too_large" : "bad_request", (error as Error).message || "Bad request.", info.id);
    }
    return internalError(error, request, info.id);
  }

  function internalError(error: unknown, request: Request, requestId: string): Response {
    log.error("unhandled error", { request_id: requestId, path: new URL(request.url).pathname, error: error as Error, stack: (error as Error)?.stack });
    return errorResponse(500, "internal_error", "Something went wrong on our side; the request id identifies it in our logs.", requestId);
  }
  return new Elysia({ name: "http-platform" })
    .onRequest(({ request, set }) => {
      const info = requestInfo(request);
      set.headers["x-request-id"] = info.id;
      if (tracing.enabled) startRequestSpan(tracing, request, info);
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
      const contentType = request.headers.get("content-type");
      if (hasBody && !isJson(contentType)) {
        set.status = 415;
        return errorResponse(415, "unsupported_media_type", "Send the body as JSON with `Content-Type: application/json`.", info.id);
      }
      const charset = contentType && isJson(contentType) ? foreignCharset(contentType) : null;
      if (charset) {
        set.status = 415;
        return errorResponse(415, "unsupported_media_type", `JSON bodies are UTF-8; the charset '${charset.slice(0, 40)}' is not accepted. Send \`Content-Type: application/json\` (or charset=utf-8).`, info.id);
      }
      if (hasBody) readJsonStrictly(request);
    })
    .onTransform({ as: "global" }, ({ request, body, route, params }) => {
      const jsonBody = BODY_METHODS.has(request.method) && isJson(request.headers.get("content-type"));
      if (jsonBody) checkJsonBody(body, request);
      opts.contract?.check(request.method, route, request.url, params, body, jsonBody);
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
      if (info.span) {
        info.span.rename(`${request.method} ${route || "unmatched"}`);
        info.span.set({ "http.route": route || "unmatched", "http.response.status_code": status });
        if (status >= 500) info.span.fail(new Error(`HTTP ${status}`));
        info.span.end();
      }
      if (logsRequests(log)) {
        logRequest(log, { method: request.method, path: new URL(request.url).pathname, route, status, seconds, requestId: info.id, traceparent: info.traceparent });
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
      {
        detail: {
          tags: ["health"],
          summary: "Prometheus metrics (text exposition format)",
          security: [],
          responses: { 200: { description: "The metrics", content: { "text/plain": { schema: { type: "string" } } } } },
        },
      },
    );
}
