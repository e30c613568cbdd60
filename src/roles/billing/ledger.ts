/**
 * The usage ledger: consumes domain events from the durable EVENTS stream (durable consumer
 * "billing") and writes exactly one usage row per event id — the unique index on
 * usage_records.event_id decides, in the same transaction that fires quota alerts, so a
 * redelivered or re-published event records nothing twice and alerts fire once. The same
 * transaction adds the row to the organization's month counter (usage_months), which quota
 * checks read instead of summing the month.
 */
import { and, eq, sql } from "drizzle-orm";
import { organizations, quotaAlerts, usageMonths, usageRecords } from "../../../schema";
import type { Bus, Unsubscribe } from "../../platform/bus";
import type { Db, DbOrTx } from "../../platform/db";
import { newId } from "../../platform/ids";
import type { Logger } from "../../platform/logging";
import { consumeDomainEvents } from "../../platform/event-consumer";
import { emitEvent, type DomainEvent } from "../../platform/outbox";
import { monthOf, PLAN_NAMES, type BillingSettings, type PlanName } from "./plans";

export const QUOTA_THRESHOLDS = [80, 100] as const;
export const METERED_EVENT_TYPES = ["run.created", "step.completed", "tool_call.completed"] as const;
type Metric = "runs" | "tokens";

interface UsageRow {
  kind: "run" | "model_call" | "tool_call";
  agentId: string | null;
  runId: string | null;
  model: string | null;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

const str = (v: unknown) => (typeof v === "string" && v.length > 0 ? v : null);
const count = (v: unknown) => (typeof v === "number" && Number.isFinite(v) && v > 0 ? Math.floor(v) : 0);

/**
 * The metered facts of an event, or null when it is not metered:
 * - `run.created` counts a run;
 * - `step.completed` with kind model_call | summarize | tool_call carries model, agent, run and token
 *   usage (`payload.usage.{prompt,completion,total}_tokens`, or flat on the payload);
 * - `tool_call.completed` counts a tool call.
 * `key` is what the unique index dedupes on: the event id, or — when the event names its
 * step — the step, so a tool call announced by both step.completed and tool_call.completed
 * is still metered once.
 */
export function usageOf(event: DomainEvent): (UsageRow & { key: string }) | null {
  const p = (event.payload ?? {}) as Record<string, unknown>;
  const agentId = str(p.agent_id);
  const runId = str(p.run_id);
  const stepKey = (kind: string) => (str(p.step_id) ? `${kind}:${p.step_id}` : event.id);
  if (event.type === "run.created") {
    return { key: event.id, kind: "run", agentId, runId: runId ?? str(p.id), model: str(p.model), promptTokens: 0, completionTokens: 0, totalTokens: 0 };
  }
  if (event.type === "tool_call.completed") {
    return { key: stepKey("tool_call"), kind: "tool_call", agentId, runId, model: null, promptTokens: 0, completionTokens: 0, totalTokens: 0 };
  }
  if (event.type !== "step.completed") return null;
  const kindOf = p.kind ?? p.type;
  // A summarize step (context compaction) is a model call like any other on the bill.
  const kind = kindOf === "tool_call" ? "tool_call" : kindOf === "model_call" || kindOf === "summarize" ? "model_call" : null;
  if (!kind) return null;
  const u = (p.usage && typeof p.usage === "object" ? p.usage : p) as Record<string, unknown>;
  const promptTokens = count(u.prompt_tokens);
  const completionTokens = count(u.completion_tokens);
  const totalTokens = count(u.total_tokens) || promptTokens + completionTokens;
  return { key: stepKey(kind), kind, agentId, runId, model: kind === "model_call" ? str(p.model) : null, promptTokens, completionTokens, totalTokens };
}

export async function planOf(db: DbOrTx, orgId: string): Promise<PlanName> {
  const [org] = await db.select({ plan: organizations.plan }).from(organizations).where(eq(organizations.id, orgId));
  return org && (PLAN_NAMES as readonly string[]).includes(org.plan) ? (org.plan as PlanName) : "free";
}

/**
 * Runs and tokens recorded for the organization in the month containing `at`: one row of the
 * usage_months counter (kept with every usage row), not a sum over the month's usage_records.
 */
export async function monthlyUsage(db: DbOrTx, orgId: string, at = new Date()) {
  const [row] = await db
    .select({ runs: usageMonths.runs, tokens: usageMonths.tokens })
    .from(usageMonths)
    .where(and(eq(usageMonths.orgId, orgId), eq(usageMonths.period, monthOf(at).period)));
  return { runs: Number(row?.runs ?? 0), tokens: Number(row?.tokens ?? 0) };
}

/** Adds a usage row's run and tokens to its month's counter; returns the month's totals after. */
async function countUsage(tx: DbOrTx, orgId: string, at: Date, runs: number, tokens: number) {
  const [row] = await tx
    .insert(usageMonths)
    .values({ orgId, period: monthOf(at).period, runs, tokens })
    .onConflictDoUpdate({
      target: [usageMonths.orgId, usageMonths.period],
      set: { runs: sql`${usageMonths.runs} + excluded.runs`, tokens: sql`${usageMonths.tokens} + excluded.tokens` },
    })
    .returning({ runs: usageMonths.runs, tokens: usageMonths.tokens });
  return { runs: Number(row.runs), tokens: Number(row.tokens) };
}

export class UsageLedger {
  constructor(private db: Db, private settings: BillingSettings, private log: Logger, private database: { whenAvailable(): Promise<void> } = { whenAvailable: async () => {} }) {}

  /** Records the event's usage once; returns false when it was already recorded (or is not metered). */
  async record(event: DomainEvent): Promise<boolean> {
    const usage = usageOf(event);
    if (!usage) return false;
    const { key, ...row } = usage;
    const occurredAt = new Date(event.created_at);
    if (Number.isNaN(occurredAt.getTime())) return false;
    return this.db.transaction(async (tx) => {
      const inserted = await tx
        .insert(usageRecords)
        .values({ id: newId("use"), orgId: event.org_id, eventId: key, occurredAt, ...row })
        .onConflictDoNothing({ target: usageRecords.eventId })
        .returning({ id: usageRecords.id });
      if (inserted.length === 0) return false;
      // A row that adds neither a run nor tokens (a tool call) changes no counter and cannot cross a threshold.
      const runs = row.kind === "run" ? 1 : 0;
      if (runs === 0 && row.totalTokens === 0) return true;
      const used = await countUsage(tx, event.org_id, occurredAt, runs, row.totalTokens);
      await this.alertThresholds(tx, event.org_id, occurredAt, used);
      return true;
    });
  }

  /** Fires billing.quota_warning (80 %) / billing.quota_exceeded (100 %) once per org, month, metric and threshold. */
  private async alertThresholds(tx: DbOrTx, orgId: string, at: Date, used: { runs: number; tokens: number }) {
    const plan = await planOf(tx, orgId);
    const limits = this.settings.plans[plan];
    const { period, end } = monthOf(at);
    const metrics: [Metric, number, number][] = [
      ["runs", used.runs, limits.runs_per_month],
      ["tokens", used.tokens, limits.tokens_per_month],
    ];
    for (const [metric, value, limit] of metrics) {
      if (limit <= 0) continue;
      for (const threshold of QUOTA_THRESHOLDS) {
        if (value * 100 < limit * threshold) continue;
        const claimed = await tx.insert(quotaAlerts).values({ orgId, period, metric, threshold }).onConflictDoNothing().returning({ orgId: quotaAlerts.orgId });
        if (claimed.length === 0) continue;
        await emitEvent(tx, {
          orgId,
          type: threshold >= 100 ? "billing.quota_exceeded" : "billing.quota_warning",
          payload: { metric, threshold, limit, used: value, plan, period, resets_at: end.toISOString() },
        });
      }
    }
  }

  /** Starts the durable consumer "billing" on the EVENTS stream. */
  start(bus: Bus): Promise<Unsubscribe> {
    return consumeDomainEvents(
      { bus, db: this.db, log: this.log, database: this.database },
      { durable: "billing", replayTypes: METERED_EVENT_TYPES, handle: (event) => this.record(event), retryWarning: "usage ledger: recording failed; will retry" },
    );
  }
}
