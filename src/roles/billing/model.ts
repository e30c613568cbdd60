/** Route models of the billing role: the single source of truth for validation and OpenAPI. */
import { t } from "elysia";
import { Page, Timestamp, Enum } from "../../platform/http/models";
import { PLAN_NAMES } from "./plans";

const Limits = t.Object({
  runs_per_month: t.Integer(),
  tokens_per_month: t.Integer(),
  requests_per_minute: t.Integer(),
});

export const Plan = t.Object({
  plan: Enum([...PLAN_NAMES]),
  limits: Limits,
  period: t.Object({ start: Timestamp, end: Timestamp, description: t.Optional(t.String()) }, { description: "The current UTC calendar month; quotas reset at `end`" }),
  usage: t.Object({ runs: t.Integer(), tokens: t.Integer() }),
  available_plans: t.Array(t.Object({ plan: t.String(), limits: Limits })),
});
export type PlanOut = typeof Plan.static;

export const UpdatePlanBody = t.Object({ plan: Enum([...PLAN_NAMES], { description: "free | pro | business | enterprise" }) });

export const UsageQuery = t.Object({
  from: t.Optional(t.String({ maxLength: 40, description: "ISO date or date-time (inclusive); default: start of the current month" })),
  to: t.Optional(t.String({ maxLength: 40, description: "ISO date or date-time (exclusive); default: now" })),
  group_by: t.Optional(Enum(["day", "model", "agent"], { default: "day" })),
});

const UsageTotals = {
  runs: t.Integer(),
  model_calls: t.Integer(),
  tool_calls: t.Integer(),
  prompt_tokens: t.Integer(),
  completion_tokens: t.Integer(),
  total_tokens: t.Integer(),
  cost_cents: t.Number({ description: "Model calls priced at this deployment's prices per model, in fractional cents (statements round per line)" }),
};
export const UsageRow = t.Object({ key: t.Nullable(t.String({ description: "The day (YYYY-MM-DD), model or agent id" })), ...UsageTotals });
export const Usage = t.Object({
  from: Timestamp,
  to: Timestamp,
  group_by: t.String(),
  data: t.Array(UsageRow),
  totals: t.Object(UsageTotals),
});
export type UsageRowOut = typeof UsageRow.static;
export type UsageOut = typeof Usage.static;

export const InvoiceQuery = t.Object({
  limit: t.Optional(t.Integer({ minimum: 1, maximum: 100, default: 12 })),
  after: t.Optional(t.String({ pattern: "^\\d{4}-(0[1-9]|1[0-2])$", description: "Cursor: the `period` (YYYY-MM) of the last invoice seen" })),
  order: t.Optional(Enum(["asc", "desc"], { default: "asc" })),
});

export const InvoiceLine = t.Object({
  description: t.String(),
  model: t.Nullable(t.String()),
  calls: t.Integer(),
  prompt_tokens: t.Integer(),
  completion_tokens: t.Integer(),
  input_cents_per_million: t.Integer(),
  output_cents_per_million: t.Integer(),
  amount_cents: t.Integer(),
});
export const Invoice = t.Object({
  id: t.String({ description: "inv_<YYYY-MM>: one statement per UTC month" }),
  period: t.String({ description: "YYYY-MM" }),
  period_start: Timestamp,
  period_end: Timestamp,
  status: Enum(["open", "closed"], { description: "open while the month is running" }),
  currency: t.Literal("usd"),
  runs: t.Integer(),
  line_items: t.Array(InvoiceLine),
  subtotal_cents: t.Integer(),
  total_cents: t.Integer(),
});
export type InvoiceLineOut = typeof InvoiceLine.static;
export type InvoiceOut = typeof Invoice.static;
export const InvoicePage = Page(Invoice);
