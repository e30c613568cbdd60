/**
 * A run's timeline (GET /v1/runs/:id/trace): where its time went — waiting in the queue,
 * each model and tool call, waiting for the caller in `requires_action` — and what each
 * model call cost. Built from what the run already persists (its lifecycle events and steps);
 * prices come from billing.
 */
import { t } from "elysia";
import { Usage } from "./model";
import { usageOut, type EventRow, type RunRow, type StepRow } from "./types";
import { Timestamp } from "../platform/http/models";

const Interval = t.Object({ from: Timestamp, to: t.Nullable(Timestamp), ms: t.Integer({ description: "Until now while still open" }) });

export const RunTraceStep = t.Object({
  id: t.String(),
  kind: t.String({ description: "model_call | tool_call | summarize" }),
  name: t.String({ description: "The model, or the tool's name" }),
  status: t.String(),
  started_at: Timestamp,
  completed_at: t.Nullable(Timestamp),
  duration_ms: t.Nullable(t.Integer({ description: "Latency of the model or tool call (null while running)" })),
  usage: t.Nullable(Usage),
  cost_cents: t.Nullable(t.Number({ description: "Model calls: tokens × the model's prices (fractional cents)" })),
  error: t.Nullable(t.Object({ code: t.String(), message: t.String() }, { additionalProperties: true })),
});

export const RunTrace = t.Object({
  object: t.Literal("run.trace"),
  run_id: t.String(),
  status: t.String(),
  model: t.String(),
  created_at: Timestamp,
  started_at: t.Nullable(Timestamp),
  completed_at: t.Nullable(Timestamp),
  total_ms: t.Integer({ description: "Created → completed (or now)" }),
  queued_ms: t.Integer({ description: "Created → first picked up by a worker (or now)" }),
  requires_action_ms: t.Integer({ description: "Time spent waiting for tool outputs or approvals" }),
  requires_action: t.Array(Interval),
  attempts: t.Integer({ description: "Worker executions of the run: each resume (after requires_action, a crash or a lost lease) is one more" }),
  usage: Usage,
  cost_cents: t.Number(),
  steps: t.Array(RunTraceStep),
});
export type RunTraceOut = typeof RunTrace.static;

/** The events the timeline needs (not the deltas). */
export const TIMELINE_EVENTS = ["run.created", "run.in_progress", "run.requires_action", "run.completed", "run.failed", "run.cancelled", "run.expired"];

/** Prices each model call: tokens → fractional cents, in the steps' order. */
export type CostOf = (items: { model: string; prompt_tokens: number; completion_tokens: number }[]) => Promise<number[]>;

const ms = (from: Date, to: Date | null, now: Date) => Math.max(0, Math.round((to ?? now).getTime() - from.getTime()));

export async function buildRunTrace(run: RunRow, steps: StepRow[], events: EventRow[], costOf: CostOf, now = new Date()): Promise<RunTraceOut> {
  const firstPickup = events.find((e) => e.type === "run.in_progress");
  const waits: { from: Date; to: Date | null }[] = [];
  for (const e of events) {
    const open = waits.at(-1);
    if (e.type === "run.requires_action") {
      if (!open || open.to) waits.push({ from: e.createdAt, to: null });
    } else if (open && !open.to && e.type !== "run.created") open.to = e.createdAt;
  }
  const modelSteps = steps.filter((s) => s.kind !== "tool_call" && s.usage);
  const costs = modelSteps.length
    ? await costOf(modelSteps.map((s) => {
        const u = s.usage as Usage;
        return { model: String((s.input as { model?: string } | null)?.model ?? run.model), prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens };
      }))
    : [];
  const costById = new Map(modelSteps.map((s, i) => [s.id, costs[i] ?? 0]));
  const requiresActionMs = waits.reduce((sum, w) => sum + ms(w.from, w.to, now), 0);
  return {
    object: "run.trace",
    run_id: run.id,
    status: run.status,
    model: run.model,
    created_at: run.createdAt.toISOString(),
    started_at: run.startedAt?.toISOString() ?? null,
    completed_at: run.completedAt?.toISOString() ?? null,
    total_ms: ms(run.createdAt, run.completedAt, now),
    queued_ms: ms(run.createdAt, firstPickup?.createdAt ?? null, now),
    requires_action_ms: requiresActionMs,
    requires_action: waits.map((w) => ({ from: w.from.toISOString(), to: w.to?.toISOString() ?? null, ms: ms(w.from, w.to, now) })),
    attempts: run.attempts,
    usage: usageOut(run.usage),
    cost_cents: costs.reduce((a, b) => a + b, 0),
    steps: steps.map((s) => ({
      id: s.id,
      kind: s.kind,
      name: s.kind !== "tool_call" ? String((s.input as { model?: string } | null)?.model ?? run.model) : (s.toolName ?? ""),
      status: s.status,
      started_at: s.createdAt.toISOString(),
      completed_at: s.completedAt?.toISOString() ?? null,
      duration_ms: s.completedAt ? ms(s.createdAt, s.completedAt, now) : null,
      usage: s.usage ? usageOut(s.usage as Usage) : null,
      cost_cents: costById.get(s.id) ?? null,
      error: (s.error ?? null) as { code: string; message: string } | null,
    })),
  };
}
