/** Run rows and their JSON views (shaped by ./model), statuses and event types shared by the agents role (API) and the worker role (run loop). */
import type { runEvents, runSteps, runs } from "../../schema";
import { iso } from "../platform/db/pagination";
import { runOptionsView } from "./options";
import type { RequiredAction, RunEventOut, RunOut, RunStatus, StepOut, StepStatus, Usage } from "./model";


export type RunRow = typeof runs.$inferSelect;
export type StepRow = typeof runSteps.$inferSelect;
export type EventRow = typeof runEvents.$inferSelect;

export const TERMINAL_STATUSES: readonly RunStatus[] = ["completed", "failed", "cancelled", "expired"];
export const ACTIVE_STATUSES: readonly RunStatus[] = ["queued", "in_progress", "requires_action", "cancelling"];

export const isTerminal = (status: string) => (TERMINAL_STATUSES as readonly string[]).includes(status);

/** Run events (SPEC §2) plus the step end events (step.completed, step.failed) and run.expired (the terminal event of `expired`). */
export type RunEventType =
  | "run.created" | "run.queued" | "run.in_progress" | "run.requires_action" | "run.completed" | "run.failed" | "run.cancelled" | "run.expired"
  | "step.created" | "step.completed" | "step.failed" | "message.delta" | "tool_call.created" | "tool_call.completed";
export const TERMINAL_EVENTS: readonly string[] = ["run.completed", "run.failed", "run.cancelled", "run.expired"];

/** A run as stored, without its price (RunsService adds `cost_cents` from billing's prices). */
export type RunView = Omit<RunOut, "cost_cents">;

/** Stored usage (rows from before `estimated` existed lack it) as the API shows it. */
export function usageOut(u: { prompt_tokens: number; completion_tokens: number; total_tokens: number; estimated?: boolean }): Usage {
  return { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens, total_tokens: u.total_tokens, estimated: u.estimated ?? false };
}

export function runOut(r: RunRow): RunView {
  return {
    id: r.id,
    object: "run" as const,
    thread_id: r.threadId,
    agent_id: r.agentId,
    model: r.model,
    status: r.status as RunStatus,
    stream: r.stream,
    required_action: (r.requiredAction ?? null) as RequiredAction | null,
    last_error: r.lastError ?? null,
    usage: usageOut(r.usage),
    step_count: r.stepCount,
    budget: r.budget ?? null,
    metadata: r.metadata,
    created_at: r.createdAt.toISOString(),
    updated_at: r.updatedAt.toISOString(),
    started_at: iso(r.startedAt),
    completed_at: iso(r.completedAt),
    cancel_requested_at: iso(r.cancelRequestedAt),
    ...runOptionsView(r.options),
  };
}

export function stepOut(s: StepRow): StepOut {
  return {
    id: s.id,
    object: "run_step" as const,
    run_id: s.runId,
    kind: s.kind as StepOut["kind"],
    status: s.status as StepStatus,
    tool_call_id: s.toolCallId,
    tool_name: s.toolName,
    input: s.input ?? null,
    output: s.output ?? null,
    usage: s.usage ? usageOut(s.usage as Usage) : null,
    error: (s.error ?? null) as { code: string; message: string } | null,
    created_at: s.createdAt.toISOString(),
    completed_at: iso(s.completedAt),
  };
}

export function eventOut(e: EventRow): RunEventOut {
  return { seq: e.seq, id: e.id, run_id: e.runId, type: e.type, data: e.data, created_at: e.createdAt.toISOString() };
}
