/**
 * One execution of a run by the worker that holds its lease. The loop is driven by the
 * persisted steps, so a redelivered run resumes exactly where its predecessor stopped:
 *
 *   no model step yet / all tool calls of the last one done → model call
 *   last model step interrupted (in_progress)               → the same model call again
 *   last model step asked for tools                         → execute the ones not completed
 *                                                              (client / approval → requires_action)
 *   last model step answered without tools                  → assistant message, completed
 *
 * Every model call and tool call is written as a step before it starts and after it ends
 * (fenced by the lease). The run's status is re-read at every step boundary, and the
 * AbortSignal (cancel, lost lease, shutdown) aborts the in-flight model request.
 */
import { and, desc, eq, lte, sql, type Column } from "drizzle-orm";
import { agents, messages, runSteps, runs } from "../../../schema";
import { newId } from "../../platform/ids";
import type { Logger } from "../../platform/logging";
import type { Metrics } from "../../platform/metrics";
import { type ChatMessage, ModelError, type ModelProvider, type ToolCall, type ToolSpec } from "../../platform/model/openai";
import { buildPrompt, ContextWindowExceededError } from "../../platform/model/prompt";
import { emitEvent } from "../../platform/outbox";
import type { MemoryContract } from "../memory/contract";
import { LeaseLostError, type RunStore } from "../orchestration/store";
import { finishRun, runPayload } from "../orchestration/transitions";
import { runOut, stepOut, type RequiredAction, type RunRow, type StepRow } from "../orchestration/types";
import type { RunTool, ToolsContract } from "../tools/contract";

export type AbortReason = "cancel" | "lease_lost" | "shutdown" | "halt";

export interface LoopDeps {
  store: RunStore;
  log: Logger;
  metrics: Metrics;
  model: ModelProvider;
  memory: () => MemoryContract;
  tools: () => ToolsContract;
  deltaFlushMs: number;
}

type AgentRow = typeof agents.$inferSelect;
interface ModelOutput {
  content: string | null;
  tool_calls: ToolCall[];
}

const HISTORY_LIMIT = 1000;
const DONE = new Set(["completed", "failed"]);

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

export class RunExecution {
  private agent!: AgentRow;
  private tools: RunTool[] = [];

  constructor(
    private deps: LoopDeps,
    private run: RunRow,
    private owner: string,
    private signal: AbortSignal,
    private abort: (reason: AbortReason) => void,
  ) {}

  private get store() {
    return this.deps.store;
  }

  async execute(): Promise<void> {
    const [agent] = await this.store.db.select().from(agents).where(and(eq(agents.id, this.run.agentId), eq(agents.orgId, this.run.orgId)));
    if (!agent) return this.fail("agent_not_found", `The agent ${this.run.agentId} of this run was deleted.`);
    this.agent = agent;
    if (agent.tools.length) {
      const { tools, missing } = await this.deps.tools().getRunTools(this.run.orgId, agent.tools);
      if (missing.length) this.deps.log.warn("agent refers to tools that no longer exist", { run_id: this.run.id, missing });
      this.tools = tools;
    }
    for (;;) {
      this.throwIfAborted();
      if (await this.cancelIfRequested()) return;
      const steps = await this.store.steps(this.run.id);
      const modelSteps = steps.filter((s) => s.kind === "model_call");
      const last = modelSteps.at(-1);
      if (!last || last.status === "in_progress") {
        if (!(await this.callModel(steps, last))) return;
        continue;
      }
      if (last.status !== "completed") return this.fail("internal_error", `model step ${last.id} is ${last.status}`);
      const calls = (last.output as ModelOutput).tool_calls ?? [];
      if (calls.length === 0) return this.complete((last.output as ModelOutput).content ?? "");
      const byCall = new Map(steps.filter((s) => s.toolCallId).map((s) => [s.toolCallId!, s]));
      if (calls.every((c) => DONE.has(byCall.get(c.id)?.status ?? ""))) {
        if (!(await this.callModel(steps, undefined))) return;
        continue;
      }
      if (modelSteps.length >= this.agent.maxSteps) {
        return this.fail("max_steps_exceeded", `The agent still requested tools after max_steps (${this.agent.maxSteps}) model calls.`);
      }
      if (!(await this.runTools(calls, byCall))) return;
    }
  }

  // ---------------------------------------------------------------- model calls

  /** Returns false when the run stopped (cancelled, failed). */
  private async callModel(steps: StepRow[], interrupted: StepRow | undefined): Promise<boolean> {
    if (steps.filter((s) => s.kind === "model_call" && s.status === "completed").length >= this.agent.maxSteps) {
      await this.fail("max_steps_exceeded", `max_steps (${this.agent.maxSteps}) model calls reached.`);
      return false;
    }
    const toolSpecs: ToolSpec[] = this.tools.map((t) => ({ type: "function", function: { name: t.name, description: t.description, parameters: t.parameters } }));
    const blocks = await this.deps.memory().listBlocks(this.run.orgId, this.agent.id);
    const history = [...(await this.threadHistory()), ...transcript(steps)];
    let prompt;
    try {
      prompt = buildPrompt({ instructions: this.agent.instructions, memoryBlocks: blocks, history, tools: toolSpecs, contextWindow: this.agent.contextWindow });
    } catch (err) {
      if (err instanceof ContextWindowExceededError) {
        await this.fail("context_window_exceeded", err.message);
        return false;
      }
      throw err;
    }

    const stepId = interrupted?.id ?? newId("stp");
    const input = { model: this.run.model, prompt_tokens: prompt.promptTokens, messages: prompt.messages.length, dropped_messages: prompt.droppedMessages };
    const started = await this.store.fenced(this.run.id, this.owner, {
      work: async (tx) => {
        if (interrupted) return interrupted;
        const [row] = await tx.insert(runSteps).values({ id: stepId, orgId: this.run.orgId, runId: this.run.id, kind: "model_call", status: "in_progress", input }).returning();
        return row;
      },
      events: interrupted ? [] : [{ type: "step.created", data: (_r: RunRow, step: StepRow) => stepOut(step) }],
    });
    if (started.run.status === "cancelling") return !(await this.cancel());

    const t0 = performance.now();
    const deltas = this.run.stream ? new DeltaWriter(this, stepId, this.deps.deltaFlushMs) : undefined;
    let reply;
    try {
      reply = await this.deps.model.complete({
        model: this.run.model,
        messages: prompt.messages,
        tools: toolSpecs.length ? toolSpecs : undefined,
        stream: this.run.stream,
        signal: this.signal,
        onDelta: deltas ? (text) => deltas.push(text) : undefined,
      });
      await deltas?.close();
    } catch (err) {
      await deltas?.close().catch(() => {});
      if (err instanceof ModelError) {
        await this.fail(err.code, err.message, { stepId, status: err.status, attempts: err.attempts });
        return false;
      }
      throw err;
    } finally {
      this.deps.metrics.runStepDuration.observe((performance.now() - t0) / 1000, { kind: "model" });
    }

    const used = new Set(steps.filter((s) => s.toolCallId).map((s) => s.toolCallId!));
    const output: ModelOutput = { content: reply.content, tool_calls: uniqueToolCallIds(reply.tool_calls, used) };
    const u = reply.usage;
    await this.store.fenced(this.run.id, this.owner, {
      set: {
        stepCount: sqlAdd(runs.stepCount, 1),
        usage: sqlUsage(u),
      },
      work: async (tx, run) => {
        const [step] = await tx
          .update(runSteps)
          .set({ status: "completed", output, usage: u, completedAt: new Date() })
          .where(eq(runSteps.id, stepId))
          .returning();
        await emitEvent(tx, {
          orgId: run.orgId,
          type: "step.completed",
          payload: { run_id: run.id, thread_id: run.threadId, agent_id: run.agentId, step_id: stepId, kind: "model_call", model: reply.model || run.model, usage: u },
        });
        return step;
      },
      events: [{ type: "step.completed", data: (_r: RunRow, step: StepRow) => stepOut(step) }],
    });
    return true;
  }

  async writeDelta(stepId: string, text: string) {
    await this.store.fenced(this.run.id, this.owner, { events: [{ type: "message.delta", data: { step_id: stepId, delta: text } }] });
  }

  private async threadHistory(): Promise<ChatMessage[]> {
    const rows = await this.store.db
      .select()
      .from(messages)
      // Compared in SQL: a JS Date would truncate PostgreSQL's microseconds and drop the input message.
      .where(and(eq(messages.threadId, this.run.threadId), lte(messages.createdAt, sql`(select ${runs.createdAt} from ${runs} where ${runs.id} = ${this.run.id})`)))
      .orderBy(desc(messages.id))
      .limit(HISTORY_LIMIT);
    return rows.reverse().map((m) => {
      const msg: ChatMessage = { role: m.role as ChatMessage["role"], content: m.content };
      if (m.toolCalls?.length) msg.tool_calls = m.toolCalls as ToolCall[];
      if (m.toolCallId) msg.tool_call_id = m.toolCallId;
      return msg;
    });
  }

  // ---------------------------------------------------------------- tool calls

  /** Executes the server-side tool calls not done yet; pauses for client/approval ones. False when the run stopped. */
  private async runTools(calls: ToolCall[], byCall: Map<string, StepRow>): Promise<boolean> {
    const byName = new Map(this.tools.map((t) => [t.name, t]));
    const pending: RequiredAction["tool_calls"] = [];
    for (const call of calls) {
      const step = byCall.get(call.id);
      if (step && DONE.has(step.status)) continue;
      const tool = byName.get(call.function.name);
      if (!tool) {
        if (!(await this.runTool(call, undefined, step))) return false;
        continue;
      }
      if (tool.kind === "client") {
        pending.push({ ...call, action: "output", tool_id: tool.id });
        continue;
      }
      if (tool.requires_approval && step?.status !== "approved") {
        pending.push({ ...call, action: "approval", tool_id: tool.id });
        continue;
      }
      if (!(await this.runTool(call, tool, step))) return false;
    }
    if (pending.length) {
      await this.requireAction(pending);
      return false;
    }
    return true;
  }

  private async runTool(call: ToolCall, tool: RunTool | undefined, existing: StepRow | undefined): Promise<boolean> {
    const stepId = existing?.id ?? newId("stp");
    // An interrupted call (in_progress, its worker died) runs again: at-least-once for it, never for completed ones.
    const fresh = !existing || existing.status === "approved";
    const started = await this.store.fenced(this.run.id, this.owner, {
      work: async (tx) => {
        if (existing) {
          const [row] = await tx.update(runSteps).set({ status: "in_progress" }).where(eq(runSteps.id, stepId)).returning();
          return row;
        }
        const [row] = await tx
          .insert(runSteps)
          .values({
            id: stepId, orgId: this.run.orgId, runId: this.run.id, kind: "tool_call", status: "in_progress",
            toolCallId: call.id, toolName: call.function.name, input: { tool_id: tool?.id ?? null, arguments: call.function.arguments },
          })
          .returning();
        return row;
      },
      events: fresh
        ? [
            { type: "step.created", data: (_r: RunRow, step: StepRow) => stepOut(step) },
            { type: "tool_call.created", data: { step_id: stepId, tool_call_id: call.id, name: call.function.name, arguments: call.function.arguments } },
          ]
        : [],
    });
    if (started.run.status === "cancelling") return !(await this.cancel());
    this.throwIfAborted();

    const t0 = performance.now();
    const result = tool
      ? await abortable(
          this.deps.tools().execute({ org_id: this.run.orgId, agent_id: this.run.agentId, run_id: this.run.id, tool_call_id: call.id, tool_id: tool.id, arguments: call.function.arguments }),
          this.signal,
        )
      : { ok: false as const, error: { code: "unknown_tool", message: `No tool named '${call.function.name}' is available to this agent.` } };
    const durationMs = Math.round(performance.now() - t0);
    this.deps.metrics.runStepDuration.observe(durationMs / 1000, { kind: "tool" });

    await this.store.fenced(this.run.id, this.owner, {
      work: async (tx, run) => {
        const [step] = await tx
          .update(runSteps)
          .set(result.ok
            ? { status: "completed", output: (result.output ?? null) as object, error: null, completedAt: new Date() }
            : { status: "failed", output: null, error: result.error, completedAt: new Date() })
          .where(eq(runSteps.id, stepId))
          .returning();
        await emitEvent(tx, {
          orgId: run.orgId,
          type: "tool_call.completed",
          payload: { run_id: run.id, agent_id: run.agentId, step_id: stepId, tool_call_id: call.id, tool_id: tool?.id ?? null, name: call.function.name, kind: tool?.kind ?? null, ok: result.ok, duration_ms: durationMs },
        });
        return step;
      },
      events: [
        { type: "step.completed", data: (_r: RunRow, step: StepRow) => stepOut(step) },
        { type: "tool_call.completed", data: (_r: RunRow, step: StepRow) => ({ step_id: stepId, tool_call_id: call.id, name: call.function.name, ok: result.ok, output: step.output, error: step.error }) },
      ],
    });
    return true;
  }

  private async requireAction(pending: RequiredAction["tool_calls"]) {
    const required: RequiredAction = { type: "submit_tool_outputs", tool_calls: pending };
    await this.store.fenced(this.run.id, this.owner, {
      set: { status: "requires_action", requiredAction: required, requiresActionSince: new Date(), leaseOwner: null, leaseExpiresAt: null },
      work: async (tx, run) => {
        await tx
          .insert(runSteps)
          .values(pending.map((c) => ({
            id: newId("stp"), orgId: run.orgId, runId: run.id, kind: "tool_call", status: "requires_action",
            toolCallId: c.id, toolName: c.function.name, input: { tool_id: c.tool_id, arguments: c.function.arguments, action: c.action },
          })))
          .onConflictDoNothing();
        await emitEvent(tx, { orgId: run.orgId, type: "run.requires_action", payload: { ...runPayload(run), required_action: required } });
      },
      events: [
        ...pending.map((c) => ({ type: "tool_call.created" as const, data: { tool_call_id: c.id, name: c.function.name, arguments: c.function.arguments, action: c.action } })),
        { type: "run.requires_action", data: (run: RunRow) => runOut(run) },
      ],
    });
    this.deps.metrics.runs.inc({ status: "requires_action" });
  }

  // ---------------------------------------------------------------- endings

  private async complete(content: string) {
    const r = await finishRun(this.store, this.run.id, {
      status: "completed",
      fence: this.owner,
      work: async (tx, run) => {
        await tx.insert(messages).values({ id: newId("msg"), orgId: run.orgId, threadId: run.threadId, role: "assistant", content, runId: run.id });
      },
    });
    if (!r) throw new LeaseLostError(this.run.id);
    this.deps.metrics.runs.inc({ status: "completed" });
  }

  async fail(code: string, message: string, extra?: { stepId?: string; status?: number; attempts?: number }) {
    const r = await finishRun(this.store, this.run.id, {
      status: "failed",
      error: { code, message },
      fence: this.owner,
      work: async (tx) => {
        if (extra?.stepId) {
          await tx.update(runSteps).set({ status: "failed", error: { code, message, http_status: extra.status ?? null, attempts: extra.attempts ?? null }, completedAt: new Date() })
            .where(eq(runSteps.id, extra.stepId));
        }
      },
    });
    if (!r) throw new LeaseLostError(this.run.id);
    this.deps.metrics.runs.inc({ status: "failed" });
  }

  /** Finishes an accepted cancel. True when this worker wrote `cancelled`. */
  async cancel(): Promise<boolean> {
    const r = await finishRun(this.store, this.run.id, { status: "cancelled", fence: this.owner });
    if (r) this.deps.metrics.runs.inc({ status: "cancelled" });
    return r !== null;
  }

  private throwIfAborted() {
    if (this.signal.aborted) throw new DOMException(`run aborted: ${String(this.signal.reason)}`, "AbortError");
  }

  /** The mandatory check at every step boundary: a cancel accepted by any process stops the run here. */
  private async cancelIfRequested(): Promise<boolean> {
    const [row] = await this.store.db.select({ status: runs.status, leaseOwner: runs.leaseOwner }).from(runs).where(eq(runs.id, this.run.id));
    if (!row || row.leaseOwner !== this.owner) {
      this.abort("lease_lost");
      return true;
    }
    if (row.status !== "cancelling") return false;
    await this.cancel();
    return true;
  }
}

/** Coalesces streamed text into one persisted message.delta event per interval. */
class DeltaWriter {
  private buffer = "";
  private timer: ReturnType<typeof setTimeout> | null = null;
  private chain: Promise<void> = Promise.resolve();
  private failed: unknown = null;

  constructor(
    private exec: RunExecution,
    private stepId: string,
    private flushMs: number,
  ) {}

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
    this.chain = this.chain.then(() => this.exec.writeDelta(this.stepId, text)).catch((err) => {
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
export function transcript(steps: StepRow[]): ChatMessage[] {
  const byCall = new Map(steps.filter((s) => s.kind === "tool_call" && s.toolCallId).map((s) => [s.toolCallId!, s]));
  const out: ChatMessage[] = [];
  for (const s of steps) {
    if (s.kind !== "model_call" || s.status !== "completed") continue;
    const o = s.output as ModelOutput;
    if (!o.tool_calls?.length) {
      out.push({ role: "assistant", content: o.content });
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
const sqlUsage = (u: { prompt_tokens: number; completion_tokens: number; total_tokens: number }) =>
  sql`jsonb_build_object(
    'prompt_tokens', coalesce((${runs.usage}->>'prompt_tokens')::int, 0) + ${u.prompt_tokens}::int,
    'completion_tokens', coalesce((${runs.usage}->>'completion_tokens')::int, 0) + ${u.completion_tokens}::int,
    'total_tokens', coalesce((${runs.usage}->>'total_tokens')::int, 0) + ${u.total_tokens}::int)`;

