/**
 * One execution of a run by the worker that holds its lease. The loop is driven by the
 * persisted steps, so a redelivered run resumes exactly where its predecessor stopped:
 *
 *   no model step yet / all tool calls of the last one done → model call
 *   last model step interrupted (in_progress)               → the same model call again
 *   last model step asked for tools                         → execute the ones not completed, several
 *                                                              at once with parallel_tool_calls (tool-plan.ts)
 *                                                              (client / approval → requires_action)
 *   last model step answered without tools                  → assistant message, completed
 *                                                              (an answer that misses a JSON response_format:
 *                                                              one corrective model call, then invalid_output)
 *
 * What the run executes with — model, instructions, tools, sampling, limits, tool_choice — is
 * the run's options over its agent's settings (src/runs/options.ts), fixed for the run.
 *
 * Every model call and tool call is written as a step before it starts and after it ends
 * (fenced by the lease). One transaction per step boundary: the "after" write of the call
 * that ended commits together with the "before" write of the next one (or requires_action,
 * or the run's end). Each of those writes updates the run row under the lease fence and
 * returns it, so the run's status (a cancel accepted by any process) is checked at every
 * boundary without another read; the AbortSignal (cancel, lost lease, shutdown) aborts the
 * in-flight model request. The steps are read once per lease and kept in memory.
 */
import { and, desc, eq, lte, sql, type Column, type SQL } from "drizzle-orm";
import { agents, messages, runSteps, runs, threadSummaries } from "../../../schema";
import { newId } from "../../platform/ids";
import type { Logger } from "../../platform/logging";
import type { Metrics } from "../../platform/metrics";
import { type ChatMessage, ModelError, type ModelProvider, type ModelReply, type ModelUsage, type ToolCall, type ToolSpec } from "../../platform/model/types";
import { buildPromptSliced, ContextWindowExceededError, defaultReserve, renderSystemPrompt, type BuiltPrompt } from "../../platform/model/prompt";
import { countMessageTokens, countToolTokens, precountTokens, promptTexts, REPLY_PRIMING_TOKENS } from "../../platform/model/tokens";
import type { EventType } from "../../platform/event-types";
import { emitEvent } from "../../platform/outbox";
import { storableJson, storableText } from "../../platform/storable";
import type { Tracing } from "../../platform/tracing";
import type { MemoryContract } from "../memory/contract";
import type { Tx } from "../../platform/db";
import {
  BudgetExceededError, cutToTokens, effectiveOptions, finishRun, LeaseLostError, messagesToFold, modelParams, runOut, runPayload, stepOut, summarizeRequest, summaryMaxTokens, withSummary,
  type EffectiveOptions, type EventSpec, type FinalStatus, type HistoryMessage, type MutateOptions, type RequiredAction, type RunRow, type RunSet, type JsonResponseFormat, type RunStore, type StepRow, type ToolChoice,
} from "../../runs";
import type { AuthClient } from "../auth/contract";
import type { BillingClient } from "../billing/contract";
import type { RunTool, ToolCallResult, ToolsContract } from "../tools/contract";
import { Metering } from "./metering";
import { checkOutput, CORRECTIVE_TURNS, correctiveMessage } from "./output";
import { DONE, mapBounded, planToolCalls, toolCallsMade, type PlannedCall } from "./tool-plan";

export type AbortReason = "cancel" | "lease_lost" | "shutdown";

export interface LoopDeps {
  store: RunStore;
  log: Logger;
  metrics: Metrics;
  model: ModelProvider;
  memory: () => MemoryContract;
  tools: () => ToolsContract;
  /** The daily spend cap of the run's API key (budgets). */
  auth: () => Pick<AuthClient, "apiKeySpendCap">;
  /** Model prices (budgets). */
  billing: () => Pick<BillingClient, "modelCosts">;
  deltaFlushMs: number;
  /** Tool calls of one model turn executed at once (parallel_tool_calls). */
  toolCallConcurrency: number;
  tracing: Tracing;
  /** The tool list each agent had at its last run in this process: its tools are asked for while the agent is read. */
  agentTools?: AgentToolsSeen;
}

/**
 * The tool list of each agent as last read (bounded): a guess, checked against the agent read
 * for the run. Right (the usual case), the tools RPC went out with the agent's read instead of
 * after it: one round trip less before the first model call. Wrong, it is asked again.
 */
export class AgentToolsSeen {
  private seen = new Map<string, string[]>();
  constructor(private limit = 1000) {}

  get(agentId: string): string[] | undefined {
    return this.seen.get(agentId);
  }

  set(agentId: string, tools: string[]) {
    if (this.seen.size >= this.limit && !this.seen.has(agentId)) this.seen.clear();
    this.seen.set(agentId, tools);
  }
}

const sameRefs = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((r, i) => r === b[i]);

type AgentRow = typeof agents.$inferSelect;
interface ModelOutput {
  content: string | null;
  tool_calls: ToolCall[];
  /** A JSON response_format: the answer parsed (and validated), or why it does not match. */
  parsed?: unknown;
  output_error?: string;
}

const HISTORY_LIMIT = 1000;

/** The text a tool result becomes in the prompt. */
export function toolResultContent(step: StepRow): string {
  if (step.status === "failed" || step.error) return JSON.stringify({ error: step.error });
  const out = step.output;
  return typeof out === "string" ? out : JSON.stringify(out ?? null);
}

/**
 * Some OpenAI-compatible servers number tool calls `call_0`, `call_1`… on every reply. Tool
 * call ids key the steps (executed at most once per run), so a reused id gets a suffix.
 */
export function uniqueToolCallIds(calls: ToolCall[], used: Set<string>): ToolCall[] {
  return calls.map((c) => {
    let id = c.id || "call";
    for (let n = 1; used.has(id); n++) id = `${c.id || "call"}_${n}`;
    used.add(id);
    return { ...c, id };
  });
}

/**
 * The closing write of a call that has finished (the model step's or tool step's "after"
 * write), held back for one moment so it commits in the same transaction as the next
 * boundary: the next call's "before" write, requires_action, or the run's end. Nothing with
 * an effect outside this process happens in between (only reads and prompt building), so a
 * crash in that window is the same as a crash just before the closing write: the call is
 * in_progress and is done again on resume, as it would have been anyway.
 */
interface PendingClose {
  set?: RunSet;
  work: (tx: Tx, run: RunRow) => Promise<void>;
  events: EventSpec[];
}

type WriteOptions<W> = Omit<MutateOptions<W>, "fence">;

interface CloseOptions {
  set?: RunSet;
  /** More writes of the close (a budget settle, the thread's summary). */
  work?: (tx: Tx, run: RunRow) => Promise<void>;
  domainEvent: (run: RunRow) => { type: EventType; payload: Record<string, unknown> };
  events: (closed: StepRow) => EventSpec[];
}

/** The closing fields of a tool step from its result, stored as it came unless the database cannot hold it (storable.ts). */
const toolDone = (result: ToolCallResult): Partial<StepRow> =>
  result.ok
    ? { status: "completed", output: storableJson(result.output ?? null) as object, error: null, completedAt: new Date() }
    : { status: "failed", output: null, error: storableJson(result.error), completedAt: new Date() };

export class RunExecution {
  private agent!: AgentRow;
  /** The run's options over the agent's settings (model, instructions, tools, sampling, limits). */
  private opts!: EffectiveOptions;
  private tools: RunTool[] = [];
  /**
   * The run's steps, read once when the lease is taken and then kept up to date by this
   * execution: every write to them is fenced by our lease, so nobody else changes them
   * while we hold it (a lost lease makes our next write fail and the execution stop).
   */
  private steps: StepRow[] = [];
  /** The thread's messages up to the run's creation (after its summary, if any): read once, shortened only by compaction. */
  private history: HistoryMessage[] = [];
  /** The thread's kept summary (context_strategy summarize), or null. */
  private summary: string | null = null;
  private meter!: Metering;
  /**
   * Memory blocks read ahead of the next model call: together with the agent for the first,
   * during a turn's tool calls when none of them can change blocks (no builtin memory tool).
   */
  private prefetchedBlocks: Promise<Awaited<ReturnType<MemoryContract["listBlocks"]>>> | null = null;
  private pending: PendingClose | null = null;
  /** True once this execution wrote a state that releases the run (terminal or requires_action). */
  finished = false;

  constructor(
    private deps: LoopDeps,
    private run: RunRow,
    private owner: string,
    private signal: AbortSignal,
  ) {}

  private get store() {
    return this.deps.store;
  }

  async execute(): Promise<void> {
    if (!(await this.load())) return this.fail("agent_not_found", `The agent ${this.run.agentId} of this run was deleted.`);
    try {
      await this.loop();
    } catch (err) {
      // Shutdown or an unexpected error: a finished call's result is persisted while the lease is ours.
      // (A cancel folds it into `cancelled`; a lost lease cannot write.)
      if (this.pending && (!this.signal.aborted || this.signal.reason === "shutdown")) await this.flushPending().catch(() => {});
      throw err;
    }
  }

  /** Agent, tools, steps, history and memory blocks, read in two parallel rounds (the second needs the agent's tool list). */
  private async load(): Promise<boolean> {
    const blocks = this.readBlocksAhead();
    // The run's own tool list, or the agent's as last seen: asked for now, used if the agent read agrees.
    const guessedRefs = this.run.options?.tools ?? this.deps.agentTools?.get(this.run.agentId);
    const guessedTools = guessedRefs?.length ? this.deps.tools().getRunTools(this.run.orgId, guessedRefs) : null;
    guessedTools?.catch(() => {}); // awaited below only when the guess was right
    const [agentRows, steps, history, meter] = await Promise.all([
      this.store.db.select().from(agents).where(and(eq(agents.id, this.run.agentId), eq(agents.orgId, this.run.orgId))),
      // Steps are written only under a lease and every lease counts an attempt: the first has none to read.
      this.run.attempts <= 1 ? [] : this.store.steps(this.run.id),
      this.threadHistory(),
      Metering.load(this.run, this.deps),
    ]);
    const agent = agentRows[0];
    if (!agent) return false;
    this.agent = agent;
    this.opts = effectiveOptions(agent, this.run.options);
    this.steps = steps;
    this.history = history;
    this.deps.agentTools?.set(agent.id, agent.tools);
    const refs = this.opts.toolRefs;
    const [runTools, summary] = await Promise.all([
      !refs.length ? null : guessedTools && sameRefs(guessedRefs!, refs) ? guessedTools : this.deps.tools().getRunTools(this.run.orgId, refs),
      agent.contextStrategy === "summarize" ? this.threadSummary() : null,
    ]);
    this.meter = meter;
    if (summary) {
      this.summary = summary.content;
      this.history = this.history.filter((h) => h.id > summary.throughMessageId);
    }
    if (runTools) {
      if (runTools.missing.length) this.deps.log.warn("agent refers to tools that no longer exist", { run_id: this.run.id, missing: runTools.missing });
      this.tools = runTools.tools;
    }
    this.prefetchedBlocks = blocks;
    return true;
  }

  /** Starts reading the agent's memory blocks for the next model call (awaited there; a failure surfaces there). */
  private readBlocksAhead() {
    const blocks = this.deps.memory().listBlocks(this.run.orgId, this.run.agentId);
    blocks.catch(() => {}); // not unhandled when the run stops before its next model call
    return blocks;
  }

  private async loop(): Promise<void> {
    for (;;) {
      this.throwIfAborted();
      const modelSteps = this.steps.filter((s) => s.kind === "model_call");
      const last = modelSteps.at(-1);
      if (!last || last.status === "in_progress") {
        if (!(await this.callModel(last))) return;
        continue;
      }
      if (last.status !== "completed") return this.fail("internal_error", `model step ${last.id} is ${last.status}`);
      const output = last.output as ModelOutput;
      const calls = output.tool_calls ?? [];
      if (calls.length === 0) {
        if (output.output_error === undefined) return this.complete(output.content ?? "", output.parsed);
        if (!(await this.correctOutput(output.output_error))) return;
        continue;
      }
      const byCall = new Map(this.steps.filter((s) => s.toolCallId).map((s) => [s.toolCallId!, s]));
      if (calls.every((c) => DONE.has(byCall.get(c.id)?.status ?? ""))) {
        if (!(await this.callModel(undefined))) return;
        continue;
      }
      if (modelSteps.length >= this.opts.maxSteps) {
        return this.fail("max_steps_exceeded", `The agent still requested tools after max_steps (${this.opts.maxSteps}) model calls.`);
      }
      if (!(await this.runTools(calls))) return;
    }
  }

  /** An answer that failed the response_format: one corrective turn, then the run fails. False when the run stopped. */
  private async correctOutput(error: string): Promise<boolean> {
    const failedAnswers = this.steps.filter((s) => s.kind === "model_call" && (s.output as ModelOutput | null)?.output_error !== undefined).length;
    if (failedAnswers > CORRECTIVE_TURNS) {
      await this.fail("invalid_output", `The final answer does not match the response_format after ${CORRECTIVE_TURNS} corrective turn(s): ${error}`);
      return false;
    }
    return this.callModel(undefined);
  }

  // ---------------------------------------------------------------- writes

  /**
   * A fenced write of the run with the pending closing write folded in. Without a guard a
   * null result means the lease is lost (thrown); with one, the caller decides. The step rows
   * are built here rather than read back, so event data never waits for the writes: the
   * statements after the run update go out together (see `pipelined`).
   */
  private async write(opts: WriteOptions<void>): Promise<{ run: RunRow } | null> {
    const pending = this.pending;
    const r = await this.store.mutate<void>(this.run.id, {
      fence: this.owner,
      guard: opts.guard,
      set: pending?.set ? { ...pending.set, ...opts.set } : opts.set,
      work: async (tx, run) => {
        await Promise.all([pending?.work(tx, run), opts.work?.(tx, run)]);
      },
      events: [...(pending?.events ?? []), ...(opts.events ?? [])],
      pipelined: true,
      known: this.known,
    });
    if (!r) {
      if (!opts.guard) throw new LeaseLostError(this.run.id);
      return null;
    }
    if (this.pending === pending) this.pending = null;
    return r;
  }

  /**
   * The run as its step writes need it (ids, org): they may then go out in one round trip
   * (RunStore `known`). Not with a budget: its holds are checked against what the update returns.
   */
  private get known(): RunRow | undefined {
    return this.meter.budgeted ? undefined : this.run;
  }

  private async flushPending() {
    if (this.pending) await this.write({});
  }

  /** Replaces a step of the in-memory list (or appends a new one). */
  private remember(step: StepRow) {
    const i = this.steps.findIndex((s) => s.id === step.id);
    if (i >= 0) this.steps[i] = step;
    else this.steps.push(step);
  }

  // ---------------------------------------------------------------- model calls

  /** One model call: prompt, the step opened, the call, the step closed. Returns false when the run stopped (cancelled, failed). */
  private async callModel(interrupted: StepRow | undefined): Promise<boolean> {
    if (this.steps.filter((s) => s.kind === "model_call" && s.status === "completed").length >= this.opts.maxSteps) {
      await this.fail("max_steps_exceeded", `max_steps (${this.opts.maxSteps}) model calls reached.`);
      return false;
    }
    const built = await this.preparePrompt();
    if (!built) return false;
    const { prompt, toolSpecs } = built;

    const stepId = interrupted?.id ?? newId("stp");
    const input = { model: this.run.model, prompt_tokens: prompt.promptTokens, messages: prompt.messages.length, dropped_messages: prompt.droppedMessages };
    const created = interrupted ? undefined : newStep({ id: stepId, orgId: this.run.orgId, runId: this.run.id, kind: "model_call", input });
    // Overlapped only when the opening write holds nothing but the new step: a step closed before
    // it (a tool call's result) must be durable before a call that may take minutes, or a crash
    // meanwhile would run that tool again at the resume.
    const reply = created && !this.meter.budgeted && !this.pending
      ? await this.openedWithCall(stepId, created, prompt, toolSpecs)
      : (await this.openMeteredStep(stepId, created, prompt.promptTokens, this.maxOutputTokens())) && (await this.requestModel(stepId, prompt, toolSpecs));
    if (!reply) return false;
    this.recordModelReply(stepId, reply, await this.checkAnswer(reply));
    return true;
  }

  /**
   * The step's opening write and the model call at once (a run with no budget, and nothing else
   * in the write: the run's first call, a call after a resume): the call does not wait for the
   * write, which cost one transaction of latency. The reply is used only once the write is in;
   * a refused or failed write (lease lost, run being cancelled) aborts the call, which settles
   * before the run moves on. Streamed deltas wait for the write, so `step.created` comes first.
   */
  private async openedWithCall(stepId: string, created: StepRow, prompt: BuiltPrompt, toolSpecs: ToolSpec[]): Promise<ModelReply | null> {
    const call = new AbortController();
    const opened = this.openMeteredStep(stepId, created, prompt.promptTokens, this.maxOutputTokens());
    const outcome = opened.then((ok) => ({ ok }), (error: unknown) => ({ ok: false, error }));
    void outcome.then((o) => o.ok || call.abort());
    const replying = this.requestModel(stepId, prompt, toolSpecs, undefined, { opened, signal: call.signal });
    replying.catch(() => {}); // awaited below, once the write is in
    const o = await outcome;
    if (o.ok) return replying;
    await replying.catch(() => {});
    if ("error" in o) throw o.error;
    return null;
  }

  /** What a reply may take at most: the part of the window the prompt leaves free for it, or less with max_output_tokens (sent as max_tokens). */
  private maxOutputTokens() {
    const reserve = defaultReserve(this.agent.contextWindow);
    return this.opts.maxOutputTokens === null ? reserve : Math.min(reserve, this.opts.maxOutputTokens);
  }

  /**
   * Opens a metered step (model_call, summarize): its "before" write, holding what the call may
   * use against the run's budget and its key's daily cap in the same transaction. False when the
   * run stopped: the hold would exceed a limit (failed, budget_exceeded) or it is being cancelled.
   */
  private async openMeteredStep(stepId: string, created: StepRow | undefined, promptTokens: number, maxOutputTokens: number): Promise<boolean> {
    const hold = await this.meter.hold(this.run.model, promptTokens, maxOutputTokens);
    const reserveHold = this.meter.reserveWork(stepId, hold);
    let started;
    try {
      started = await this.write({
        work: async (tx, run) => {
          if (created) await tx.insert(runSteps).values(created);
          await reserveHold?.(tx, run);
        },
        events: created ? [{ type: "step.created", data: stepOut(created) }] : [],
      });
    } catch (err) {
      if (!(err instanceof BudgetExceededError)) throw err;
      await this.fail("budget_exceeded", err.message, created ? undefined : { stepId });
      return false;
    }
    if (created) this.remember(created);
    if (started!.run.status === "cancelling") return !(await this.cancel());
    return true;
  }

  /** The parsed answer (or its mismatch) of a final reply of a run with a JSON response_format. */
  private async checkAnswer(reply: ModelReply): Promise<Pick<ModelOutput, "parsed" | "output_error">> {
    const format = this.opts.responseFormat;
    if (!format || reply.tool_calls.length) return {};
    const checked = await checkOutput(format, reply.content, this.run.id, this.deps.tools());
    return "error" in checked ? { output_error: checked.error } : { parsed: checked.parsed };
  }

  /**
   * tool_choice applies until the run's first tool call (then auto, so a forced call cannot
   * loop: the Agents SDK's reset_tool_choice); past max_tool_calls the model must answer (none).
   */
  private toolChoiceNow(): ToolChoice | null {
    const made = toolCallsMade(this.steps);
    if (this.opts.maxToolCalls !== null && made >= this.opts.maxToolCalls) return "none";
    return made === 0 ? this.opts.toolChoice : null;
  }

  /** The prompt of the next model call; null when the run failed (context window exceeded). */
  private async preparePrompt(): Promise<{ prompt: BuiltPrompt; toolSpecs: ToolSpec[] } | null> {
    const toolSpecs: ToolSpec[] = this.tools.map((t) => ({ type: "function", function: { name: t.name, description: t.description, parameters: t.parameters } }));
    // Memory blocks may change during a run (memory tools, the API): read before every call but the first.
    const blocks = await (this.prefetchedBlocks ?? this.readBlocksAhead());
    this.prefetchedBlocks = null;
    if (this.agent.contextStrategy === "summarize" && !(await this.compact(blocks, toolSpecs))) return null;
    const history = [...this.history.map((h) => h.message), ...transcript(this.steps, this.opts.responseFormat)];
    let prompt;
    try {
      const instructions = withSummary(this.opts.instructions, this.summary);
      prompt = await buildPromptSliced({ instructions, memoryBlocks: blocks, history, tools: toolSpecs, contextWindow: this.agent.contextWindow });
    } catch (err) {
      if (err instanceof ContextWindowExceededError) {
        await this.fail("context_window_exceeded", err.message);
        return null;
      }
      throw err;
    }
    return { prompt, toolSpecs };
  }

  /** The model call itself: streamed deltas, its span and latency; null when it failed (the run failed with its error). */
  /** `started`: the step's opening write still in flight (openedWithCall) and the call's own abort signal. */
  private async requestModel(stepId: string, prompt: Pick<BuiltPrompt, "messages" | "promptTokens">, toolSpecs: ToolSpec[], summaryMaxTokens?: number, started?: { opened: Promise<boolean>; signal: AbortSignal }): Promise<ModelReply | null> {
    // A summarize request: not streamed, none of the run's sampling options or response format, its reply bounded.
    const summarizing = summaryMaxTokens !== undefined;
    const stream = !summarizing && this.run.stream;
    const params = summarizing ? { max_tokens: summaryMaxTokens } : modelParams(this.opts, { hasTools: toolSpecs.length > 0, toolChoice: this.toolChoiceNow() });
    const t0 = performance.now();
    const deltas = stream ? new DeltaWriter(this, stepId, this.deps.deltaFlushMs, started?.opened) : undefined;
    const { tracing } = this.deps;
    const span = tracing.enabled
      ? tracing.start(`chat ${this.run.model}`, { kind: "client", attributes: { "gen_ai.operation.name": "chat", "gen_ai.request.model": this.run.model, "agentos.step_id": stepId, "agentos.prompt_tokens_estimated": prompt.promptTokens } })
      : undefined;
    let firstDelta = 0;
    try {
      const reply = await this.deps.model.complete({
        model: this.run.model,
        messages: prompt.messages,
        tools: toolSpecs.length ? toolSpecs : undefined,
        params,
        stream,
        signal: started ? AbortSignal.any([this.signal, started.signal]) : this.signal,
        onDelta: deltas
          ? (text) => {
              firstDelta ||= performance.now();
              deltas.push(storableText(text));
            }
          : undefined,
      });
      await deltas?.close();
      span?.set({
        "gen_ai.response.model": reply.model || this.run.model,
        "gen_ai.usage.input_tokens": reply.usage.prompt_tokens,
        "gen_ai.usage.output_tokens": reply.usage.completion_tokens,
        "agentos.tool_calls": reply.tool_calls.length,
        ...(firstDelta ? { "agentos.time_to_first_token_ms": Math.round(firstDelta - t0) } : {}),
      });
      // Stored as it came unless the database cannot hold it (a NUL, a lone surrogate): a failed write would call the model again.
      return { ...reply, model: storableText(reply.model ?? ""), content: reply.content === null ? null : storableText(reply.content), tool_calls: storableJson(reply.tool_calls) };
    } catch (err) {
      span?.fail(err);
      await deltas?.close().catch(() => {});
      // The step was never opened (the write was refused): the run already stopped; nothing to record.
      if (started && !(await started.opened.catch(() => false))) return null;
      if (err instanceof ModelError) {
        await this.fail(err.code, err.message, { stepId, status: err.status, attempts: err.attempts });
        return null;
      }
      throw err;
    } finally {
      span?.end();
      this.deps.metrics.runStepDuration.observe((performance.now() - t0) / 1000, { kind: "model" });
    }
  }

  /** The model step completed with its reply and usage (written with the next write). */
  private recordModelReply(stepId: string, reply: ModelReply, answer: Pick<ModelOutput, "parsed" | "output_error">) {
    const used = new Set(this.steps.filter((s) => s.toolCallId).map((s) => s.toolCallId!));
    const output: ModelOutput = { content: reply.content, tool_calls: uniqueToolCallIds(reply.tool_calls, used), ...answer };
    const u = reply.usage;
    const model = reply.model || this.run.model;
    const done = { status: "completed", output, usage: u, completedAt: new Date() };
    this.closeStep(this.steps.find((s) => s.id === stepId)!, done, {
      set: { stepCount: sqlAdd(runs.stepCount, 1), usage: sqlUsage(u) },
      work: this.meter.settleWork(stepId, this.run.model, u),
      domainEvent: (run) => ({
        type: "step.completed",
        payload: { run_id: run.id, thread_id: run.threadId, agent_id: run.agentId, step_id: stepId, kind: "model_call", model, usage: u },
      }),
      events: (closed) => [{ type: "step.completed", data: stepOut(closed) }],
    });
  }

  /**
   * Closes a step: what the loop decides next sees it done at once; its row, its domain event
   * and its run events are written with the next write (one transaction per step boundary).
   */
  private closeStep(open: StepRow, done: Partial<StepRow>, opts: CloseOptions) {
    this.pending = this.closing(open, done, opts);
  }

  /** Closes a step now, in its own fenced write (a call of a parallel batch: the others are still running). */
  private async closeStepNow(open: StepRow, done: Partial<StepRow>, opts: CloseOptions) {
    const close = this.closing(open, done, opts);
    await this.store.fenced(this.run.id, this.owner, { ...close, pipelined: true, known: this.known });
  }

  private closing(open: StepRow, done: Partial<StepRow>, opts: CloseOptions): PendingClose {
    const closed: StepRow = { ...open, ...done };
    this.remember(closed);
    return {
      set: opts.set,
      work: async (tx, run) => {
        await Promise.all([tx.update(runSteps).set(done).where(eq(runSteps.id, open.id)), emitEvent(tx, { orgId: run.orgId, ...opts.domainEvent(run) }), opts.work?.(tx, run)]);
      },
      events: opts.events(closed),
    };
  }

  async writeDelta(stepId: string, text: string) {
    await this.store.fenced(this.run.id, this.owner, { events: [{ type: "message.delta", data: { step_id: stepId, delta: text } }] });
  }

  private async threadSummary() {
    const [row] = await this.store.db.select().from(threadSummaries).where(and(eq(threadSummaries.threadId, this.run.threadId), eq(threadSummaries.orgId, this.run.orgId)));
    return row ?? null;
  }

  private async threadHistory(): Promise<HistoryMessage[]> {
    const rows = await this.store.db
      .select()
      .from(messages)
      // Compared in SQL: a JS Date would truncate PostgreSQL's microseconds and drop the input message.
      .where(and(eq(messages.threadId, this.run.threadId), lte(messages.createdAt, sql`(select coalesce(${runs.promotedAt}, ${runs.createdAt}) from ${runs} where ${runs.id} = ${this.run.id})`)))
      .orderBy(desc(messages.id))
      .limit(HISTORY_LIMIT);
    return rows.reverse().map((m) => {
      const msg: ChatMessage = { role: m.role as ChatMessage["role"], content: m.content };
      if (m.toolCalls?.length) msg.tool_calls = m.toolCalls as ToolCall[];
      if (m.toolCallId) msg.tool_call_id = m.toolCallId;
      return { id: m.id, message: msg };
    });
  }

  // ---------------------------------------------------------------- compaction

  /**
   * context_strategy "summarize": while the prompt would not fit the window, the oldest thread
   * messages are folded into the thread's summary, one summarize step at a time (a step
   * interrupted by a crash is done again with the same id and messages). False when the run stopped.
   */
  private async compact(blocks: Awaited<ReturnType<MemoryContract["listBlocks"]>>, toolSpecs: ToolSpec[]): Promise<boolean> {
    const window = this.agent.contextWindow;
    const tail = transcript(this.steps, this.opts.responseFormat);
    await precountTokens([this.opts.instructions, ...blocks.map((b) => b.value), ...promptTexts([...this.history.map((h) => h.message), ...tail], toolSpecs)]);
    const tokensOf = (messages: ChatMessage[]) => messages.reduce((n, m) => n + countMessageTokens(m), 0);
    const budget = window - defaultReserve(window) - REPLY_PRIMING_TOKENS - countToolTokens(toolSpecs) - tokensOf(tail);
    for (;;) {
      const open = this.steps.find((s) => s.kind === "summarize" && s.status === "in_progress");
      let fold: HistoryMessage[];
      if (open) {
        const through = (open.input as { through_message_id: string }).through_message_id;
        fold = this.history.filter((h) => h.id <= through);
      } else {
        const history = this.history.map((h) => h.message);
        const system = (summary: string | null): ChatMessage => ({ role: "system", content: renderSystemPrompt(withSummary(this.opts.instructions, summary), blocks) });
        if (countMessageTokens(system(this.summary)) + tokensOf(history) <= budget) return true;
        // Room for the history next to a summary of the largest size allowed.
        const free = budget - countMessageTokens(system(null)) - summaryMaxTokens(window) - 32;
        fold = this.history.slice(0, messagesToFold(history, free));
      }
      if (!fold.length) return true; // nothing left to fold: truncation of the oldest steps takes over
      if (!(await this.summarize(open, fold))) return false;
    }
  }

  /** One summarize step: the request, the step opened (and its hold), the call, the step closed with the thread's new summary. */
  private async summarize(open: StepRow | undefined, candidates: HistoryMessage[]): Promise<boolean> {
    const window = this.agent.contextWindow;
    const request = summarizeRequest(this.summary, candidates, window);
    const through = request.folded.at(-1)!.id;
    const stepId = open?.id ?? newId("stp");
    const input = { model: this.run.model, prompt_tokens: request.promptTokens, folded_messages: request.folded.length, through_message_id: through };
    const created = open ? undefined : newStep({ id: stepId, orgId: this.run.orgId, runId: this.run.id, kind: "summarize", input });
    if (!(await this.openMeteredStep(stepId, created, request.promptTokens, summaryMaxTokens(window)))) return false;

    const reply = await this.requestModel(stepId, request, [], summaryMaxTokens(window));
    if (!reply) return false;
    const summary = cutToTokens(reply.content ?? "", summaryMaxTokens(window));
    const u = reply.usage;
    const model = reply.model || this.run.model;
    const { threadId, orgId } = this.run;
    this.closeStep(this.steps.find((s) => s.id === stepId)!, { status: "completed", output: { summary, through_message_id: through }, usage: u, completedAt: new Date() }, {
      set: { usage: sqlUsage(u) },
      work: async (tx, run) => {
        const kept = { throughMessageId: through, content: summary, stepId, updatedAt: new Date() };
        await Promise.all([
          tx.insert(threadSummaries).values({ threadId, orgId, ...kept }).onConflictDoUpdate({ target: threadSummaries.threadId, set: kept }),
          this.meter.settleWork(stepId, this.run.model, u)?.(tx, run),
        ]);
      },
      domainEvent: (run) => ({
        type: "step.completed",
        payload: { run_id: run.id, thread_id: run.threadId, agent_id: run.agentId, step_id: stepId, kind: "summarize", model, usage: u },
      }),
      events: (closed) => [{ type: "step.completed", data: stepOut(closed) }],
    });
    this.summary = summary;
    this.history = this.history.filter((h) => h.id > through);
    return true;
  }

  // ---------------------------------------------------------------- tool calls

  /**
   * Executes the server-side tool calls not done yet — several at once when parallel_tool_calls
   * is on — then pauses once for all client/approval ones. False when the run stopped.
   */
  private async runTools(calls: ToolCall[]): Promise<boolean> {
    const plan = planToolCalls(calls, this.steps, this.tools, this.opts.maxToolCalls);
    // The next model call's blocks, read while the tools run, unless one of them is a memory tool
    // (then, and for blocks read before a resumed run's tools, the next call reads them again).
    const blocksAhead = plan.execute.every((p) => p.tool?.kind !== "builtin") ? this.readBlocksAhead() : null;
    if (plan.execute.length > 1 && this.opts.parallelToolCalls) {
      if (!(await this.runToolBatch(plan.execute))) return false;
    } else {
      for (const planned of plan.execute) if (!(await this.runTool(planned))) return false;
    }
    if (plan.pause.length) {
      await this.requireAction(plan.pause);
      return false;
    }
    this.prefetchedBlocks = blocksAhead;
    return true;
  }

  /** One tool call: its step opened (with the previous step's close), executed, closed with the next write. */
  private async runTool(planned: PlannedCall): Promise<boolean> {
    const open = this.openToolStep(planned);
    const r = await this.write({
      work: async (tx) => {
        await open.work(tx);
      },
      events: open.events,
    });
    this.remember(open.step);
    if (r!.run.status === "cancelling") return !(await this.cancel());
    this.throwIfAborted();
    const { result, durationMs } = await this.executeTool(planned, open.step.id);
    this.closeStep(open.step, toolDone(result), this.toolCloseOptions(planned, open.step.id, result, durationMs));
    return true;
  }

  /**
   * The calls of one turn at once (at most toolCallConcurrency): their steps opened in one
   * write, each closed in its own fenced write as soon as it ends, so a crash re-runs only the
   * calls whose result was not written. Results reach the model in the order it asked (transcript).
   */
  private async runToolBatch(batch: PlannedCall[]): Promise<boolean> {
    const opens = batch.map((p) => this.openToolStep(p));
    const r = await this.write({
      work: async (tx) => {
        await Promise.all(opens.map((o) => o.work(tx)));
      },
      events: opens.flatMap((o) => o.events),
    });
    for (const o of opens) this.remember(o.step);
    if (r!.run.status === "cancelling") return !(await this.cancel());
    this.throwIfAborted();
    await mapBounded(batch, this.deps.toolCallConcurrency, async (planned) => {
      const step = opens[batch.indexOf(planned)].step;
      const { result, durationMs } = await this.executeTool(planned, step.id);
      await this.closeStepNow(step, toolDone(result), this.toolCloseOptions(planned, step.id, result, durationMs));
    });
    return true;
  }

  /** The "before" write of a tool call: a new step, or an interrupted / approved one set in_progress again. */
  private openToolStep({ call, tool, existing }: PlannedCall): { step: StepRow; work: (tx: Tx) => Promise<unknown>; events: EventSpec[] } {
    const stepId = existing?.id ?? newId("stp");
    // An interrupted call (in_progress, its worker died) runs again: at-least-once for it, never for completed ones.
    const fresh = !existing || existing.status === "approved";
    const step: StepRow = existing
      ? { ...existing, status: "in_progress" }
      : newStep({ id: stepId, orgId: this.run.orgId, runId: this.run.id, kind: "tool_call", toolCallId: call.id, toolName: call.function.name, input: { tool_id: tool?.id ?? null, arguments: call.function.arguments } });
    return {
      step,
      work: (tx) => (existing ? tx.update(runSteps).set({ status: "in_progress" }).where(eq(runSteps.id, stepId)) : tx.insert(runSteps).values(step)),
      events: fresh
        ? [
            { type: "step.created", data: stepOut(step) },
            { type: "tool_call.created", data: { step_id: stepId, tool_call_id: call.id, name: call.function.name, arguments: call.function.arguments } },
          ]
        : [],
    };
  }

  /** Runs the call (or answers its refusal) in its span; its duration is observed. */
  private async executeTool({ call, tool, refusal }: PlannedCall, stepId: string): Promise<{ result: ToolCallResult; durationMs: number }> {
    const t0 = performance.now();
    const execute = (): Promise<ToolCallResult> =>
      tool && !refusal
        ? abortable(
            this.deps.tools().execute({ org_id: this.run.orgId, agent_id: this.run.agentId, run_id: this.run.id, tool_call_id: call.id, tool_id: tool.id, arguments: call.function.arguments }),
            this.signal,
          )
        : Promise.resolve({ ok: false as const, error: refusal ?? { code: "unknown_tool", message: `No tool named '${call.function.name}' is available to this agent.` } });
    const result = this.deps.tracing.enabled
      ? await this.deps.tracing.inSpan(`tool ${call.function.name}`, { kind: "internal", attributes: { "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": call.function.name, "agentos.tool.kind": tool?.kind ?? "unknown", "agentos.step_id": stepId } }, async (span) => {
          const r = await execute();
          span.set({ "agentos.tool.outcome": r.ok ? "ok" : r.error.code });
          return r;
        })
      : await execute();
    const durationMs = Math.round(performance.now() - t0);
    this.deps.metrics.runStepDuration.observe(durationMs / 1000, { kind: "tool" });
    return { result, durationMs };
  }

  private toolCloseOptions({ call, tool }: PlannedCall, stepId: string, result: ToolCallResult, durationMs: number): CloseOptions {
    return {
      domainEvent: (run) => ({
        type: "tool_call.completed",
        payload: { run_id: run.id, agent_id: run.agentId, step_id: stepId, tool_call_id: call.id, tool_id: tool?.id ?? null, name: call.function.name, kind: tool?.kind ?? null, ok: result.ok, duration_ms: durationMs },
      }),
      events: (closed) => [
        { type: "step.completed", data: stepOut(closed) },
        { type: "tool_call.completed", data: { step_id: stepId, tool_call_id: call.id, name: call.function.name, ok: result.ok, output: closed.output, error: closed.error } },
      ],
    };
  }

  private async requireAction(pending: RequiredAction["tool_calls"]) {
    const required: RequiredAction = { type: "submit_tool_outputs", tool_calls: pending };
    const r = await this.write({
      // A cancel accepted meanwhile wins over pausing.
      guard: eq(runs.status, "in_progress"),
      set: { status: "requires_action", requiredAction: required, requiresActionSince: new Date(), leaseOwner: null, leaseExpiresAt: null },
      work: async (tx, run) => {
        await Promise.all([
          tx
            .insert(runSteps)
            .values(pending.map((c) => ({
              id: newId("stp"), orgId: run.orgId, runId: run.id, kind: "tool_call", status: "requires_action",
              toolCallId: c.id, toolName: c.function.name, input: { tool_id: c.tool_id, arguments: c.function.arguments, action: c.action },
            })))
            .onConflictDoNothing(),
          emitEvent(tx, { orgId: run.orgId, type: "run.requires_action", payload: { ...runPayload(run), required_action: required } }),
        ]);
      },
      events: [
        ...pending.map((c) => ({ type: "tool_call.created" as const, data: { tool_call_id: c.id, name: c.function.name, arguments: c.function.arguments, action: c.action } })),
        { type: "run.requires_action", data: (run: RunRow) => runOut(run) },
      ],
    });
    if (!r) {
      if (!(await this.cancel())) throw new LeaseLostError(this.run.id);
      return;
    }
    this.finished = true;
    this.deps.metrics.runs.inc({ status: "requires_action" });
  }

  // ---------------------------------------------------------------- endings

  /** finishRun, fenced by our lease, with the pending closing write folded in. */
  private async finish(status: FinalStatus, opts: { error?: { code: string; message: string }; guard?: SQL; set?: RunSet; events?: EventSpec[]; work?: (tx: Tx, run: RunRow) => Promise<void> } = {}) {
    const pending = this.pending;
    const r = await finishRun(this.store, this.run.id, {
      status,
      error: opts.error,
      fence: this.owner,
      guard: opts.guard,
      set: { ...pending?.set, ...opts.set },
      events: [...(pending?.events ?? []), ...(opts.events ?? [])],
      work: async (tx, run) => {
        await Promise.all([pending?.work(tx, run), opts.work?.(tx, run)]);
      },
    });
    if (r) {
      if (this.pending === pending) this.pending = null;
      this.finished = true;
    }
    return r;
  }

  private async complete(content: string, parsed: unknown) {
    const r = await this.finish("completed", {
      // A cancel accepted during the last call wins: the run ends cancelled, not completed.
      guard: eq(runs.status, "in_progress"),
      work: async (tx, run) => {
        await tx.insert(messages).values({ id: newId("msg"), orgId: run.orgId, threadId: run.threadId, role: "assistant", content, runId: run.id, parsed: parsed ?? null });
      },
    });
    if (!r) {
      if (!(await this.cancel())) throw new LeaseLostError(this.run.id);
      return;
    }
    this.deps.metrics.runs.inc({ status: "completed" });
  }

  async fail(code: string, message: string, extra?: { stepId?: string; status?: number; attempts?: number }) {
    // A failed model call is a step that ended too: it counts and gets its end event.
    const step = extra?.stepId ? this.steps.find((s) => s.id === extra.stepId) : undefined;
    const failed = step && { ...step, status: "failed", error: { code, message, http_status: extra?.status ?? null, attempts: extra?.attempts ?? null }, completedAt: new Date() };
    const r = await this.finish("failed", {
      error: { code, message },
      set: failed && step.kind === "model_call" ? { stepCount: sqlAdd(runs.stepCount, 1) } : undefined,
      events: failed ? [{ type: "step.failed", data: stepOut(failed) }] : [],
      work: async (tx) => {
        if (failed) await tx.update(runSteps).set({ status: failed.status, error: failed.error, completedAt: failed.completedAt }).where(eq(runSteps.id, failed.id));
      },
    });
    if (!r) throw new LeaseLostError(this.run.id);
    this.deps.metrics.runs.inc({ status: "failed" });
  }

  /** Finishes an accepted cancel. True when this worker wrote `cancelled`. */
  async cancel(): Promise<boolean> {
    const r = await this.finish("cancelled");
    if (r) this.deps.metrics.runs.inc({ status: "cancelled" });
    return r !== null;
  }

  private throwIfAborted() {
    if (this.signal.aborted) throw new DOMException(`run aborted: ${String(this.signal.reason)}`, "AbortError");
  }
}

/** A new step row, built here so that its events need not read it back. */
function newStep(s: Pick<StepRow, "id" | "orgId" | "runId" | "kind" | "input"> & Partial<StepRow>): StepRow {
  return { status: "in_progress", toolCallId: null, toolName: null, output: null, usage: null, error: null, createdAt: new Date(), completedAt: null, ...s };
}

/** Coalesces streamed text into one persisted message.delta event per interval. */
class DeltaWriter {
  private buffer = "";
  private timer: ReturnType<typeof setTimeout> | null = null;
  private chain: Promise<void>;
  private failed: unknown = null;

  /** `opened`: the step's opening write, when it is still in flight; deltas are written after it. */
  constructor(
    private exec: RunExecution,
    private stepId: string,
    private flushMs: number,
    opened?: Promise<boolean>,
  ) {
    // A step that was never opened gets no deltas: they are dropped, and the call is told.
    this.chain = opened
      ? opened.then(
          (ok) => void (ok || (this.failed = new Error("the step's opening write was refused"))),
          (err) => void (this.failed = err),
        )
      : Promise.resolve();
  }

  push(text: string) {
    if (this.failed) throw this.failed;
    this.buffer += text;
    this.timer ??= setTimeout(() => this.flush(), this.flushMs);
  }

  private flush() {
    this.timer = null;
    if (!this.buffer) return;
    const text = this.buffer;
    this.buffer = "";
    this.chain = this.chain.then(() => (this.failed ? undefined : this.exec.writeDelta(this.stepId, text))).catch((err) => {
      this.failed = err;
    });
  }

  async close() {
    if (this.timer) clearTimeout(this.timer);
    this.flush();
    await this.chain;
    if (this.failed) throw this.failed;
  }
}

/** The run's own exchange so far: each model reply with tool calls, then their results. */
export function transcript(steps: StepRow[], format: JsonResponseFormat | null = null): ChatMessage[] {
  const byCall = new Map(steps.filter((s) => s.kind === "tool_call" && s.toolCallId).map((s) => [s.toolCallId!, s]));
  const out: ChatMessage[] = [];
  for (const s of steps) {
    if (s.kind !== "model_call" || s.status !== "completed") continue;
    const o = s.output as ModelOutput;
    if (!o.tool_calls?.length) {
      out.push({ role: "assistant", content: o.content });
      // An answer that failed the response_format: the corrective turn that follows it.
      if (o.output_error !== undefined && format) out.push(correctiveMessage(format, o.output_error));
      continue;
    }
    out.push({ role: "assistant", content: o.content, tool_calls: o.tool_calls });
    for (const c of o.tool_calls) {
      const t = byCall.get(c.id);
      if (t && DONE.has(t.status)) out.push({ role: "tool", tool_call_id: c.id, content: toolResultContent(t) });
    }
  }
  return out;
}

/** Stops waiting when the signal aborts (a remote tool call cannot be recalled, but the run stops). */
function abortable<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new DOMException("aborted", "AbortError"));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new DOMException("aborted", "AbortError"));
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

const sqlAdd = (col: Column, n: number) => sql`${col} + ${n}::int`;
/** Adds a call's usage to the run's; the run's is `estimated` once any call's was. */
const sqlUsage = (u: ModelUsage) =>
  sql`jsonb_build_object(
    'prompt_tokens', coalesce((${runs.usage}->>'prompt_tokens')::int, 0) + ${u.prompt_tokens}::int,
    'completion_tokens', coalesce((${runs.usage}->>'completion_tokens')::int, 0) + ${u.completion_tokens}::int,
    'total_tokens', coalesce((${runs.usage}->>'total_tokens')::int, 0) + ${u.total_tokens}::int,
    'estimated', coalesce((${runs.usage}->>'estimated')::boolean, false) or ${u.estimated === true}::boolean)`;

