/** The access-log line of one request, the same whichever path answered it (framework, fast path, probes). */
import { traceIdOf } from "../context";
import type { Logger } from "../logging";

export interface AnsweredRequest {
  method: string;
  path: string;
  route: string | undefined;
  status: number;
  seconds: number;
  requestId: string;
  traceparent?: string;
}

/** True when requests are logged (info and debug): hot paths check it before building the line's fields. */
export const logsRequests = (log: Logger) => log.level === "debug" || log.level === "info";

export function logRequest(log: Logger, r: AnsweredRequest) {
  if (!logsRequests(log)) return;
  log.info("request", {
    method: r.method,
    path: r.path,
    route: r.route,
    status: r.status,
    duration_ms: Math.round(r.seconds * 100_000) / 100,
    request_id: r.requestId,
    trace_id: traceIdOf(r.traceparent),
  });
}
