/**
 * The usage ledger: consumes domain events from the durable EVENTS stream (durable consumer
 * "billing") and writes exactly one usage row per event id — the unique index on
 * usage_records.event_id decides, so a redelivered or re-published event records nothing
 * twice. The same statement adds the row to the organization's month counter (usage_months),
 * which quota checks read instead of summing the month; quota alerts fire once per threshold.
 */
import { and, eq, sql } from "drizzle-orm";
import { organizations, quotaAlerts, usageMonths } from "../../../schema";
import type { Bus, Unsubscribe } from "../../platform/bus";
import type { Db, DbOrTx } from "../../platform/db";
import { rowsOf } from "../../platform/db/rows";
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

/** A stored plan name, or free when there is none (no organization) or it is not a plan of this version. */
const asPlan = (name: string | null | undefined): PlanName => ((PLAN_NAMES as readonly string[]).includes(name ?? "") ? (name as PlanName) : "free");

export async function planOf(db: DbOrTx, orgId: string): Promise<PlanName> {
  const [org] = await db.select({ plan: organizations.plan }).from(organizations).where(eq(organizations.id, orgId));
  return asPlan(org?.plan);
}

/** The plan and the month's usage in one statement (the quota check of every run create). */
export async function planAndMonthlyUsage(db: DbOrTx, orgId: string, at = new Date()) {
  const period = monthOf(at).period;
  const month = (column: typeof usageMonths.runs | typeof usageMonths.tokens) => sql<string | number | null>`(select ${column} from ${usageMonths} where ${usageMonths.orgId} = ${orgId} and ${usageMonths.period} = ${period})`;
  const [row] = await db.select({ plan: organizations.plan, runs: month(usageMonths.runs), tokens: month(usageMonths.tokens) }).from(organizations).where(eq(organizations.id, orgId));
  return { plan: asPlan(row?.plan), used: { runs: Number(row?.runs ?? 0), tokens: Number(row?.tokens ?? 0) } };
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

export class UsageLedger {
  /** Alerts known to be claimed (`org period metric threshold`): later usage of the month skips their claim. */
  private claimedAlerts = new Set<string>();

  constructor(private db: Db, private settings: BillingSettings, private log: Logger, private database: { whenAvailable(): Promise<void> } = { whenAvailable: async () => {} }) {}

  /**
   * Records the event's usage once; returns false when it was already recorded (or is not
   * metered). One statement: the usage row, its month's counter (only when the row is new)
   * and the organization's plan — atomic without a transaction (BEGIN, three statements and
   * COMMIT before: five round trips per metered event). A quota alert is claimed afterwards
   * when the month's totals are at a threshold; a crash in between leaves it to the next usage
   * row of the month, which finds the totals still at the threshold (claims are idempotent).
   */
  async record(event: DomainEvent): Promise<boolean> {
    const usage = usageOf(event);
    if (!usage) return false;
    const { key, ...row } = usage;
    const occurredAt = new Date(event.created_at);
    if (Number.isNaN(occurredAt.getTime())) return false;
    // A row that adds neither a run nor tokens (a tool call) changes no counter and cannot cross a threshold.
    const runs = row.kind === "run" ? 1 : 0;
    const counts = runs > 0 || row.totalTokens > 0;
    const [result] = rowsOf<{ inserted: boolean; runs: string | number | null; tokens: string | number | null; plan: string | null }>(
      await this.db.execute(sql`
        with recorded as (
          insert into usage_records (id, org_id, event_id, kind, agent_id, run_id, model, prompt_tokens, completion_tokens, total_tokens, occurred_at)
          values (${newId("use")}, ${event.org_id}, ${key}, ${row.kind}, ${row.agentId}, ${row.runId}, ${row.model}, ${row.promptTokens}, ${row.completionTokens}, ${row.totalTokens}, ${occurredAt.toISOString()}::timestamptz)
          on conflict (event_id) do nothing
          returning org_id
        ), counted as (
          insert into usage_months (org_id, period, runs, tokens)
          select org_id, ${monthOf(occurredAt).period}, ${runs}::bigint, ${row.totalTokens}::bigint from recorded where ${counts}::boolean
          on conflict (org_id, period) do update set runs = usage_months.runs + excluded.runs, tokens = usage_months.tokens + excluded.tokens
          returning runs, tokens
        )
        select exists (select 1 from recorded) as inserted, (select runs from counted) as runs, (select tokens from counted) as tokens,
          (select plan from organizations where id = ${event.org_id}) as plan`),
    );
    if (!result?.inserted) return false;
    if (result.runs !== null && result.tokens !== null) {
      await this.alertThresholds(event.org_id, occurredAt, { runs: Number(result.runs), tokens: Number(result.tokens) }, asPlan(result.plan));
    }
    return true;
  }

  /** Fires billing.quota_warning (80 %) / billing.quota_exceeded (100 %) once per org, month, metric and threshold. */
  private async alertThresholds(orgId: string, at: Date, used: { runs: number; tokens: number }, plan: PlanName) {
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
        const known = `${orgId} ${period} ${metric} ${threshold}`;
        if (this.claimedAlerts.has(known)) continue;
        // The claim and its event commit together: the event is emitted once, by the claimer.
        await this.db.transaction(async (tx) => {
          const claimed = await tx.insert(quotaAlerts).values({ orgId, period, metric, threshold }).onConflictDoNothing().returning({ orgId: quotaAlerts.orgId });
          if (claimed.length === 0) return;
          await emitEvent(tx, {
            orgId,
            type: threshold >= 100 ? "billing.quota_exceeded" : "billing.quota_warning",
            payload: { metric, threshold, limit, used: value, plan, period, resets_at: end.toISOString() },
          });
        });
        if (this.claimedAlerts.size >= 10_000) this.claimedAlerts.clear(); // bounded: a cleared entry costs one idempotent claim
        this.claimedAlerts.add(known);
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
