/**
 * The API shapes of runs, their steps and events: one TypeBox model each, the single source
 * of the route schemas (validation + OpenAPI) and of the TypeScript types (`typeof X.static`).
 */
import { t } from "elysia";
import { Enum, Metadata, Page, PageQuery, Timestamp } from "../platform/http/models";
import { RunOptionFields, RunOptionsView } from "./options";
import { MultitaskStrategy } from "./multitask";

export const ToolCallView = t.Object({ id: t.String(), type: t.Literal("function"), function: t.Object({ name: t.String(), arguments: t.String() }) });
export type ToolCallView = typeof ToolCallView.static;

export const Usage = t.Object({
  prompt_tokens: t.Integer(),
  completion_tokens: t.Integer(),
  total_tokens: t.Integer(),
  estimated: t.Boolean({ description: "true when the model server reported no usage (for some call): the counts are AgentOS's own tokenizer estimate" }),
});
export type Usage = typeof Usage.static;

export const RunStatus = Enum(["pending", "queued", "in_progress", "requires_action", "cancelling", "completed", "failed", "cancelled", "expired"]);
export type RunStatus = typeof RunStatus.static;

/**
 * Step status. `requires_action`: a client tool call (or one awaiting approval) waiting for
 * POST /tool_outputs; `approved`: approved, to be executed by the worker.
 */
export const StepStatus = Enum(["in_progress", "requires_action", "approved", "completed", "failed", "cancelled"]);
export type StepStatus = typeof StepStatus.static;

/** What the run waits for in `requires_action`: one list, each call says what it needs. */
export const RequiredAction = t.Object({
  type: t.Literal("submit_tool_outputs"),
  tool_calls: t.Array(
    t.Composite([
      ToolCallView,
      t.Object({
        action: Enum(["output", "approval"], { description: "output: a client tool, submit its output; approval: approve or reject the call" }),
        tool_id: t.String(),
      }),
    ]),
  ),
});
export type RequiredAction = typeof RequiredAction.static;

/**
 * Limits of one run, checked before every model call against a reservation of what the call may
 * cost (prompt tokens + the reply's maximum, at billing's prices) and settled with the real usage.
 */
export const Budget = t.Object(
  {
    max_tokens: t.Optional(t.Integer({ minimum: 1, maximum: 1_000_000_000, description: "Prompt + completion tokens the run may use in all" })),
    max_cost_cents: t.Optional(t.Number({ exclusiveMinimum: 0, maximum: 100_000_000, description: "Cents the run may cost at this deployment's model prices" })),
  },
  { description: "At least one limit. The run fails with budget_exceeded before a model call that could go over either" },
);
export type Budget = typeof Budget.static;

const RunCore = t.Object({
  id: t.String(),
  object: t.Literal("run"),
  thread_id: t.String(),
  agent_id: t.String(),
  model: t.String(),
  status: RunStatus,
  stream: t.Boolean(),
  required_action: t.Nullable(RequiredAction),
  last_error: t.Nullable(t.Object({ code: t.String(), message: t.String() })),
  usage: Usage,
  cost_cents: t.Nullable(t.Number({ description: "What the run's model calls cost so far: tokens × the model's prices (fractional cents; the prices billing invoices with); null while billing does not answer" })),
  step_count: t.Integer({ description: "Model calls made" }),
  budget: t.Nullable(Budget),
  metadata: t.Record(t.String(), t.Any()),
  created_at: Timestamp,
  updated_at: Timestamp,
  started_at: t.Nullable(Timestamp),
  completed_at: t.Nullable(Timestamp),
  cancel_requested_at: t.Nullable(Timestamp),
});
/** The run with the options it was created with (null: the agent's setting applies). */
export const Run = t.Composite([RunCore, RunOptionsView]);
export type RunOut = typeof Run.static;
export const RunPage = Page(Run);

export const Step = t.Object({
  id: t.String(),
  object: t.Literal("run_step"),
  run_id: t.String(),
  kind: Enum(["model_call", "tool_call", "summarize"], { description: "summarize: older messages folded into the thread's summary (context_strategy summarize)" }),
  status: StepStatus,
  tool_call_id: t.Nullable(t.String()),
  tool_name: t.Nullable(t.String()),
  input: t.Any(),
  output: t.Any(),
  usage: t.Nullable(Usage),
  error: t.Any(),
  created_at: Timestamp,
  completed_at: t.Nullable(Timestamp),
});
export type StepOut = typeof Step.static;
export const StepPage = Page(Step);

/** One run event (SSE `GET /v1/runs/:id/events`, waiters, the run's event log). */
export const RunEvent = t.Object({ seq: t.Integer(), id: t.String(), run_id: t.String(), type: t.String(), data: t.Any(), created_at: Timestamp });
export type RunEventOut = typeof RunEvent.static;

/** `data:` of a `message.delta` stream event: model output as it arrives. */
export const MessageDelta = t.Object({ step_id: t.String(), delta: t.String() });
/** `data:` of `tool_call.created` / `tool_call.completed` stream events. */
export const ToolCallEvent = t.Object({
  step_id: t.Optional(t.String()),
  tool_call_id: t.String(),
  name: t.String(),
  arguments: t.Optional(t.String()),
  action: t.Optional(t.String()),
  ok: t.Optional(t.Boolean()),
  output: t.Optional(t.Any()),
  error: t.Optional(t.Any()),
});
/** `data:` of a `run.in_progress` stream event (a worker picked the run up). */
export const RunPickedUp = t.Object({ run_id: t.String(), status: RunStatus, attempt: t.Optional(t.Integer()) });
/** `data:` of an `error` stream event: the stream broke; reconnect with Last-Event-ID. */
export const StreamError = t.Object({ code: t.String(), message: t.String() });
/** The `data:` of one SSE event of a run's stream, by its `event:` type (OpenAPI documentation). */
/** The run as run.* events carry it: written by the worker, which prices nothing (GET /v1/runs/{id} has `cost_cents`). */
export const RunSnapshot = t.Omit(Run, ["cost_cents"]);
export const RunStreamData = t.Union([RunSnapshot, RunPickedUp, Step, MessageDelta, ToolCallEvent, StreamError], {
  description: "run.* events carry a RunSnapshot (the Run without cost_cents; run.in_progress a RunPickedUp), step.* the Step, message.delta a MessageDelta, tool_call.* a ToolCallEvent, error a StreamError",
});

/** One message of a run's `input`. */
export const InputMessage = t.Object({
  role: Enum(["user", "assistant", "system"], { description: "Who said it; system messages add to the agent's instructions for the rest of the thread" }),
  content: t.String({ minLength: 1, maxLength: 200_000 }),
});

const RunInput = t.Union(
  [t.String({ minLength: 1, maxLength: 200_000 }), t.Array(InputMessage, { minItems: 1, maxItems: 100 })],
  { description: "Appended to the thread before the run starts: a string is one user message; a list of messages is appended in order" },
);

const runFields = {
  agent_id: t.String({ maxLength: 64, description: "The agent that runs (agt_…)" }),
  input: t.Optional(RunInput),
  stream: t.Optional(t.Boolean({ default: false, description: "Answer with a text/event-stream of the run's events; model output streams as message.delta" })),
  metadata: t.Optional(Metadata),
  ...RunOptionFields,
  budget: t.Optional(Budget),
};

export const CreateRunBody = t.Object({ ...runFields, multitask_strategy: t.Optional(MultitaskStrategy) });
export type CreateRunInput = typeof CreateRunBody.static;

/** A message a new thread starts with (POST /v1/threads/runs). */
export const ThreadMessage = t.Object({
  role: Enum(["user", "assistant"], { description: "Who said it" }),
  content: t.String({ minLength: 1, maxLength: 200_000 }),
  metadata: t.Optional(Metadata),
});

export const CreateThreadAndRunBody = t.Object({
  ...runFields,
  thread: t.Optional(
    t.Object({
      metadata: t.Optional(Metadata),
      messages: t.Optional(t.Array(ThreadMessage, { maxItems: 100, description: "The thread's first messages, before the run's input" })),
    }, { description: "The new thread (default: no metadata, no messages)" }),
  ),
});
export type CreateThreadAndRunInput = typeof CreateThreadAndRunBody.static;

export const ToolOutputsBody = t.Object({
  tool_outputs: t.Array(
    t.Object({
      tool_call_id: t.String({ minLength: 1, maxLength: 128 }),
      output: t.Optional(t.String({ maxLength: 500_000, description: "Result of a client tool (action output)" })),
      approve: t.Optional(t.Boolean({ description: "Decision on a call awaiting approval (action approval)" })),
      reason: t.Optional(t.String({ maxLength: 2000, description: "Shown to the model when a call is rejected" })),
    }),
    { minItems: 1, maxItems: 128 },
  ),
});
export type ToolOutputsInput = typeof ToolOutputsBody.static;

export const EventsQuery = t.Object({
  after: t.Optional(t.Integer({ minimum: 0, description: "Replay events with seq greater than this (or send Last-Event-ID)" })),
});
export const WaitQuery = t.Object({
  timeout_s: t.Optional(t.Number({ minimum: 0, maximum: 60, default: 30, description: "Seconds to wait at most (0-60)" })),
});

/** GET /v1/runs: the organization's runs, filtered; paginated and ordered like every list. */
export const ListRunsQuery = t.Composite([
  PageQuery,
  t.Object({
    status: t.Optional(RunStatus),
    agent_id: t.Optional(t.String({ maxLength: 64, description: "Only this agent's runs (agt_…)" })),
    thread_id: t.Optional(t.String({ maxLength: 64, description: "Only this thread's runs (thr_…)" })),
    created_after: t.Optional(t.String({ format: "date-time", description: "Created at or after this instant (ISO 8601)" })),
    created_before: t.Optional(t.String({ format: "date-time", description: "Created before this instant (ISO 8601)" })),
  }),
]);
export type ListRunsInput = typeof ListRunsQuery.static;
