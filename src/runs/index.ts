/**
 * The run kernel: what a run is and how it changes, shared by the agents role (the run API,
 * served as part of its RPC surface) and the worker role (executing runs). Nothing outside
 * src/runs/ imports its files directly; this is its public surface.
 *
 * - model: the API shapes of runs, steps, events (TypeBox models; types derive from them)
 * - types: run rows, their JSON views, statuses and event types
 * - store: the one way to write a run (guarded, lease-fenced transactions) and read its events
 * - transitions: terminal state changes shared by the API, the worker and the reconciler
 * - queue: the RUNS work queue (doorbells) and the live subjects of runs
 * - reconciler: re-rings lost doorbells, expires idle runs, releases leases at shutdown
 * - settings: the run tunables (from Config) as the loop, worker and reconciler see them
 * - options: per-run overrides, response_format, parallel_tool_calls (create body, view, effective values)
 * - multitask: busy threads (multitask_strategy): one active run per thread, pending runs promoted in order
 * - service: RunsService, the run API (create, read, cancel, tool outputs, events, trace)
 */
export {
  Budget, CreateRunBody, CreateThreadAndRunBody, EventsQuery, InputMessage, ListRunsQuery, ThreadMessage, RequiredAction, Run, RunEvent, RunPage, RunStatus, Step, StepPage, StepStatus, ToolCallView, ToolOutputsBody, Usage, WaitQuery,
  type CreateRunInput, type CreateThreadAndRunInput, type ListRunsInput, type RunEventOut, type RunOut, type StepOut, type ToolOutputsInput,
} from "./model";
export { ACTIVE_STATUSES, eventOut, isTerminal, runOut, stepOut, usageOut, type RunView, TERMINAL_EVENTS, TERMINAL_STATUSES, type EventRow, type RunEventType, type RunRow, type StepRow } from "./types";
export { LeaseLostError, leaseFree, leaseHeld, msInterval, RunStore, type EventSpec, type MutateOptions, type RunDoorbellMessage, type RunSet } from "./store";
export { finishRun, runPayload, type FinalStatus } from "./transitions";
export { enqueueRun, runCancelSubject, runLiveSubject, RUNS_STREAM, RUNS_SUBJECT, tryEnqueueRun, WORKER_DURABLE, type RunDoorbell } from "./queue";
export { expireIdleRuns, releaseAllLeases, requeueStranded, startReconciler } from "./reconciler";
export { MULTITASK_STRATEGIES, MultitaskStrategy, PENDING, promoteNext, promoteStalledPending } from "./multitask";
export { runSettings, type RunSettings } from "./settings";
export { RunTrace, RunTraceStep, type CostOf, type RunTraceOut } from "./trace";
export { RunsService, validateToolOutputs, type RunsDeps } from "./service";
export {
  effectiveOptions, modelParams, namedToolChoice, ResponseFormat, RunOptionFields, SamplingFields, ToolChoice,
  assertRunOptions, type AgentDefaults, type EffectiveOptions, type JsonResponseFormat, type RunOptionChecks, type RunOptions,
} from "./options";
export { BudgetExceededError, costOf, isBudgeted, limitsOf, MICRO, releaseHolds, reserve, settle, type BudgetLimits, type TokenPrice } from "./budget";
export { cutToTokens, messagesToFold, summarizeRequest, summaryMaxTokens, SUMMARIZE_MARKER, withSummary, type HistoryMessage } from "./compaction";
