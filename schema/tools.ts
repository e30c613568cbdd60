/** Tool registry: tools an organization's agents may call. */
import { boolean, index, integer, jsonb, pgTable, text, uniqueIndex } from "drizzle-orm/pg-core";
import { createdAt, updatedAt } from "./columns";

export const tools = pgTable(
  "tools",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id").notNull(),
    name: text("name").notNull(),
    description: text("description").notNull().default(""),
    parameters: jsonb("parameters").$type<Record<string, unknown>>().notNull(),
    kind: text("kind").notNull(), // http | nats | client | builtin
    config: jsonb("config").$type<Record<string, unknown>>().notNull().default({}),
    requiresApproval: boolean("requires_approval").notNull().default(false),
    timeoutMs: integer("timeout_ms").notNull().default(10000),
    /** HMAC-SHA256 key that signs http tool calls; shown once at creation. */
    signingSecret: text("signing_secret").notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex("tools_org_name_key").on(t.orgId, t.name), index("tools_org_idx").on(t.orgId, t.id)],
);
