/**
 * CORS for browsers calling the API with bearer tokens (never cookies: credentials stay off).
 * The header sets are computed once per allowed origin, so an actual request costs one Map
 * lookup; a request without `Origin` (every non-browser client) gets no CORS headers at all.
 * The same headers serve the framework's path and the fast path (fast-path.ts).
 */
import { Elysia } from "elysia";

/** What a browser script may read from a response besides the CORS-safelisted headers. */
export const EXPOSED_HEADERS = "x-request-id, x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset, retry-after";
/** What a preflight allows when the browser does not say (it always does: Access-Control-Request-Headers). */
const DEFAULT_ALLOWED_HEADERS = "authorization, content-type, idempotency-key, last-event-id, traceparent, x-request-id";
const ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
const PREFLIGHT_MAX_AGE_S = 600;
const MAX_CACHED_ORIGINS = 1_000;

export interface Cors {
  /** The headers of an actual (non-preflight) response to a request with this Origin; undefined when none apply. */
  headersFor(origin: string | null): Record<string, string> | undefined;
  /** The 204 of a preflight, or undefined when the request is not one. */
  preflight(request: Request): Response | undefined;
  plugin: Elysia<any, any, any, any, any, any, any>;
}

/** `origins`: `*` (any origin, reflected) or the exact origins allowed. */
export function createCors(origins: string[]): Cors {
  const anyOrigin = origins.includes("*");
  const allowed = new Set(origins);
  const byOrigin = new Map<string, Record<string, string>>();

  function headersFor(origin: string | null): Record<string, string> | undefined {
    if (!origin) return undefined;
    let headers = byOrigin.get(origin);
    if (headers) return headers;
    if (!anyOrigin && !allowed.has(origin)) return undefined;
    // The origin is reflected (not `*`) so a list and `*` answer alike; Vary keeps shared caches honest.
    headers = { "access-control-allow-origin": origin, "access-control-expose-headers": EXPOSED_HEADERS, vary: "Origin" };
    if (byOrigin.size >= MAX_CACHED_ORIGINS) byOrigin.clear();
    byOrigin.set(origin, headers);
    return headers;
  }

  function preflight(request: Request): Response | undefined {
    if (request.method !== "OPTIONS") return undefined;
    const method = request.headers.get("access-control-request-method");
    if (!method) return undefined;
    const base = headersFor(request.headers.get("origin"));
    // Not an allowed origin: no CORS headers, so the browser refuses the call.
    if (!base) return new Response(null, { status: 204, headers: { vary: "Origin" } });
    return new Response(null, {
      status: 204,
      headers: {
        ...base,
        "access-control-allow-methods": ALLOWED_METHODS,
        "access-control-allow-headers": request.headers.get("access-control-request-headers") || DEFAULT_ALLOWED_HEADERS,
        "access-control-max-age": String(PREFLIGHT_MAX_AGE_S),
        vary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
      },
    });
  }

  const plugin = new Elysia({ name: "cors", seed: origins.join(",") }).onRequest(({ request, set }) => {
    const answer = preflight(request);
    if (answer) return answer;
    const headers = headersFor(request.headers.get("origin"));
    if (headers) Object.assign(set.headers, headers);
  });
  return { headersFor, preflight, plugin };
}
