/**
 * The billing role's service: plan limits and quota checks for other roles (BillingContract),
 * plus the HTTP-facing plan, usage and invoice queries. Usage comes from the ledger
 * (usage_records), which the UsageLedger fills from domain events.
 */
import { and, eq, gte, inArray, lt, sql } from "drizzle-orm";
import { organizations, usageRecords } from "../../../schema";
import type { Db } from "../../platform/db";
import type { PageOf } from "../../platform/db/pagination";
import { AppError, badRequest, forbidden } from "../../platform/errors";
import type { Principal } from "../../platform/principal";
import type { BillingContract, PlanLimits } from "./contract";
import { monthlyUsage, planAndMonthlyUsage, planOf } from "./ledger";
import type { InvoiceLineOut, InvoiceOut, PlanOut, UsageOut, UsageRowOut } from "./model";
import { costMicroCents, monthFromPeriod, monthOf, PLAN_NAMES, priceOf, toCents, type BillingSettings, type PlanName } from "./plans";

const DAY_MS = 24 * 3600_000;
const MAX_USAGE_RANGE_DAYS = 366;

function parseInstant(value: string, field: string): Date {
  const d = /^\d{4}-\d{2}-\d{2}$/.test(value) ? new Date(`${value}T00:00:00Z`) : new Date(value);
  if (Number.isNaN(d.getTime()) || !/^\d{4}-\d{2}-\d{2}/.test(value)) {
    throw badRequest("invalid_date", `${field} must be an ISO 8601 date (2025-01-31) or date-time (2025-01-31T12:00:00Z).`, { field });
  }
  return d;
}

export class BillingService implements BillingContract {
  constructor(
    private db: Db,
    private settings: BillingSettings,
    private onPlanChanged: (orgId: string) => void = () => {},
  ) {}

  async getLimits(orgId: string): Promise<PlanLimits> {
    const plan = await planOf(this.db, orgId);
    return { plan, ...this.settings.plans[plan] };
  }

  async assertRunAllowed(orgId: string): Promise<void> {
    const { plan, used } = await planAndMonthlyUsage(this.db, orgId);
    const limits = { plan, ...this.settings.plans[plan] };
    const resetsAt = monthOf(new Date()).end.toISOString();
    if (used.runs + 1 > limits.runs_per_month) {
      throw new AppError(402, "quota_exceeded", `The ${limits.plan} plan allows ${limits.runs_per_month} runs per month and ${used.runs} were used; upgrade with PUT /v1/billing/plan or wait until ${resetsAt}.`, {
        metric: "runs", plan: limits.plan, limit: limits.runs_per_month, used: used.runs, resets_at: resetsAt,
      });
    }
    if (used.tokens >= limits.tokens_per_month) {
      throw new AppError(402, "quota_exceeded", `The ${limits.plan} plan allows ${limits.tokens_per_month} tokens per month and ${used.tokens} were used; upgrade with PUT /v1/billing/plan or wait until ${resetsAt}.`, {
        metric: "tokens", plan: limits.plan, limit: limits.tokens_per_month, used: used.tokens, resets_at: resetsAt,
      });
    }
  }

  /** What model calls cost at this deployment's prices, in (fractional) cents, in order. */
  async modelCosts(items: { model: string; prompt_tokens: number; completion_tokens: number }[]): Promise<number[]> {
    return items.map((i) => costMicroCents(priceOf(this.settings.prices, i.model), i.prompt_tokens, i.completion_tokens) / 1_000_000);
  }

  async getPlan(principal: Principal): Promise<PlanOut> {
    const plan = await planOf(this.db, principal.orgId);
    const month = monthOf(new Date());
    const used = await monthlyUsage(this.db, principal.orgId);
    return {
      plan,
      limits: this.settings.plans[plan],
      period: { start: month.start.toISOString(), end: month.end.toISOString() },
      usage: used,
      available_plans: PLAN_NAMES.map((name) => ({ plan: name, limits: this.settings.plans[name] })),
    };
  }

  async updatePlan(principal: Principal, input: { plan: PlanName }): Promise<PlanOut> {
    if (principal.role !== "owner") throw forbidden("Only an owner of the organization can change its plan.");
    if (!(PLAN_NAMES as readonly string[]).includes(input.plan)) throw badRequest("invalid_plan", `plan must be one of ${PLAN_NAMES.join(", ")}.`);
    await this.db.update(organizations).set({ plan: input.plan, updatedAt: new Date() }).where(eq(organizations.id, principal.orgId));
    this.onPlanChanged(principal.orgId);
    return this.getPlan(principal);
  }

  async usage(principal: Principal, query: { from?: string; to?: string; group_by?: "day" | "model" | "agent" }): Promise<UsageOut> {
    const from = query.from ? parseInstant(query.from, "from") : monthOf(new Date()).start;
    const to = query.to ? parseInstant(query.to, "to") : new Date();
    if (to <= from) throw badRequest("invalid_range", "`to` must be after `from`.", { from: from.toISOString(), to: to.toISOString() });
    if (to.getTime() - from.getTime() > MAX_USAGE_RANGE_DAYS * DAY_MS) throw badRequest("range_too_large", `Ask for at most ${MAX_USAGE_RANGE_DAYS} days at a time.`);
    const groupBy = query.group_by ?? "day";
    const key =
      groupBy === "day" ? sql<string>`to_char(${usageRecords.occurredAt} at time zone 'UTC', 'YYYY-MM-DD')`
      : groupBy === "model" ? sql<string>`${usageRecords.model}`
      : sql<string>`${usageRecords.agentId}`;
    const aggregates = {
      runs: sql<number>`count(*) filter (where ${usageRecords.kind} = 'run')`.mapWith(Number),
      model_calls: sql<number>`count(*) filter (where ${usageRecords.kind} = 'model_call')`.mapWith(Number),
      tool_calls: sql<number>`count(*) filter (where ${usageRecords.kind} = 'tool_call')`.mapWith(Number),
      prompt_tokens: sql<number>`coalesce(sum(${usageRecords.promptTokens}), 0)`.mapWith(Number),
      completion_tokens: sql<number>`coalesce(sum(${usageRecords.completionTokens}), 0)`.mapWith(Number),
      total_tokens: sql<number>`coalesce(sum(${usageRecords.totalTokens}), 0)`.mapWith(Number),
    };
    const where = and(eq(usageRecords.orgId, principal.orgId), gte(usageRecords.occurredAt, from), lt(usageRecords.occurredAt, to));
    const [rows, [totals], tokensByModel] = await Promise.all([
      this.db.select({ key: key.as("key"), ...aggregates }).from(usageRecords).where(where).groupBy(sql`1`).orderBy(sql`1`),
      this.db.select(aggregates).from(usageRecords).where(where),
      // Cost needs each model's price: tokens per (group, model), priced here.
      this.db
        .select({ key: key.as("key"), model: usageRecords.model, prompt: aggregates.prompt_tokens, completion: aggregates.completion_tokens })
        .from(usageRecords)
        .where(and(where, eq(usageRecords.kind, "model_call")))
        .groupBy(sql`1`, usageRecords.model),
    ]);
    const costByKey = new Map<string | null, number>();
    for (const t of tokensByModel) {
      const micro = costMicroCents(priceOf(this.settings.prices, t.model), t.prompt, t.completion);
      costByKey.set(t.key ?? null, (costByKey.get(t.key ?? null) ?? 0) + micro);
    }
    const cents = (micro: number) => micro / 1_000_000;
    return {
      from: from.toISOString(),
      to: to.toISOString(),
      group_by: groupBy,
      data: rows.map((r) => ({ ...r, key: r.key ?? null, cost_cents: cents(costByKey.get(r.key ?? null) ?? 0) }) as UsageRowOut),
      totals: { ...totals, cost_cents: cents([...costByKey.values()].reduce((a, b) => a + b, 0)) },
    };
  }

  /** Monthly statements: one per UTC month with usage, plus the running month (status open). */
  async invoices(principal: Principal, query: { limit?: number; after?: string; order?: "asc" | "desc" }): Promise<PageOf<InvoiceOut>> {
    const current = monthOf(new Date()).period;
    const periodRows = await this.db
      .selectDistinct({ period: sql<string>`to_char(${usageRecords.occurredAt} at time zone 'UTC', 'YYYY-MM')` })
      .from(usageRecords)
      .where(eq(usageRecords.orgId, principal.orgId));
    const order = query.order ?? "asc";
    let periods = [...new Set([...periodRows.map((r) => r.period), current])].sort();
    if (order === "desc") periods.reverse();
    if (query.after) periods = periods.filter((p) => (order === "asc" ? p > query.after! : p < query.after!));
    const limit = query.limit ?? 12;
    const page = periods.slice(0, limit);
    const data: InvoiceOut[] = [];
    for (const period of page) data.push(await this.statement(principal.orgId, period, current));
    const hasMore = periods.length > limit;
    return { data, has_more: hasMore, next_cursor: hasMore ? page[page.length - 1] : null };
  }

  private async statement(orgId: string, period: string, current: string): Promise<InvoiceOut> {
    const { start, end } = monthFromPeriod(period);
    const window = and(eq(usageRecords.orgId, orgId), gte(usageRecords.occurredAt, start), lt(usageRecords.occurredAt, end));
    const rows = await this.db
      .select({
        kind: usageRecords.kind,
        model: usageRecords.model,
        calls: sql<number>`count(*)`.mapWith(Number),
        prompt: sql<number>`coalesce(sum(${usageRecords.promptTokens}), 0)`.mapWith(Number),
        completion: sql<number>`coalesce(sum(${usageRecords.completionTokens}), 0)`.mapWith(Number),
      })
      .from(usageRecords)
      .where(and(window, inArray(usageRecords.kind, ["model_call", "tool_call"])))
      .groupBy(usageRecords.kind, usageRecords.model)
      .orderBy(usageRecords.kind, usageRecords.model);
    const [{ runs }] = await this.db.select({ runs: sql<number>`count(*)`.mapWith(Number) }).from(usageRecords).where(and(window, eq(usageRecords.kind, "run")));
    const lines: InvoiceLineOut[] = [];
    const toolCalls = rows.filter((r) => r.kind === "tool_call").reduce((n, r) => n + r.calls, 0);
    for (const r of rows.filter((r) => r.kind === "model_call")) {
      const price = priceOf(this.settings.prices, r.model);
      lines.push({
        description: `Model usage: ${r.model ?? "unknown model"}`,
        model: r.model,
        calls: r.calls,
        prompt_tokens: r.prompt,
        completion_tokens: r.completion,
        input_cents_per_million: price.input_cents_per_million,
        output_cents_per_million: price.output_cents_per_million,
        amount_cents: toCents(costMicroCents(price, r.prompt, r.completion)),
      });
    }
    if (toolCalls > 0) {
      lines.push({ description: "Tool calls (included)", model: null, calls: toolCalls, prompt_tokens: 0, completion_tokens: 0, input_cents_per_million: 0, output_cents_per_million: 0, amount_cents: 0 });
    }
    const subtotal = lines.reduce((n, l) => n + l.amount_cents, 0);
    return {
      id: `inv_${period}`,
      period,
      period_start: start.toISOString(),
      period_end: end.toISOString(),
      status: period === current ? "open" : "closed",
      currency: "usd",
      runs,
      line_items: lines,
      subtotal_cents: subtotal,
      total_cents: subtotal,
    };
  }
}
