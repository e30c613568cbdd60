/** Agent orchestration: agents, threads, messages, runs, steps and run events. */
import { sql } from "drizzle-orm";
import { boolean, doublePrecision, index, integer, jsonb, pgTable, primaryKey, text, uniqueIndex } from "drizzle-orm/pg-core";
import type { RunOptions } from "../src/runs/options";
import { createdAt, tstz, updatedAt } from "./columns";

export const agents = pgTable(
  "agents",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id").notNull(),
    name: text("name").notNull(),
    model: text("model").notNull(),
    instructions: text("instructions").notNull().default(""),
    tools: jsonb("tools").$type<string[]>().notNull().default([]),
    contextWindow: integer("context_window").notNull(),
    maxSteps: integer("max_steps").notNull(),
    /** Sampling defaults of the agent's runs (null: the model's own). */
    temperature: doublePrecision("temperature"),
    topP: doublePrecision("top_p"),
    maxOutputTokens: integer("max_output_tokens"),
    /** truncate | summarize: what happens to the oldest messages when the history outgrows the window. */
    contextStrategy: text("context_strategy").notNull().default("truncate"),
    metadata: jsonb("metadata").$type<Record<string, unknown>>().notNull().default({}),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index("agents_org_idx").on(t.orgId, t.id)],
);

export const threads = pgTable(
  "threads",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id").notNull(),
    metadata: jsonb("metadata").$type<Record<string, unknown>>().notNull().default({}),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index("threads_org_idx").on(t.orgId, t.id)],
);

export const messages = pgTable(
  "messages",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id").notNull(),
    threadId: text("thread_id").notNull().references(() => threads.id, { onDelete: "cascade" }),
    role: text("role").notNull(),
    content: text("content"),
    toolCalls: jsonb("tool_calls").$type<unknown[]>(),
    toolCallId: text("tool_call_id"),
    runId: text("run_id"),
    /** The final answer of a run with a JSON response_format, parsed (and validated). */
    parsed: jsonb("parsed"),
    metadata: jsonb("metadata").$type<Record<string, unknown>>().notNull().default({}),
    createdAt: createdAt(),
  },
  (t) => [index("messages_thread_idx").on(t.threadId, t.id)],
);

export const runs = pgTable(
  "runs",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id").notNull(),
    threadId: text("thread_id").notNull().references(() => threads.id, { onDelete: "cascade" }),
    agentId: text("agent_id").notNull(),
    model: text("model").notNull(),
    status: text("status").notNull(),
    stream: boolean("stream").notNull().default(false),
    requiredAction: jsonb("required_action"),
    lastError: jsonb("last_error").$type<{ code: string; message: string } | null>(),
    usage: jsonb("usage").$type<{ prompt_tokens: number; completion_tokens: number; total_tokens: number; estimated?: boolean }>().notNull()
      .default({ prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }),
    stepCount: integer("step_count").notNull().default(0),
    /** Next event sequence number; incremented in the same statement that writes an event. */
    nextSeq: integer("next_seq").notNull().default(1),
    leaseOwner: text("lease_owner"),
    leaseExpiresAt: tstz("lease_expires_at"),
    attempts: integer("attempts").notNull().default(0),
    cancelRequestedAt: tstz("cancel_requested_at"),
    requiresActionSince: tstz("requires_action_since"),
    metadata: jsonb("metadata").$type<Record<string, unknown>>().notNull().default({}),
    /** W3C traceparent of the request that created the run: workers continue its trace. */
    traceparent: text("traceparent"),
    /** Per-run overrides and output/tool options given on create (src/runs/options.ts). */
    options: jsonb("options").$type<RunOptions>().notNull().default({}),
    /** multitask_strategy enqueue: the input messages (JSON) of a `pending` run, appended to the thread when it is promoted to `queued`. */
    pendingInput: text("pending_input"),
    /** When a `pending` run became `queued`: its history cut-off (it sees what the runs before it wrote). */
    promotedAt: tstz("promoted_at"),
    /** Cancelled by multitask_strategy rollback: its messages are removed from the thread once it has ended. */
    rolledBack: boolean("rolled_back").notNull().default(false),
    /** `{max_tokens?, max_cost_cents?}` given at creation, or null. */
    budget: jsonb("budget").$type<{ max_tokens?: number; max_cost_cents?: number } | null>(),
    /** The API key the run was created with (its daily spend cap applies), or null. */
    apiKeyId: text("api_key_id"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    startedAt: tstz("started_at"),
    completedAt: tstz("completed_at"),
  },
  (t) => [
    index("runs_thread_idx").on(t.threadId, t.id),
    index("runs_org_idx").on(t.orgId, t.id),
    // The reconciler scans only live runs.
    index("runs_live_idx").on(t.status, t.leaseExpiresAt).where(sql`status in ('queued','in_progress','cancelling','requires_action')`),
    // At most one active run per thread, whatever the concurrency of creates (multitask_strategy).
    uniqueIndex("runs_thread_active_key").on(t.threadId).where(sql`status in ('queued','in_progress','cancelling','requires_action')`),
    // Runs waiting behind the active one (multitask_strategy enqueue), promoted in id order.
    index("runs_thread_pending_idx").on(t.threadId, t.id).where(sql`status = 'pending'`),
  ],
);

export const runSteps = pgTable(
  "run_steps",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id").notNull(),
    runId: text("run_id").notNull().references(() => runs.id, { onDelete: "cascade" }),
    kind: text("kind").notNull(), // model_call | tool_call | summarize
    status: text("status").notNull(), // in_progress | completed | failed | cancelled
    toolCallId: text("tool_call_id"),
    toolName: text("tool_name"),
    input: jsonb("input"),
    output: jsonb("output"),
    usage: jsonb("usage"),
    error: jsonb("error"),
    createdAt: createdAt(),
    completedAt: tstz("completed_at"),
  },
  (t) => [
    index("run_steps_run_idx").on(t.runId, t.id),
    // A tool call is executed at most once per run, even across resumes.
    uniqueIndex("run_steps_tool_call_key").on(t.runId, t.toolCallId),
  ],
);

export const runEvents = pgTable(
  "run_events",
  {
    runId: text("run_id").notNull().references(() => runs.id, { onDelete: "cascade" }),
    seq: integer("seq").notNull(),
    id: text("id").notNull(),
    orgId: text("org_id").notNull(),
    type: text("type").notNull(),
    data: jsonb("data").notNull(),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.runId, t.seq] })],
);

/**
 * OpenAI-compatible model servers of an organization (bring your own key). An agent whose
 * model is `<name>/<model>` is served by the provider `<name>`; the API key is stored sealed
 * (AES-256-GCM, src/platform/secrets.ts) and never leaves the server.
 */
export const modelProviders = pgTable(
  "model_providers",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id").notNull(),
    name: text("name").notNull(),
    baseUrl: text("base_url").notNull(),
    apiKeySealed: text("api_key_sealed"),
    /** The models it serves (null: any model name is sent to it). */
    models: jsonb("models").$type<string[] | null>(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex("model_providers_org_name_key").on(t.orgId, t.name)],
);
