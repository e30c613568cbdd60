/**
 * The agents role's service: agents, threads, messages and the run API (create, read,
 * cancel, tool outputs). Free of HTTP: JSON in, JSON out, called directly in-process or
 * over NATS request/reply. Every query filters by the caller's organization. Runs are
 * executed by the worker role; this side only creates them, rings the run queue and
 * changes their state through the run store (orchestration/), like the worker does.
 */
import { publishInvalidation } from "../../platform/edge-cache";
import { and, asc, eq, inArray, sql } from "drizzle-orm";
import { agents, messages, runEvents, runSteps, runs, threads } from "../../../schema";
import type { Bus } from "../../platform/bus";
import { currentContext } from "../../platform/context";
import { rowsOf, type Db } from "../../platform/db";
import { pageQuery, toPage, type PageOf, type PageRequest } from "../../platform/db/pagination";
import { badRequest, conflict, notFound, unprocessable } from "../../platform/errors";
import { withIdempotency, type IdempotentResult } from "../../platform/http/idempotency";
import { isId, newId } from "../../platform/ids";
import type { Logger } from "../../platform/logging";
import { emitEvent } from "../../platform/outbox";
import { DEFAULT_BLOCK_LIMIT, type MemoryBlockOut, type MemoryContract } from "../memory/contract";
import { runCancelSubject, tryEnqueueRun } from "../orchestration/queue";
import { leaseFree, type RunStore } from "../orchestration/store";
import { finishRun, runPayload } from "../orchestration/transitions";
import { ACTIVE_STATUSES, eventOut, isTerminal, runOut, stepOut, type RequiredAction, type RunRow, type RunEventOut, type RunOut, type StepOut } from "../orchestration/types";
import type { ToolsContract } from "../tools/contract";
import { AGENT_CACHE_KIND, agentCacheKey, type AgentsContract } from "./contract";
import { buildRunTrace, TIMELINE_EVENTS, type CostOf, type RunTraceOut } from "./trace";
import {
  DEFAULT_CONTEXT_WINDOW, DEFAULT_MAX_STEPS,
  type AgentOut, type CreateAgentInput, type CreateMessageInput, type CreateRunInput, type MessageOut, type ThreadOut, type ToolOutputsInput, type UpdateAgentInput,
} from "./model";

type AgentRow = typeof agents.$inferSelect;
type ThreadRow = typeof threads.$inferSelect;
type MessageRow = typeof messages.$inferSelect;

export interface AgentsDeps {
  db: Db;
  store: RunStore;
  bus: () => Bus;
  log: Logger;
  memory: () => MemoryContract;
  tools: () => ToolsContract;
  /**
   * Called before a run is created (quota enforcement). The billing role wires
   * `assertRunAllowed` here; it throws AppError 402 `quota_exceeded` to refuse the run.
   */
  beforeRunCreate: (orgId: string) => Promise<void>;
  /** Prices model calls for run timelines (the billing role's prices). */
  costOf: CostOf;
}

const threadOut = (t: ThreadRow): ThreadOut => ({ id: t.id, object: "thread", metadata: t.metadata, created_at: t.createdAt.toISOString(), updated_at: t.updatedAt.toISOString() });
interface RawMessage {
  id: string;
  org_id: string;
  thread_id: string;
  role: string;
  content: string | null;
  tool_calls: unknown;
  tool_call_id: string | null;
  run_id: string | null;
  metadata: unknown;
  created_at: Date | string;
}
const parsedJson = (v: unknown) => (typeof v === "string" ? JSON.parse(v) : v);
const fromRawMessage = (r: RawMessage): MessageRow => ({
  id: r.id,
  orgId: r.org_id,
  threadId: r.thread_id,
  role: r.role,
  content: r.content,
  toolCalls: parsedJson(r.tool_calls) as unknown[] | null,
  toolCallId: r.tool_call_id,
  runId: r.run_id,
  metadata: parsedJson(r.metadata) as Record<string, unknown>,
  createdAt: new Date(r.created_at),
});

const messageOut = (m: MessageRow): MessageOut => ({
  id: m.id,
  object: "message",
  thread_id: m.threadId,
  role: m.role,
  content: m.content,
  tool_calls: (m.toolCalls as MessageOut["tool_calls"]) ?? null,
  tool_call_id: m.toolCallId,
  run_id: m.runId,
  metadata: m.metadata,
  created_at: m.createdAt.toISOString(),
});
function agentOut(a: AgentRow, blocks: Pick<MemoryBlockOut, "label" | "value" | "limit">[]): AgentOut {
  return {
    id: a.id,
    object: "agent",
    name: a.name,
    model: a.model,
    instructions: a.instructions,
    tools: a.tools,
    memory_blocks: blocks.map((b) => ({ label: b.label, value: b.value, limit: b.limit })),
    context_window: a.contextWindow,
    max_steps: a.maxSteps,
    metadata: a.metadata,
    created_at: a.createdAt.toISOString(),
    updated_at: a.updatedAt.toISOString(),
  };
}

export class AgentsService implements AgentsContract {
  constructor(private deps: AgentsDeps) {}

  private get db() {
    return this.deps.db;
  }

  // ------------------------------------------------------------------ agents

  async createAgent(orgId: string, input: CreateAgentInput, idempotencyKey?: string | null): Promise<IdempotentResult<AgentOut>> {
    return withIdempotency(this.db, { orgId, key: idempotencyKey, route: "POST /v1/agents", body: input }, async () => {
      const blocks = (input.memory_blocks ?? []).map((b) => ({ label: b.label, value: b.value, limit: b.limit ?? DEFAULT_BLOCK_LIMIT }));
      validateBlocks(blocks);
      const tools = [...new Set(input.tools ?? [])];
      await this.assertToolsExist(orgId, tools);
      const id = newId("agt");
      const row = await this.db.transaction(async (tx) => {
        const [agent] = await tx
          .insert(agents)
          .values({
            id, orgId, name: input.name, model: input.model, instructions: input.instructions ?? "", tools,
            contextWindow: input.context_window ?? DEFAULT_CONTEXT_WINDOW, maxSteps: input.max_steps ?? DEFAULT_MAX_STEPS, metadata: input.metadata ?? {},
          })
          .returning();
        await emitEvent(tx, { orgId, type: "agent.created", payload: { agent_id: id, name: agent.name, model: agent.model } });
        return agent;
      });
      let created: MemoryBlockOut[] = [];
      if (blocks.length) {
        try {
          created = await this.deps.memory().createBlocks(orgId, id, blocks);
        } catch (err) {
          // The memory role refused the blocks: the agent must not exist without them.
          await this.db.transaction(async (tx) => {
            await tx.delete(agents).where(eq(agents.id, id));
            await emitEvent(tx, { orgId, type: "agent.deleted", payload: { agent_id: id } });
          });
          throw err;
        }
      }
      return { status: 201, body: agentOut(row, created) };
    });
  }

  async listAgents(orgId: string, page: PageRequest): Promise<PageOf<AgentOut>> {
    const q = pageQuery(agents.id, page, eq(agents.orgId, orgId));
    const rows = await this.db.select().from(agents).where(q.where).orderBy(q.orderBy).limit(q.limit);
    const result = toPage(rows, q.pageSize, (r) => r);
    const blocks = await Promise.all(result.data.map((a) => this.deps.memory().listBlocks(orgId, a.id)));
    return { ...result, data: result.data.map((a, i) => agentOut(a, blocks[i])) };
  }

  async getAgent(orgId: string, id: string): Promise<AgentOut> {
    const agent = await this.agentRow(orgId, id);
    return agentOut(agent, await this.deps.memory().listBlocks(orgId, id));
  }

  async updateAgent(orgId: string, id: string, input: UpdateAgentInput): Promise<AgentOut> {
    await this.agentRow(orgId, id);
    const tools = input.tools ? [...new Set(input.tools)] : undefined;
    if (tools) await this.assertToolsExist(orgId, tools);
    const row = await this.db.transaction(async (tx) => {
      const [agent] = await tx
        .update(agents)
        .set({
          name: input.name, model: input.model, instructions: input.instructions, tools,
          contextWindow: input.context_window, maxSteps: input.max_steps, metadata: input.metadata, updatedAt: new Date(),
        })
        .where(and(eq(agents.id, id), eq(agents.orgId, orgId)))
        .returning();
      if (!agent) throw notFound("agent", id);
      await emitEvent(tx, { orgId, type: "agent.updated", payload: { agent_id: id, changed: Object.keys(input) } });
      return agent;
    });
    this.agentChanged(orgId, id);
    return agentOut(row, await this.deps.memory().listBlocks(orgId, id));
  }

  async deleteAgent(orgId: string, id: string): Promise<{ id: string; object: "agent"; deleted: true }> {
    await this.agentRow(orgId, id);
    // Memory first: if it fails nothing is deleted and the call can be retried.
    await this.deps.memory().deleteAgentMemory(orgId, id);
    await this.db.transaction(async (tx) => {
      const gone = await tx.delete(agents).where(and(eq(agents.id, id), eq(agents.orgId, orgId))).returning({ id: agents.id });
      if (!gone.length) throw notFound("agent", id);
      await emitEvent(tx, { orgId, type: "agent.deleted", payload: { agent_id: id } });
    });
    this.agentChanged(orgId, id);
    return { id, object: "agent", deleted: true };
  }

  async agentsUsingTool(orgId: string, toolRef: string): Promise<{ id: string; name: string }[]> {
    return this.db
      .select({ id: agents.id, name: agents.name })
      .from(agents)
      .where(and(eq(agents.orgId, orgId), sql`${agents.tools} @> ${JSON.stringify([toolRef])}::jsonb`))
      .orderBy(agents.id);
  }

  async detachTool(orgId: string, toolRef: string): Promise<number> {
    const rows = await this.db
      .update(agents)
      .set({ tools: sql`${agents.tools} - ${toolRef}::text`, updatedAt: new Date() })
      .where(and(eq(agents.orgId, orgId), sql`${agents.tools} @> ${JSON.stringify([toolRef])}::jsonb`))
      .returning({ id: agents.id });
    for (const r of rows) this.agentChanged(orgId, r.id);
    return rows.length;
  }

  /** Drops the agent from every gateway's read cache (after the change committed). */
  private agentChanged(orgId: string, id: string) {
    publishInvalidation(this.deps.bus(), AGENT_CACHE_KIND, agentCacheKey(orgId, id));
  }

  private async agentRow(orgId: string, id: string): Promise<AgentRow> {
    if (!isId("agt", id)) throw notFound("agent", id);
    const [agent] = await this.db.select().from(agents).where(and(eq(agents.id, id), eq(agents.orgId, orgId)));
    if (!agent) throw notFound("agent", id);
    return agent;
  }

  private async assertToolsExist(orgId: string, refs: string[]) {
    if (!refs.length) return;
    const { missing } = await this.deps.tools().getRunTools(orgId, refs);
    if (missing.length) {
      throw unprocessable("unknown_tools", `These tools do not exist in this organization: ${missing.join(", ")}. Create them with POST /v1/tools or use a builtin name.`, { missing });
    }
  }

  // ------------------------------------------------------------------ threads and messages

  async createThread(orgId: string, input: { metadata?: Record<string, unknown> }, idempotencyKey?: string | null): Promise<IdempotentResult<ThreadOut>> {
    return withIdempotency(this.db, { orgId, key: idempotencyKey, route: "POST /v1/threads", body: input }, async (commit) => {
      // The stored response commits with the thread: a retry after a crash never makes a second one.
      const body = await this.db.transaction(async (tx) => {
        const [row] = await tx.insert(threads).values({ id: newId("thr"), orgId, metadata: input.metadata ?? {} }).returning();
        await commit(tx, { status: 201, body: threadOut(row) });
        return threadOut(row);
      });
      return { status: 201, body };
    });
  }

  async listThreads(orgId: string, page: PageRequest): Promise<PageOf<ThreadOut>> {
    const q = pageQuery(threads.id, page, eq(threads.orgId, orgId));
    const rows = await this.db.select().from(threads).where(q.where).orderBy(q.orderBy).limit(q.limit);
    return toPage(rows, q.pageSize, threadOut);
  }

  async getThread(orgId: string, id: string): Promise<ThreadOut> {
    return threadOut(await this.threadRow(orgId, id));
  }

  async deleteThread(orgId: string, id: string): Promise<{ id: string; object: "thread"; deleted: true }> {
    await this.threadRow(orgId, id);
    const active = await this.db.select({ id: runs.id }).from(runs).where(and(eq(runs.threadId, id), inArray(runs.status, [...ACTIVE_STATUSES])));
    const gone = await this.db.delete(threads).where(and(eq(threads.id, id), eq(threads.orgId, orgId))).returning({ id: threads.id });
    if (!gone.length) throw notFound("thread", id);
    // Its runs went with it (cascade); workers executing them stop at their next fenced write, sooner with this.
    for (const r of active) this.deps.bus().publish(runCancelSubject(this.deps.bus(), r.id), {});
    return { id, object: "thread", deleted: true };
  }

  async createMessage(orgId: string, threadId: string, input: CreateMessageInput, idempotencyKey?: string | null): Promise<IdempotentResult<MessageOut>> {
    return withIdempotency(this.db, { orgId, key: idempotencyKey, route: `POST /v1/threads/${threadId}/messages`, body: input }, async () => {
      if (!isId("thr", threadId)) throw notFound("thread", threadId);
      // One statement: the insert happens only if the thread exists in this organization
      // (a separate check would cost a second round trip on the hottest write).
      const inserted = rowsOf<RawMessage>(
        await this.db.execute(sql`
          insert into messages (id, org_id, thread_id, role, content, metadata)
          select ${newId("msg")}, ${orgId}, t.id, ${input.role}, ${input.content}, ${JSON.stringify(input.metadata ?? {})}::jsonb
          from threads t where t.id = ${threadId} and t.org_id = ${orgId}
          returning id, org_id, thread_id, role, content, tool_calls, tool_call_id, run_id, metadata, created_at`),
      );
      if (inserted.length === 0) throw notFound("thread", threadId);
      return { status: 201, body: messageOut(fromRawMessage(inserted[0])) };
    });
  }

  async listMessages(orgId: string, threadId: string, page: PageRequest): Promise<PageOf<MessageOut>> {
    await this.threadRow(orgId, threadId);
    const q = pageQuery(messages.id, page, and(eq(messages.threadId, threadId), eq(messages.orgId, orgId)));
    const rows = await this.db.select().from(messages).where(q.where).orderBy(q.orderBy).limit(q.limit);
    return toPage(rows, q.pageSize, messageOut);
  }

  private async threadRow(orgId: string, id: string): Promise<ThreadRow> {
    if (!isId("thr", id)) throw notFound("thread", id);
    const [thread] = await this.db.select().from(threads).where(and(eq(threads.id, id), eq(threads.orgId, orgId)));
    if (!thread) throw notFound("thread", id);
    return thread;
  }

  // ------------------------------------------------------------------ runs

  async createRun(orgId: string, threadId: string, input: CreateRunInput, idempotencyKey?: string | null): Promise<IdempotentResult<RunOut>> {
    return withIdempotency(this.db, { orgId, key: idempotencyKey, route: `POST /v1/threads/${threadId}/runs`, body: input }, async (commit) => {
      if (!isId("thr", threadId)) throw notFound("thread", threadId);
      if (!isId("agt", input.agent_id)) throw notFound("agent", input.agent_id);
      await this.deps.beforeRunCreate(orgId);
      const run = await this.db.transaction(async (tx) => {
        // The thread row lock serialises run creation per thread: one active run at a time.
        const [thread] = await tx.select({ id: threads.id }).from(threads).where(and(eq(threads.id, threadId), eq(threads.orgId, orgId))).for("update");
        if (!thread) throw notFound("thread", threadId);
        const [agent] = await tx.select().from(agents).where(and(eq(agents.id, input.agent_id), eq(agents.orgId, orgId)));
        if (!agent) throw notFound("agent", input.agent_id);
        const [busy] = await tx.select({ id: runs.id }).from(runs).where(and(eq(runs.threadId, threadId), inArray(runs.status, [...ACTIVE_STATUSES]))).limit(1);
        if (busy) throw conflict("thread_busy", `Run ${busy.id} is still active on this thread; wait for it or cancel it first.`, { run_id: busy.id });
        const runId = newId("run");
        if (input.input !== undefined) {
          await tx.insert(messages).values({ id: newId("msg"), orgId, threadId, role: "user", content: input.input, runId });
        }
        const [row] = await tx
          .insert(runs)
          .values({ id: runId, orgId, threadId, agentId: agent.id, model: agent.model, status: "queued", stream: input.stream ?? false, metadata: input.metadata ?? {}, nextSeq: 2, traceparent: currentContext()?.traceparent ?? null })
          .returning();
        await tx.insert(runEvents).values({ runId, seq: 1, id: newId("evt"), orgId, type: "run.created", data: runOut(row) });
        await emitEvent(tx, { orgId, type: "run.created", payload: runPayload(row) });
        // The stored response commits with the run: a retry after a crash never creates a second one.
        await commit(tx, { status: 201, body: runOut(row) });
        return row;
      });
      await tryEnqueueRun(this.deps.bus(), this.deps.log, run);
      return { status: 201, body: runOut(run) };
    });
  }

  async getRun(orgId: string, id: string): Promise<RunOut> {
    return runOut(await this.runRow(orgId, id));
  }

  async listRuns(orgId: string, threadId: string, page: PageRequest): Promise<PageOf<RunOut>> {
    await this.threadRow(orgId, threadId);
    const q = pageQuery(runs.id, page, and(eq(runs.threadId, threadId), eq(runs.orgId, orgId)));
    const rows = await this.db.select().from(runs).where(q.where).orderBy(q.orderBy).limit(q.limit);
    return toPage(rows, q.pageSize, runOut);
  }

  async listSteps(orgId: string, runId: string, page: PageRequest): Promise<PageOf<StepOut>> {
    await this.runRow(orgId, runId);
    const q = pageQuery(runSteps.id, page, and(eq(runSteps.runId, runId), eq(runSteps.orgId, orgId)));
    const rows = await this.db.select().from(runSteps).where(q.where).orderBy(q.orderBy).limit(q.limit);
    return toPage(rows, q.pageSize, stepOut);
  }

  /** Where a run's time and money went: queue, each step, waiting for the caller (GET /v1/runs/:id/trace). */
  async runTrace(orgId: string, runId: string): Promise<RunTraceOut> {
    const run = await this.runRow(orgId, runId);
    const [steps, events] = await Promise.all([
      this.db.select().from(runSteps).where(and(eq(runSteps.runId, runId), eq(runSteps.orgId, orgId))).orderBy(asc(runSteps.id)),
      this.db.select().from(runEvents).where(and(eq(runEvents.runId, runId), inArray(runEvents.type, TIMELINE_EVENTS))).orderBy(asc(runEvents.seq)),
    ]);
    return buildRunTrace(run, steps, events, this.deps.costOf);
  }

  /** Events with seq > after (for SSE replay) and the run's current status. */
  async runEvents(orgId: string, runId: string, after: number, limit = 500): Promise<{ status: string; events: RunEventOut[] }> {
    const run = await this.runRow(orgId, runId);
    const rows = await this.deps.store.eventsAfter(runId, after, Math.min(Math.max(limit, 1), 1000));
    return { status: run.status, events: rows.map(eventOut) };
  }

  /**
   * Cancel: a run no worker executes (queued, requires_action, or in_progress with no live
   * lease) is cancelled at once; a running one becomes `cancelling` and its worker — told on
   * `live.runs.<id>.cancel`, and checking the row at every step boundary — aborts the model
   * call in flight and writes `cancelled`.
   */
  async cancelRun(orgId: string, id: string): Promise<RunOut> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const run = await this.runRow(orgId, id);
      if (run.status === "cancelling") return runOut(run);
      if (isTerminal(run.status)) throw conflict("run_not_cancellable", `The run is already ${run.status}.`);
      const store = this.deps.store;
      let done;
      if (run.status === "queued" || run.status === "requires_action") {
        done = await finishRun(store, id, { status: "cancelled", guard: eq(runs.status, run.status) });
      } else {
        done = await finishRun(store, id, { status: "cancelled", guard: and(eq(runs.status, "in_progress"), leaseFree()) });
        if (!done) done = await store.mutate(id, { guard: eq(runs.status, "in_progress"), set: { status: "cancelling", cancelRequestedAt: new Date() } });
        // A worker may still be executing it (even with an expired lease): tell it to abort now.
        if (done) this.deps.bus().publish(runCancelSubject(this.deps.bus(), id), {});
      }
      if (done) return runOut(done.run);
      // The run changed state under us (e.g. picked up by a worker): look again.
    }
    throw conflict("run_busy", "The run is changing state; retry the cancel.");
  }

  async submitToolOutputs(orgId: string, id: string, input: ToolOutputsInput): Promise<RunOut> {
    const run = await this.runRow(orgId, id);
    if (run.status !== "requires_action" || !run.requiredAction) {
      throw conflict("run_not_requires_action", `The run is ${run.status}; tool outputs are accepted only in requires_action.`);
    }
    const required = (run.requiredAction as RequiredAction).tool_calls;
    const decisions = validateToolOutputs(required, input);
    const result = await this.deps.store.mutate(id, {
      guard: eq(runs.status, "requires_action"),
      set: { status: "in_progress", requiredAction: null, requiresActionSince: null, leaseOwner: null, leaseExpiresAt: null },
      work: async (tx, r) => {
        for (const d of decisions) {
          const set =
            d.kind === "output" ? { status: "completed", output: d.output, completedAt: new Date() }
            : d.kind === "approved" ? { status: "approved" }
            : { status: "failed", error: { code: "tool_call_rejected", message: d.reason }, completedAt: new Date() };
          await tx.update(runSteps).set(set).where(and(eq(runSteps.runId, id), eq(runSteps.toolCallId, d.call.id), eq(runSteps.status, "requires_action")));
          if (d.kind !== "approved") {
            await emitEvent(tx, {
              orgId, type: "tool_call.completed",
              payload: { run_id: id, agent_id: r.agentId, tool_call_id: d.call.id, tool_id: d.call.tool_id, name: d.call.function.name, kind: d.call.action === "output" ? "client" : null, ok: d.kind === "output" },
            });
          }
        }
      },
      events: [
        ...decisions.filter((d) => d.kind !== "approved").map((d) => ({
          type: "tool_call.completed" as const,
          data: d.kind === "output"
            ? { tool_call_id: d.call.id, name: d.call.function.name, ok: true, output: d.output }
            : { tool_call_id: d.call.id, name: d.call.function.name, ok: false, error: { code: "tool_call_rejected", message: d.kind === "rejected" ? d.reason : "" } },
        })),
        { type: "run.in_progress", data: (r: RunRow) => ({ run_id: r.id, status: r.status }) },
      ],
    });
    if (!result) throw conflict("run_not_requires_action", "The run left requires_action meanwhile (cancelled or expired).");
    await tryEnqueueRun(this.deps.bus(), this.deps.log, result.run);
    return runOut(result.run);
  }

  private async runRow(orgId: string, id: string) {
    if (!isId("run", id)) throw notFound("run", id);
    const [run] = await this.db.select().from(runs).where(and(eq(runs.id, id), eq(runs.orgId, orgId)));
    if (!run) throw notFound("run", id);
    return run;
  }
}

function validateBlocks(blocks: { label: string; value: string; limit: number }[]) {
  const seen = new Set<string>();
  for (const b of blocks) {
    if (seen.has(b.label)) throw unprocessable("duplicate_memory_block", `Two memory blocks are labelled '${b.label}'.`, { label: b.label });
    seen.add(b.label);
    if (b.value.length > b.limit) {
      throw unprocessable("memory_block_too_large", `Memory block '${b.label}' has ${b.value.length} characters; its limit is ${b.limit}.`, { label: b.label, length: b.value.length, limit: b.limit });
    }
  }
}

type Decision =
  | { kind: "output"; call: RequiredAction["tool_calls"][number]; output: string }
  | { kind: "approved"; call: RequiredAction["tool_calls"][number] }
  | { kind: "rejected"; call: RequiredAction["tool_calls"][number]; reason: string };

/** Every required call answered exactly once, each with what its action needs; otherwise 400. */
export function validateToolOutputs(required: RequiredAction["tool_calls"], input: ToolOutputsInput): Decision[] {
  const byId = new Map(required.map((c) => [c.id, c]));
  const seen = new Set<string>();
  const unknown: string[] = [];
  const decisions: Decision[] = [];
  for (const o of input.tool_outputs) {
    if (seen.has(o.tool_call_id)) throw badRequest("duplicate_tool_call_id", `tool_call_id '${o.tool_call_id}' appears twice.`, { tool_call_id: o.tool_call_id });
    seen.add(o.tool_call_id);
    const call = byId.get(o.tool_call_id);
    if (!call) {
      unknown.push(o.tool_call_id);
      continue;
    }
    if (call.action === "output") {
      if (o.output === undefined) throw badRequest("missing_output", `Tool call '${call.id}' (${call.function.name}) needs an output.`, { tool_call_id: call.id });
      decisions.push({ kind: "output", call, output: o.output });
    } else {
      if (o.approve === undefined) throw badRequest("missing_approval", `Tool call '${call.id}' (${call.function.name}) awaits approval: send approve: true or false.`, { tool_call_id: call.id });
      decisions.push(o.approve ? { kind: "approved", call } : { kind: "rejected", call, reason: o.reason ?? "The user rejected this tool call." });
    }
  }
  if (unknown.length) {
    throw badRequest("unknown_tool_call_id", `The run is not waiting for tool call(s) ${unknown.join(", ")}.`, { unknown, expected: required.map((c) => c.id) });
  }
  const missing = required.filter((c) => !seen.has(c.id)).map((c) => c.id);
  if (missing.length) throw badRequest("missing_tool_outputs", `Outputs are missing for tool call(s) ${missing.join(", ")}; submit all of them in one request.`, { missing });
  return decisions;
}


