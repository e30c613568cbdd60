/** Shapes shared by the agents role (API) and the worker role (run loop): statuses, events, JSON views. */
import type { runEvents, runSteps, runs } from "../../../schema";
import { iso } from "../../platform/db/pagination";

export type RunRow = typeof runs.$inferSelect;
export type StepRow = typeof runSteps.$inferSelect;
export type EventRow = typeof runEvents.$inferSelect;

export type RunStatus = "queued" | "in_progress" | "requires_action" | "cancelling" | "completed" | "failed" | "cancelled" | "expired";
export const TERMINAL_STATUSES: readonly RunStatus[] = ["completed", "failed", "cancelled", "expired"];
/** Statuses a run can be picked up by a worker in. */
export const RUNNABLE_STATUSES: readonly RunStatus[] = ["queued", "in_progress", "cancelling"];
export const ACTIVE_STATUSES: readonly RunStatus[] = ["queued", "in_progress", "requires_action", "cancelling"];

export const isTerminal = (status: string) => (TERMINAL_STATUSES as readonly string[]).includes(status);

/** Run events (SPEC §2) plus step.completed and run.expired (the terminal event of `expired`). */
export type RunEventType =
  | "run.created" | "run.in_progress" | "run.requires_action" | "run.completed" | "run.failed" | "run.cancelled" | "run.expired"
  | "step.created" | "step.completed" | "message.delta" | "tool_call.created" | "tool_call.completed";
export const TERMINAL_EVENTS: readonly string[] = ["run.completed", "run.failed", "run.cancelled", "run.expired"];

/**
 * Step status. `requires_action`: a client tool call (or one awaiting approval) waiting for
 * POST /tool_outputs; `approved`: approved, to be executed by the worker.
 */
export type StepStatus = "in_progress" | "requires_action" | "approved" | "completed" | "failed" | "cancelled";

export interface ToolCallView {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

/** What the run waits for in `requires_action`: one list, each call says what it needs. */
export interface RequiredAction {
  type: "submit_tool_outputs";
  tool_calls: (ToolCallView & { action: "output" | "approval"; tool_id: string })[];
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function runOut(r: RunRow) {
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
    usage: r.usage,
    step_count: r.stepCount,
    metadata: r.metadata,
    created_at: r.createdAt.toISOString(),
    updated_at: r.updatedAt.toISOString(),
    started_at: iso(r.startedAt),
    completed_at: iso(r.completedAt),
    cancel_requested_at: iso(r.cancelRequestedAt),
  };
}
export type RunOut = ReturnType<typeof runOut>;

export function stepOut(s: StepRow) {
  return {
    id: s.id,
    object: "run_step" as const,
    run_id: s.runId,
    kind: s.kind as "model_call" | "tool_call",
    status: s.status as StepStatus,
    tool_call_id: s.toolCallId,
    tool_name: s.toolName,
    input: s.input ?? null,
    output: s.output ?? null,
    usage: (s.usage ?? null) as Usage | null,
    error: (s.error ?? null) as { code: string; message: string } | null,
    created_at: s.createdAt.toISOString(),
    completed_at: iso(s.completedAt),
  };
}
export type StepOut = ReturnType<typeof stepOut>;

export function eventOut(e: EventRow) {
  return { seq: e.seq, id: e.id, run_id: e.runId, type: e.type, data: e.data, created_at: e.createdAt.toISOString() };
}
export type RunEventOut = ReturnType<typeof eventOut>;
