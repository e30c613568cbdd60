/** Context compaction: the kept summary of each thread's folded beginning (src/runs/compaction.ts). */
import { pgTable, text } from "drizzle-orm/pg-core";
import { threads } from "./agents";
import { tstz } from "./columns";

/**
 * The folded beginning of a thread (context_strategy "summarize"): one row per thread, replaced
 * when the summary grows. Messages up to `through_message_id` are represented by `content`.
 */
export const threadSummaries = pgTable("thread_summaries", {
  threadId: text("thread_id").primaryKey().references(() => threads.id, { onDelete: "cascade" }),
  orgId: text("org_id").notNull(),
  throughMessageId: text("through_message_id").notNull(),
  content: text("content").notNull(),
  /** The summarize step that wrote it. */
  stepId: text("step_id").notNull(),
  updatedAt: tstz("updated_at").notNull().defaultNow(),
});
