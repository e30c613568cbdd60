/**
 * The run API of the run kernel: create, read, cancel, tool outputs, events and timelines.
 * The agents role serves it as part of its RPC surface (src/roles/agents/role.ts); runs are
 * executed by the worker role. Free of HTTP: JSON in, JSON out; every query filters by the
 * caller's organization; every state change goes through the run store, like the worker's.
 */
import { and, asc, eq, gte, inArray, lt } from "drizzle-orm";
import { agents, messages, runEvents, runSteps, runs, threads } from "../../schema";
import type { Bus } from "../platform/bus";
import { currentContext } from "../platform/context";
import type { Db, Tx } from "../platform/db";
import { pageQuery, toPage, type PageOf, type PageRequest } from "../platform/db/pagination";
import { AppError, badRequest, conflict, notFound } from "../platform/errors";
import { withIdempotency, type CommitResponse, type IdempotencyScope, type IdempotentResult } from "../platform/idempotency";
import { isId, newId } from "../platform/ids";
import type { Logger } from "../platform/logging";
import { emitEvent } from "../platform/outbox";
import type { CreateRunInput, CreateThreadAndRunInput, ListRunsInput, RequiredAction, RunEventOut, RunOut, StepOut, ToolOutputsInput } from "./model";
import { assertRunOptions, runOptionsOf, type RunOptionChecks, type RunOptions } from "./options";
import { discardRolledBackMessages, isActiveRunConflict, liveRunsOf, PENDING, promoteNext, type MultitaskStrategy } from "./multitask";
import { runCancelSubject, tryEnqueueRun } from "./queue";
import { leaseFree, type RunStore } from "./store";
import { buildRunTrace, TIMELINE_EVENTS, type CostOf, type RunTraceOut } from "./trace";
import { finishRun, runPayload } from "./transitions";
import { eventOut, isTerminal, runOut, stepOut, type RunRow, type RunView } from "./types";

const RETRY = Symbol("retry");

export interface RunsDeps {
  db: Db;
  store: RunStore;
  bus: () => Bus;
  log: Logger;
  /** 404 unless the thread exists in the organization (threads are the agents role's). */
  requireThread: (orgId: string, threadId: string) => Promise<unknown>;
  /**
   * Called before a run is created (quota enforcement). The billing role wires
   * `assertRunAllowed` here; it throws AppError 402 `quota_exceeded` to refuse the run.
   */
  beforeRunCreate: (orgId: string) => Promise<void>;
  /** Checks of a new run's options against the organization's tools (the tools role's). */
  optionChecks: RunOptionChecks;
  /** Prices model calls for run timelines (the billing role's prices). */
  costOf: CostOf;
  /** --idempotency-stale (see withIdempotency). */
  idempotencyStaleMs: number;
}

export class RunsService {
  constructor(private deps: RunsDeps) {}

  private get db() {
    return this.deps.db;
  }


  /**
   * Creates a run on the thread. When the thread is busy, `multitask_strategy` decides
   * (src/runs/multitask.ts): reject → 409 thread_busy; enqueue → the run waits as `pending`;
   * interrupt / rollback → the thread's runs are cancelled first (rollback also flags them so
   * their messages go once they have ended), and the run waits only while a cancelled run's
   * worker is still stopping. `apiKeyId`: the key the request authenticated with (its daily
   * spend cap applies to the run).
   */
  async createRun(orgId: string, threadId: string, input: CreateRunInput, idempotency: IdempotencyScope | null = null, apiKeyId: string | null = null): Promise<IdempotentResult<RunOut>> {
    return withIdempotency(this.db, { orgId, scope: idempotency, params: { id: threadId }, body: input, staleClaimMs: this.deps.idempotencyStaleMs }, async (commit) => {
      if (!isId("thr", threadId)) throw notFound("thread", threadId);
      if (!isId("agt", input.agent_id)) throw notFound("agent", input.agent_id);
      const { agent, options } = await this.admitRun(orgId, input);
      const strategy = input.multitask_strategy ?? "reject";
      const preempts = strategy === "interrupt" || strategy === "rollback";
      for (let attempt = 0; ; attempt++) {
        if (preempts) await this.clearThread(orgId, threadId, strategy === "rollback");
        const run = await this.insertRunLocked(orgId, threadId, agent, input, options, strategy, commit, apiKeyId).catch((err) => {
          if (isActiveRunConflict(err)) throw conflict("thread_busy", "Another run became active on this thread at the same moment; retry.");
          throw err;
        });
        if (run === RETRY) {
          // Another create started a run between our cancel and our insert: cancel again.
          if (attempt >= 4) throw conflict("thread_busy", "Other runs keep starting on this thread; retry.");
          continue;
        }
        if (run.status === "queued") await tryEnqueueRun(this.deps.bus(), this.deps.log, run);
        // The active run may have ended between our check and our commit: nothing else would promote us.
        else await promoteNext(this.deps.store, threadId);
        return { status: 201, body: unpriced(run) };
      }
    });
  }

  /**
   * A new thread (with its metadata and first messages) and a run on it, in one transaction
   * (POST /v1/threads/runs, the Assistants API's createThreadAndRun): a refused run leaves no thread.
   */
  async createThreadAndRun(orgId: string, input: CreateThreadAndRunInput, idempotency: IdempotencyScope | null = null, apiKeyId: string | null = null): Promise<IdempotentResult<RunOut>> {
    return withIdempotency(this.db, { orgId, scope: idempotency, body: input, staleClaimMs: this.deps.idempotencyStaleMs }, async (commit) => {
      if (!isId("agt", input.agent_id)) throw notFound("agent", input.agent_id);
      const { agent, options } = await this.admitRun(orgId, input);
      const run = await this.db.transaction(async (tx) => {
        const threadId = newId("thr");
        await tx.insert(threads).values({ id: threadId, orgId, metadata: input.thread?.metadata ?? {} });
        const seeded = input.thread?.messages ?? [];
        if (seeded.length) {
          await tx.insert(messages).values(seeded.map((m) => ({ id: newId("msg"), orgId, threadId, role: m.role, content: m.content, metadata: m.metadata ?? {} })));
        }
        const { thread: _thread, ...runInput } = input;
        return insertRun(tx, orgId, threadId, agent, runInput, options, false, apiKeyId, (row) => commit(tx, { status: 201, body: unpriced(row) }));
      });
      await tryEnqueueRun(this.deps.bus(), this.deps.log, run);
      return { status: 201, body: unpriced(run) };
    });
  }

  /** What every run create checks before it writes: the budget's shape, the quota, the agent, the per-run options. */
  private async admitRun(orgId: string, input: CreateRunInput) {
    assertBudget(input.budget);
    // The quota and the agent in parallel (one round trip less); a quota refusal still wins over an unknown agent.
    const [quota, found] = await Promise.allSettled([this.deps.beforeRunCreate(orgId), agentOf(this.db, orgId, input.agent_id)]);
    if (quota.status === "rejected") throw quota.reason;
    if (found.status === "rejected") throw found.reason;
    const agent = found.value;
    const options = runOptionsOf(input);
    await assertRunOptions(orgId, agent.tools, options, this.deps.optionChecks);
    return { agent, options };
  }

  /** One transaction under the thread row lock: the busy check, the input message, the run and its events. */
  private async insertRunLocked(orgId: string, threadId: string, agent: { id: string; model: string }, input: CreateRunInput, options: RunOptions, strategy: MultitaskStrategy, commit: CommitResponse<RunOut>, apiKeyId: string | null): Promise<RunRow | typeof RETRY> {
    return this.db.transaction(async (tx) => {
      // The thread row lock serialises run creation per thread (the unique index is the backstop).
      const [thread] = await tx.select({ id: threads.id }).from(threads).where(and(eq(threads.id, threadId), eq(threads.orgId, orgId))).for("update");
      if (!thread) throw notFound("thread", threadId);
      const live = await liveRunsOf(tx as unknown as Db, orgId, threadId);
      const busy = live[0];
      if (busy && strategy === "reject") {
        throw conflict("thread_busy", `Run ${busy.id} is still ${busy.status} on this thread; wait for it, cancel it, or send multitask_strategy.`, { run_id: busy.id });
      }
      // interrupt/rollback cancelled everything before this transaction; only a run still stopping may remain.
      if (strategy !== "enqueue" && live.some((r) => r.status !== "cancelling")) return RETRY;
      // A rolled-back run that ended after clearThread looked still has its messages (its worker removes
      // them just after its end commits): removed here, so a run queued at once never reads them.
      if (strategy === "rollback" && live.length === 0) await discardRolledBackMessages(tx, threadId);
      // The stored response commits with the run: a retry after a crash never creates a second one.
      return insertRun(tx, orgId, threadId, agent, input, options, live.length > 0, apiKeyId, (row) => commit(tx, { status: 201, body: unpriced(row) }));
    });
  }

  /** interrupt / rollback: cancels the thread's waiting runs, then its active one (rollback flags them first). */
  private async clearThread(orgId: string, threadId: string, rollback: boolean) {
    const live = await liveRunsOf(this.db, orgId, threadId);
    const ordered = [...live.filter((r) => r.status === PENDING), ...live.filter((r) => r.status !== PENDING)];
    for (const r of ordered) {
      if (rollback) await this.db.update(runs).set({ rolledBack: true }).where(and(eq(runs.id, r.id), eq(runs.orgId, orgId)));
      if (r.status === "cancelling") continue;
      await this.cancelRun(orgId, r.id).catch((err) => {
        // Ended meanwhile: nothing to cancel.
        if (!(err instanceof AppError && err.code === "run_not_cancellable")) throw err;
      });
    }
    // A rolled-back run that had already ended (or ended just now) loses its messages at once.
    if (rollback && live.length) await promoteNext(this.deps.store, threadId, { discardRolledBack: true });
  }

  async getRun(orgId: string, id: string): Promise<RunOut> {
    return this.priced(await this.runRow(orgId, id));
  }

  /** The run with `cost_cents`: its usage at its model's prices (billing's, through its contract). */
  private async priced(row: RunRow): Promise<RunOut> {
    return (await this.pricedAll([row]))[0];
  }

  /** Prices come from billing: while it does not answer, runs still read, with `cost_cents: null`. */
  private async pricedAll(rows: RunRow[]): Promise<RunOut[]> {
    const views = rows.map(runOut);
    const used = views.filter((v) => v.usage.total_tokens > 0);
    let costs: number[] | null = [];
    if (used.length) {
      costs = await this.deps.costOf(used.map((v) => ({ model: v.model, prompt_tokens: v.usage.prompt_tokens, completion_tokens: v.usage.completion_tokens }))).catch((err) => {
        this.deps.log.warn("run prices unavailable: cost_cents is null", { error: err as Error });
        return null;
      });
    }
    const costOf = new Map(used.map((v, i) => [v.id, costs ? (costs[i] ?? 0) : null]));
    return views.map((v) => withCost(v, costOf.has(v.id) ? costOf.get(v.id)! : 0));
  }

  async listRuns(orgId: string, threadId: string, page: PageRequest): Promise<PageOf<RunOut>> {
    await this.deps.requireThread(orgId, threadId);
    const q = pageQuery(runs.id, page, and(eq(runs.threadId, threadId), eq(runs.orgId, orgId)));
    const rows = await this.db.select().from(runs).where(q.where).orderBy(q.orderBy).limit(q.limit);
    return this.pricedPage(toPage(rows, q, (r) => r));
  }

  /** Every run of the organization, filtered (GET /v1/runs): status, agent, thread, creation time. */
  async listOrgRuns(orgId: string, query: ListRunsInput): Promise<PageOf<RunOut>> {
    const filters = and(
      eq(runs.orgId, orgId),
      query.status ? eq(runs.status, query.status) : undefined,
      query.agent_id ? eq(runs.agentId, query.agent_id) : undefined,
      query.thread_id ? eq(runs.threadId, query.thread_id) : undefined,
      query.created_after ? gte(runs.createdAt, new Date(query.created_after)) : undefined,
      query.created_before ? lt(runs.createdAt, new Date(query.created_before)) : undefined,
    );
    const q = pageQuery(runs.id, query, filters);
    const rows = await this.db.select().from(runs).where(q.where).orderBy(q.orderBy).limit(q.limit);
    return this.pricedPage(toPage(rows, q, (r) => r));
  }

  private async pricedPage(page: PageOf<RunRow>): Promise<PageOf<RunOut>> {
    return { ...page, data: await this.pricedAll(page.data) };
  }

  async listSteps(orgId: string, runId: string, page: PageRequest): Promise<PageOf<StepOut>> {
    await this.runRow(orgId, runId);
    const q = pageQuery(runSteps.id, page, and(eq(runSteps.runId, runId), eq(runSteps.orgId, orgId)));
    const rows = await this.db.select().from(runSteps).where(q.where).orderBy(q.orderBy).limit(q.limit);
    return toPage(rows, q, stepOut);
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
      if (run.status === "cancelling") return this.priced(run);
      if (isTerminal(run.status)) throw conflict("run_not_cancellable", `The run is already ${run.status}.`);
      const store = this.deps.store;
      let done;
      if (run.status === PENDING || run.status === "queued" || run.status === "requires_action") {
        done = await finishRun(store, id, { status: "cancelled", guard: eq(runs.status, run.status) });
      } else {
        done = await finishRun(store, id, { status: "cancelled", guard: and(eq(runs.status, "in_progress"), leaseFree()) });
        if (!done) done = await store.mutate(id, { guard: eq(runs.status, "in_progress"), set: { status: "cancelling", cancelRequestedAt: new Date() } });
        // A worker may still be executing it (even with an expired lease): tell it to abort now.
        if (done) this.deps.bus().publish(runCancelSubject(this.deps.bus(), id), {});
      }
      if (done) return this.priced(done.run);
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
    return this.priced(result.run);
  }

  private async runRow(orgId: string, id: string) {
    if (!isId("run", id)) throw notFound("run", id);
    const [run] = await this.db.select().from(runs).where(and(eq(runs.id, id), eq(runs.orgId, orgId)));
    if (!run) throw notFound("run", id);
    return run;
  }
}

async function agentOf(tx: Tx | Db, orgId: string, agentId: string) {
  const [agent] = await tx.select().from(agents).where(and(eq(agents.id, agentId), eq(agents.orgId, orgId)));
  if (!agent) throw notFound("agent", agentId);
  return agent;
}

/** The run row, its input messages (in order, before it), its first event and its outbox row. */
/** A budget names at least one limit (TypeBox's minProperties is not enforced on nested objects). */
function assertBudget(budget: CreateRunInput["budget"]) {
  if (budget && budget.max_tokens === undefined && budget.max_cost_cents === undefined) {
    throw badRequest("invalid_budget", "budget needs max_tokens, max_cost_cents or both.", { field: "budget" });
  }
}

/**
 * Inserts the run (queued, or pending behind a live run: its input waits on the run) with its
 * input messages and created event, then `alsoWith(row)` (the stored idempotent response). Two
 * round trips of writes: the messages and the run go out together (postgres.js pipelines a
 * transaction's statements), then what needs the run row — its event, the outbox row, `alsoWith`.
 */
async function insertRun(tx: Tx, orgId: string, threadId: string, agent: { id: string; model: string }, input: CreateRunInput, options: RunOptions, waits: boolean, apiKeyId: string | null, alsoWith?: (row: RunRow) => Promise<void>): Promise<RunRow> {
  const runId = newId("run");
  const given = inputMessages(input.input);
  const [, [row]] = await Promise.all([
    given.length && !waits ? tx.insert(messages).values(given.map((m) => ({ id: newId("msg"), orgId, threadId, role: m.role, content: m.content, runId }))) : null,
    tx
      .insert(runs)
      .values({
        id: runId, orgId, threadId, agentId: agent.id, model: input.model ?? agent.model, status: waits ? PENDING : "queued", stream: input.stream ?? false, metadata: input.metadata ?? {},
        options, budget: input.budget ?? null, apiKeyId, pendingInput: waits && given.length ? JSON.stringify(given) : null, nextSeq: 2, traceparent: currentContext()?.traceparent ?? null,
      })
      .returning(),
  ]);
  await Promise.all([
    tx.insert(runEvents).values({ runId, seq: 1, id: newId("evt"), orgId, type: "run.created", data: runOut(row) }),
    emitEvent(tx, { orgId, type: "run.created", payload: runPayload(row) }),
    alsoWith?.(row),
  ]);
  return row;
}

/** `input`: a string is one user message; a list is appended as given. */
const inputMessages = (input: CreateRunInput["input"]): { role: string; content: string }[] =>
  input === undefined ? [] : typeof input === "string" ? [{ role: "user", content: input }] : input;

/** A run just created has used nothing yet. */
const unpriced = (row: RunRow): RunOut => withCost(runOut(row), 0);
const withCost = (view: RunView, costCents: number | null): RunOut => ({ ...view, cost_cents: costCents });

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


