/** Billing: the usage ledger (exactly one row per metered event) and quota alerts. */
import { bigint, index, integer, pgTable, primaryKey, text, uniqueIndex } from "drizzle-orm/pg-core";
import { createdAt, tstz } from "./columns";

export const usageRecords = pgTable(
  "usage_records",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id").notNull(),
    /** The domain event that caused this row; the unique index makes recording idempotent. */
    eventId: text("event_id").notNull(),
    kind: text("kind").notNull(), // run | model_call | tool_call
    agentId: text("agent_id"),
    runId: text("run_id"),
    model: text("model"),
    promptTokens: integer("prompt_tokens").notNull().default(0),
    completionTokens: integer("completion_tokens").notNull().default(0),
    totalTokens: integer("total_tokens").notNull().default(0),
    occurredAt: tstz("occurred_at").notNull(),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("usage_records_event_key").on(t.eventId), index("usage_records_org_time_idx").on(t.orgId, t.occurredAt)],
);

/** One row per (organization, month, threshold) so each quota alert fires once. */
export const quotaAlerts = pgTable(
  "quota_alerts",
  {
    orgId: text("org_id").notNull(),
    period: text("period").notNull(), // YYYY-MM
    metric: text("metric").notNull(), // runs | tokens
    threshold: integer("threshold").notNull(), // 80 | 100
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.orgId, t.period, t.metric, t.threshold] })],
);

/**
 * Runs and tokens per (organization, UTC month of the event), kept by the ledger in the
 * transaction that inserts the usage row, so a quota check reads one row instead of summing
 * the month's usage_records. period is YYYY-MM as monthOf() gives it.
 */
export const usageMonths = pgTable(
  "usage_months",
  {
    orgId: text("org_id").notNull(),
    period: text("period").notNull(), // YYYY-MM
    runs: bigint("runs", { mode: "number" }).notNull().default(0),
    tokens: bigint("tokens", { mode: "number" }).notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.orgId, t.period] })],
);
