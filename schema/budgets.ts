/**
 * Run budgets and API-key spend caps (the run kernel's): one reservation per metered model call,
 * keyed by its step id, and one spend counter per API key and UTC day. A reservation is taken
 * in the transaction that opens the step and settled in the one that closes it, so a crashed
 * worker's retry of the same step finds its reservation instead of taking a second one.
 */
import { bigint, index, integer, pgTable, primaryKey, text } from "drizzle-orm/pg-core";
import { runs } from "./agents";
import { createdAt, tstz } from "./columns";

export const budgetReservations = pgTable(
  "budget_reservations",
  {
    stepId: text("step_id").primaryKey(),
    orgId: text("org_id").notNull(),
    runId: text("run_id").notNull().references(() => runs.id, { onDelete: "cascade" }),
    apiKeyId: text("api_key_id"),
    /** UTC day (YYYY-MM-DD) whose key counter this reservation was charged to. */
    day: text("day").notNull(),
    /** Tokens and micro-cents (1e-6 cent) held while the call runs; replaced by the real usage when settled. */
    tokens: integer("tokens").notNull(),
    microCents: bigint("micro_cents", { mode: "number" }).notNull(),
    /** reserved | settled */
    status: text("status").notNull(),
    createdAt: createdAt(),
    settledAt: tstz("settled_at"),
  },
  (t) => [index("budget_reservations_run_idx").on(t.runId)],
);

export const apiKeyDailySpend = pgTable(
  "api_key_daily_spend",
  {
    apiKeyId: text("api_key_id").notNull(),
    day: text("day").notNull(),
    orgId: text("org_id").notNull(),
    /** Reserved plus settled micro-cents of the key's runs on that UTC day. */
    microCents: bigint("micro_cents", { mode: "number" }).notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.apiKeyId, t.day] })],
);
