/** Notifications: webhooks and their deliveries, and the in-app inbox. */
import { sql } from "drizzle-orm";
import { boolean, index, integer, jsonb, pgTable, text, uniqueIndex } from "drizzle-orm/pg-core";
import { createdAt, tstz, updatedAt } from "./columns";

export const webhooks = pgTable(
  "webhooks",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id").notNull(),
    url: text("url").notNull(),
    secret: text("secret").notNull(),
    eventTypes: jsonb("event_types").$type<string[]>().notNull().default([]),
    active: boolean("active").notNull().default(true),
    description: text("description"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index("webhooks_org_idx").on(t.orgId, t.id)],
);

export type DeliveryAttempt = { at: string; status_code: number | null; latency_ms: number; error: string | null };

export const webhookDeliveries = pgTable(
  "webhook_deliveries",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id").notNull(),
    webhookId: text("webhook_id").notNull().references(() => webhooks.id, { onDelete: "cascade" }),
    eventId: text("event_id").notNull(),
    eventType: text("event_type").notNull(),
    payload: jsonb("payload").notNull(),
    status: text("status").notNull(), // pending | succeeded | failed
    attempts: integer("attempts").notNull().default(0),
    attemptLog: jsonb("attempt_log").$type<DeliveryAttempt[]>().notNull().default([]),
    nextAttemptAt: tstz("next_attempt_at"),
    /** W3C traceparent of the event's intake: every attempt is a span of the event's trace. */
    traceparent: text("traceparent"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    deliveredAt: tstz("delivered_at"),
  },
  (t) => [
    uniqueIndex("webhook_deliveries_event_key").on(t.webhookId, t.eventId),
    index("webhook_deliveries_webhook_idx").on(t.webhookId, t.id),
    index("webhook_deliveries_due_idx").on(t.nextAttemptAt).where(sql`status = 'pending'`),
  ],
);

export const notifications = pgTable(
  "notifications",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id").notNull(),
    /** The event that produced the entry; unique so a redelivered event adds nothing. */
    eventId: text("event_id").notNull(),
    type: text("type").notNull(),
    title: text("title").notNull(),
    body: text("body").notNull().default(""),
    data: jsonb("data").notNull().default({}),
    readAt: tstz("read_at"),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("notifications_event_key").on(t.orgId, t.eventId, t.type), index("notifications_org_idx").on(t.orgId, t.id)],
);
