/**
 * The agents role's service: agents, threads and messages. Free of HTTP: JSON in, JSON out,
 * called directly in-process or over NATS request/reply. Every query filters by the caller's
 * organization. The run API is the run kernel's RunsService (src/runs/), which the agents
 * role serves alongside this one (role.ts).
 */
import { publishInvalidation } from "../../platform/edge-cache";
import { and, eq, inArray, sql } from "drizzle-orm";
import { agents, messages, runs, threads } from "../../../schema";
import type { Bus } from "../../platform/bus";
import { rowsOf, type Db } from "../../platform/db";
import { Batcher, type BatchStatement } from "../../platform/db/batcher";
import { pageQuery, toPage, type PageOf, type PageRequest } from "../../platform/db/pagination";
import { conflict, notFound, unprocessable } from "../../platform/errors";
import { withIdempotency, type IdempotencyScope, type IdempotentResult } from "../../platform/idempotency";
import { isId, newId } from "../../platform/ids";
import { emitEvent } from "../../platform/outbox";
import type { MemoryBlockOut, MemoryContract } from "../memory/contract";
import { DEFAULT_BLOCK_LIMIT } from "../memory/model";
import { ACTIVE_STATUSES, runCancelSubject } from "../../runs";
import type { ToolsContract } from "../tools/contract";
import { AGENT_CACHE_KIND, agentCacheKey, type AgentsContract } from "./contract";
import {
  DEFAULT_CONTEXT_WINDOW, DEFAULT_MAX_STEPS,
  type AgentOut, type CreateAgentInput, type CreateMessageInput, type MessageOut, type ThreadOut, type UpdateAgentInput, type UpdateThreadInput,
} from "./model";

type AgentRow = typeof agents.$inferSelect;
type ThreadRow = typeof threads.$inferSelect;
type MessageRow = typeof messages.$inferSelect;

export interface AgentsDeps {
  db: Db;
  bus: () => Bus;
  memory: () => MemoryContract;
  tools: () => ToolsContract;
  /** --idempotency-stale (see withIdempotency). */
  idempotencyStaleMs: number;
  /** --message-batch-max: most message writes per statement. */
  messageBatchMax?: number;
  /** 422 when the model names a provider's model it does not serve (providers.ts). */
  assertModelServed: (orgId: string, model: string) => Promise<void>;
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
  parsed: null, // only run answers carry one; a created message never does
  metadata: parsedJson(r.metadata) as Record<string, unknown>,
  createdAt: new Date(r.created_at),
});

/** A message to insert, as the batch statement reads it (jsonb_to_recordset's column names). */
interface NewMessage {
  id: string;
  org_id: string;
  thread_id: string;
  role: string;
  content: string;
  metadata: Record<string, unknown>;
}
const RETURNED_MESSAGE = sql.raw("id, org_id, thread_id, role, content, tool_calls, tool_call_id, run_id, metadata, created_at");

/**
 * Message inserts, N per statement: each row only if its thread is in its organization (one
 * statement, no separate check: it is the hottest write); a row whose thread is missing or
 * another organization's is not inserted and answers null (→ 404 for that request alone).
 * Alone (after a failed batch) a message takes the single-row statement of before.
 */
function messageInserts(db: Db): BatchStatement<NewMessage, RawMessage | null> {
  return {
    async many(items) {
      const rows = rowsOf<RawMessage>(
        await db.execute(sql`
          insert into messages (id, org_id, thread_id, role, content, metadata)
          select v.id, v.org_id, t.id, v.role, v.content, v.metadata
          from jsonb_to_recordset(${JSON.stringify(items)}::jsonb) as v(id text, org_id text, thread_id text, role text, content text, metadata jsonb)
          join threads t on t.id = v.thread_id and t.org_id = v.org_id
          returning ${RETURNED_MESSAGE}`),
      );
      if (items.length === 1) return [rows[0] ?? null];
      const byId = new Map(rows.map((r) => [r.id, r]));
      return items.map((m) => byId.get(m.id) ?? null);
    },
    async one(m) {
      const rows = rowsOf<RawMessage>(
        await db.execute(sql`
          insert into messages (id, org_id, thread_id, role, content, metadata)
          select ${m.id}, ${m.org_id}, t.id, ${m.role}, ${m.content}, ${JSON.stringify(m.metadata)}::jsonb
          from threads t where t.id = ${m.thread_id} and t.org_id = ${m.org_id}
          returning ${RETURNED_MESSAGE}`),
      );
      return rows[0] ?? null;
    },
  };
}

const messageOut = (m: MessageRow): MessageOut => ({
  id: m.id,
  object: "message",
  thread_id: m.threadId,
  role: m.role,
  content: m.content,
  tool_calls: (m.toolCalls as MessageOut["tool_calls"]) ?? null,
  tool_call_id: m.toolCallId,
  run_id: m.runId,
  parsed: m.parsed ?? null,
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
    temperature: a.temperature,
    top_p: a.topP,
    max_output_tokens: a.maxOutputTokens,
    context_strategy: a.contextStrategy as AgentOut["context_strategy"],
    metadata: a.metadata,
    created_at: a.createdAt.toISOString(),
    updated_at: a.updatedAt.toISOString(),
  };
}

export class AgentsService implements AgentsContract {
  /** Concurrent message writes, committed together (src/platform/db/batcher.ts). */
  private messageWrites: Batcher<NewMessage, RawMessage | null>;

  constructor(private deps: AgentsDeps) {
    this.messageWrites = new Batcher(messageInserts(deps.db), deps.messageBatchMax ?? 64);
  }

  private get db() {
    return this.deps.db;
  }

  // ------------------------------------------------------------------ agents

  async createAgent(orgId: string, input: CreateAgentInput, idempotency: IdempotencyScope | null = null): Promise<IdempotentResult<AgentOut>> {
    return withIdempotency(this.db, { orgId, scope: idempotency, body: input, staleClaimMs: this.deps.idempotencyStaleMs }, async () => {
      const blocks = (input.memory_blocks ?? []).map((b) => ({ label: b.label, value: b.value, limit: b.limit ?? DEFAULT_BLOCK_LIMIT }));
      validateBlocks(blocks);
      const tools = [...new Set(input.tools ?? [])];
      await this.assertToolsExist(orgId, tools);
      await this.deps.assertModelServed(orgId, input.model);
      const id = newId("agt");
      const row = await this.db.transaction(async (tx) => {
        const [agent] = await tx
          .insert(agents)
          .values({
            id, orgId, name: input.name, model: input.model, instructions: input.instructions ?? "", tools,
            contextWindow: input.context_window ?? DEFAULT_CONTEXT_WINDOW, maxSteps: input.max_steps ?? DEFAULT_MAX_STEPS, metadata: input.metadata ?? {},
            temperature: input.temperature ?? null, topP: input.top_p ?? null, maxOutputTokens: input.max_output_tokens ?? null,
            contextStrategy: input.context_strategy ?? "truncate",
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
    const result = toPage(rows, q, (r) => r);
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
    if (input.model) await this.deps.assertModelServed(orgId, input.model);
    const row = await this.db.transaction(async (tx) => {
      const [agent] = await tx
        .update(agents)
        .set({
          name: input.name, model: input.model, instructions: input.instructions, tools,
          contextWindow: input.context_window, maxSteps: input.max_steps, metadata: input.metadata, updatedAt: new Date(),
          temperature: input.temperature, topP: input.top_p, maxOutputTokens: input.max_output_tokens, contextStrategy: input.context_strategy,
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

  async createThread(orgId: string, input: { metadata?: Record<string, unknown> }, idempotency: IdempotencyScope | null = null): Promise<IdempotentResult<ThreadOut>> {
    return withIdempotency(this.db, { orgId, scope: idempotency, body: input, staleClaimMs: this.deps.idempotencyStaleMs }, async (commit) => {
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
    return toPage(rows, q, threadOut);
  }

  async getThread(orgId: string, id: string): Promise<ThreadOut> {
    return threadOut(await this.threadRow(orgId, id));
  }

  /** PATCH /v1/threads/:id: the metadata is replaced (as in the Assistants API's modifyThread). */
  async updateThread(orgId: string, id: string, input: UpdateThreadInput): Promise<ThreadOut> {
    await this.threadRow(orgId, id);
    if (input.metadata === undefined) return this.getThread(orgId, id);
    const [row] = await this.db
      .update(threads)
      .set({ metadata: input.metadata, updatedAt: new Date() })
      .where(and(eq(threads.id, id), eq(threads.orgId, orgId)))
      .returning();
    if (!row) throw notFound("thread", id);
    return threadOut(row);
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

  /** The write goes through the group commit (`messageWrites`); with an Idempotency-Key too (its claim and stored response are separate statements around it). */
  async createMessage(orgId: string, threadId: string, input: CreateMessageInput, idempotency: IdempotencyScope | null = null): Promise<IdempotentResult<MessageOut>> {
    if (!idempotency) return { ...(await this.appendMessage(orgId, threadId, input)), replayed: false };
    return withIdempotency(this.db, { orgId, scope: idempotency, params: { id: threadId }, body: input, staleClaimMs: this.deps.idempotencyStaleMs }, () => this.appendMessage(orgId, threadId, input));
  }

  private async appendMessage(orgId: string, threadId: string, input: CreateMessageInput): Promise<{ status: 201; body: MessageOut }> {
    if (!isId("thr", threadId)) throw notFound("thread", threadId);
    // The id is issued here, in submission order: ids and created_at (one per batch) grow together.
    const inserted = await this.messageWrites.submit({ id: newId("msg"), org_id: orgId, thread_id: threadId, role: input.role, content: input.content, metadata: input.metadata ?? {} });
    if (!inserted) throw notFound("thread", threadId);
    return { status: 201, body: messageOut(fromRawMessage(inserted)) };
  }

  async listMessages(orgId: string, threadId: string, page: PageRequest): Promise<PageOf<MessageOut>> {
    await this.threadRow(orgId, threadId);
    const q = pageQuery(messages.id, page, and(eq(messages.threadId, threadId), eq(messages.orgId, orgId)));
    const rows = await this.db.select().from(messages).where(q.where).orderBy(q.orderBy).limit(q.limit);
    return toPage(rows, q, messageOut);
  }

  async getMessage(orgId: string, threadId: string, messageId: string): Promise<MessageOut> {
    return messageOut(await this.messageRow(orgId, threadId, messageId));
  }

  /** Refused while a run is active on the thread: its prompt is being built from these messages. */
  async deleteMessage(orgId: string, threadId: string, messageId: string): Promise<{ id: string; object: "message"; deleted: true }> {
    await this.messageRow(orgId, threadId, messageId);
    const [busy] = await this.db.select({ id: runs.id }).from(runs).where(and(eq(runs.threadId, threadId), inArray(runs.status, [...ACTIVE_STATUSES]))).limit(1);
    if (busy) throw conflict("thread_busy", `Run ${busy.id} is active on this thread; wait for it or cancel it before deleting messages.`, { run_id: busy.id });
    const gone = await this.db
      .delete(messages)
      .where(and(eq(messages.id, messageId), eq(messages.threadId, threadId), eq(messages.orgId, orgId)))
      .returning({ id: messages.id });
    if (!gone.length) throw notFound("message", messageId);
    return { id: messageId, object: "message", deleted: true };
  }

  private async messageRow(orgId: string, threadId: string, messageId: string): Promise<MessageRow> {
    if (!isId("thr", threadId)) throw notFound("thread", threadId);
    if (!isId("msg", messageId)) throw notFound("message", messageId);
    const [row] = await this.db.select().from(messages).where(and(eq(messages.id, messageId), eq(messages.threadId, threadId), eq(messages.orgId, orgId)));
    if (!row) {
      await this.threadRow(orgId, threadId); // which of the two is missing
      throw notFound("message", messageId);
    }
    return row;
  }

  /** The thread, or 404 outside the organization; the run API's thread check too. */
  async threadRow(orgId: string, id: string): Promise<ThreadRow> {
    if (!isId("thr", id)) throw notFound("thread", id);
    const [thread] = await this.db.select().from(threads).where(and(eq(threads.id, id), eq(threads.orgId, orgId)));
    if (!thread) throw notFound("thread", id);
    return thread;
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
