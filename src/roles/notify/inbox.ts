/**
 * What reaches people: which events become webhook deliveries (per the webhook's event-type
 * filter) and which become inbox entries (runs that finished or failed, quota at 80/100 %).
 */
import type { DomainEvent } from "../../platform/outbox";

/** `[]` or `["*"]` = every event; `run.*` = every type under `run.`; else an exact type. */
export function webhookWants(eventTypes: string[], type: string): boolean {
  if (eventTypes.length === 0) return true;
  return eventTypes.some((pattern) => pattern === "*" || pattern === type || (pattern.endsWith(".*") && type.startsWith(pattern.slice(0, -1))));
}

export function inboxEntryFor(event: DomainEvent): { title: string; body: string; data: Record<string, unknown> } | null {
  const p = (event.payload ?? {}) as Record<string, unknown>;
  const runId = typeof p.run_id === "string" ? p.run_id : typeof p.id === "string" ? p.id : null;
  const data: Record<string, unknown> = { event_id: event.id, ...pick(p, ["run_id", "agent_id", "thread_id", "metric", "threshold", "limit", "used", "plan", "period", "resets_at", "error"]) };
  if (runId) data.run_id = runId;
  switch (event.type) {
    case "run.completed":
      return { title: "Run completed", body: `Run ${runId ?? ""} completed.`.replace("  ", " "), data };
    case "run.failed": {
      const err = p.error as { message?: unknown; code?: unknown } | string | undefined;
      const reason = typeof err === "string" ? err : typeof err?.message === "string" ? err.message : typeof err?.code === "string" ? err.code : null;
      return { title: "Run failed", body: `Run ${runId ?? ""} failed${reason ? `: ${reason}` : "."}`.replace("  ", " "), data };
    }
    case "billing.quota_warning":
      return { title: `${p.threshold ?? 80}% of the monthly ${p.metric ?? "usage"} quota used`, body: `${p.used} of ${p.limit} ${p.metric} used this month on the ${p.plan} plan.`, data };
    case "billing.quota_exceeded":
      return { title: `Monthly ${p.metric ?? "usage"} quota reached`, body: `${p.used} of ${p.limit} ${p.metric} used on the ${p.plan} plan; new runs are refused until ${p.resets_at} or an upgrade.`, data };
    default:
      return null;
  }
}

function pick(o: Record<string, unknown>, keys: string[]) {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
