/** Schedules: runs created by cron expressions or at one instant, and the record of every fire. */
import { sql } from "drizzle-orm";
import { boolean, index, jsonb, pgTable, primaryKey, text } from "drizzle-orm/pg-core";
import { createdAt, tstz, updatedAt } from "./columns";

export const schedules = pgTable(
  "schedules",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id").notNull(),
    agentId: text("agent_id").notNull(),
    /** Every fire runs on this thread; null: a new thread per fire. */
    threadId: text("thread_id"),
    /** 5-field cron expression (minute hour day-of-month month day-of-week), or null with run_at. */
    cron: text("cron"),
    timezone: text("timezone").notNull().default("UTC"),
    /** One-shot schedules: the instant of their only fire. */
    runAt: tstz("run_at"),
    input: text("input"),
    /** Run-create options of every fire (metadata, multitask_strategy, …). */
    runOptions: jsonb("run_options").$type<Record<string, unknown>>().notNull().default({}),
    enabled: boolean("enabled").notNull().default(true),
    /** What a fire missed during downtime does: run_once (catch up once) or skip. */
    misfirePolicy: text("misfire_policy").notNull().default("run_once"),
    /** The next fire; null when none will come (one-shot done, or disabled). */
    nextRunAt: tstz("next_run_at"),
    lastRunId: text("last_run_id"),
    lastFiredAt: tstz("last_fired_at"),
    metadata: jsonb("metadata").$type<Record<string, unknown>>().notNull().default({}),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    index("schedules_org_idx").on(t.orgId, t.id),
    // The scheduler's scan: enabled schedules by their next fire.
    index("schedules_due_idx").on(t.nextRunAt).where(sql`enabled and next_run_at is not null`),
  ],
);

/** One row per fire: the primary key makes a fire happen once across replicas and restarts. */
export const scheduleFires = pgTable(
  "schedule_fires",
  {
    scheduleId: text("schedule_id").notNull().references(() => schedules.id, { onDelete: "cascade" }),
    fireAt: tstz("fire_at").notNull(),
    orgId: text("org_id").notNull(),
    /** fired | skipped (missed during downtime, misfire_policy skip) | failed (run create refused) */
    status: text("status").notNull(),
    runId: text("run_id"),
    threadId: text("thread_id"),
    error: jsonb("error").$type<{ code: string; message: string } | null>(),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.scheduleId, t.fireAt] })],
);
