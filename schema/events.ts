/**
 * Transactional outbox: a domain event is inserted in the same transaction as the change
 * that causes it; the relay publishes unpublished rows (FOR UPDATE SKIP LOCKED) to the bus.
 */
import { sql } from "drizzle-orm";
import { index, integer, jsonb, pgTable, text } from "drizzle-orm/pg-core";
import { createdAt, tstz } from "./columns";

export const outboxEvents = pgTable(
  "outbox_events",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id").notNull(),
    type: text("type").notNull(),
    payload: jsonb("payload").notNull(),
    /** W3C traceparent of the request that caused the event, carried in bus headers. */
    traceparent: text("traceparent"),
    createdAt: createdAt(),
    publishedAt: tstz("published_at"),
    attempts: integer("attempts").notNull().default(0),
  },
  (t) => [
    index("outbox_unpublished_idx").on(t.createdAt).where(sql`published_at is null`),
    index("outbox_org_idx").on(t.orgId, t.id),
  ],
);
