/**
 * The fast path: a hot read answered before the framework, synchronously, when everything it
 * needs is already in this process's memory (a verified token, a local rate-limit allowance,
 * an edge-cache entry). A route that cannot answer that way returns undefined and the request
 * takes the ordinary path, which defines the behaviour: the fast path must give the same
 * status, headers and body (fast-path.test.ts compares them), and the platform adds here what
 * its hooks add there (request id, CORS, metrics, the access log).
 *
 * Why: an authenticated cached read spent ~3× the CPU of Bun.serve answering the same bytes,
 * in promise turns, per-request hooks and header merging; the read is the API's hottest call.
 */
import { requestIdOf } from "../context";
import { logRequest, logsRequests } from "./access-log";
import type { Logger } from "../logging";
import type { Metrics } from "../metrics";
import type { Cors } from "./cors";

/** What a fast route answers with: the platform adds the request id, CORS headers and metrics. */
export interface FastAnswer {
  body: string;
  headers: Record<string, string>;
}

export interface FastRoute {
  /** The framework's route pattern (`/v1/agents/:id`): the `route` label of the metrics and logs. */
  route: string;
  /** Only GETs without a query string take the fast path (a query goes through the input contract). */
  method: "GET";
  /** The path parameter when `pathname` is this route's, else undefined. */
  match(pathname: string): string | undefined;
  /** The answer from memory, or undefined to let the ordinary path answer. Never throws for bad input. */
  answer(request: Request, param: string): FastAnswer | undefined;
}

export function createFastPath(opts: { routes: FastRoute[]; cors: Cors; metrics: Metrics; log: Logger }) {
  const { routes, cors, metrics, log } = opts;
  const accessLog = logsRequests(log);
  // Each route answers only 200s: its two series are resolved once.
  const recorders = routes.map((route) => {
    const labels = { route: route.route, method: "GET", status: 200 };
    return { duration: metrics.httpDuration.bind(labels), count: metrics.httpRequests.bind(labels), fast: metrics.httpFastAnswers.bind({ route: route.route }) };
  });
  return function fastPath(request: Request): Response | undefined {
    if (request.method !== "GET" || routes.length === 0) return undefined;
    const start = performance.now();
    const url = request.url;
    const pathStart = url.indexOf("/", url.indexOf("//") + 2);
    if (pathStart < 0 || url.includes("?", pathStart)) return undefined;
    const pathname = url.slice(pathStart);
    for (let i = 0; i < routes.length; i++) {
      const route = routes[i];
      const param = route.match(pathname);
      if (param === undefined) continue;
      const answer = route.answer(request, param);
      if (!answer) return undefined;
      const requestId = requestIdOf(request);
      const corsHeaders = cors.headersFor(request.headers.get("origin"));
      const headers = corsHeaders ? { ...corsHeaders, ...answer.headers, "x-request-id": requestId } : { ...answer.headers, "x-request-id": requestId };
      const response = new Response(answer.body, { headers });
      const seconds = (performance.now() - start) / 1000;
      recorders[i].duration(seconds);
      recorders[i].count();
      recorders[i].fast();
      if (accessLog) logRequest(log, { method: "GET", path: pathname, route: route.route, status: 200, seconds, requestId, traceparent: request.headers.get("traceparent") ?? undefined });
      return response;
    }
    return undefined;
  };
}

export type FastPath = ReturnType<typeof createFastPath>;
