/**
 * The memory role's service: core memory blocks (always in the prompt, bounded in characters)
 * and archival memory (unbounded, found by ranked full-text search). Free of HTTP: the
 * gateway's controller and other roles (agents, the run loop through the tools role) call it
 * directly in-process or over NATS request/reply. Every query is scoped by organization.
 */
import { withIdempotency, type IdempotencyScope, type IdempotentResult } from "../../platform/idempotency";
import { and, asc, eq, inArray, sql } from "drizzle-orm";
import { archivalMemories, memoryBlocks, sharedBlockAgents, sharedBlocks } from "../../../schema";
import { isUniqueViolation, type Db, type DbOrTx } from "../../platform/db";
import { pageQuery, toPage, type PageOf } from "../../platform/db/pagination";
import { rowsOf } from "../../platform/db/rows";
import { AppError, badRequest, conflict, notFound, unprocessable } from "../../platform/errors";
import type { Principal } from "../../platform/principal";
import { isId, newId } from "../../platform/ids";
import { reciprocalRankFusion } from "../../platform/model/embeddings";
import { emitEvent } from "../../platform/outbox";
import type { ArchivalEmbeddings } from "./semantic";
import {
  BUILTIN_MEMORY_TOOLS, isBuiltinMemoryTool, type ArchivalMemoryOut, type MemoryBlockInput, type MemoryBlockOut, type MemoryContract,
} from "./contract";
import {
  DEFAULT_BLOCK_LIMIT, LABEL_PATTERN, MAX_ATTACHED_AGENTS_SHOWN, MAX_BLOCK_LIMIT, type CreateMemoryInput, type CreateSharedBlockInput, type MemoryListInput,
  type PutBlockInput, type SearchMode, type SharedBlockListInput, type SharedBlockOut, type UpdateSharedBlockInput,
} from "./model";

type BlockRow = typeof memoryBlocks.$inferSelect;
type SharedRow = typeof sharedBlocks.$inferSelect;
type ArchivalRow = typeof archivalMemories.$inferSelect;

/** Resolves when the agent exists in the caller's organization; throws 404 otherwise (the agents role owns agents). */
export type AgentCheck = (principal: Principal, agentId: string) => Promise<void>;

const labelRe = new RegExp(LABEL_PATTERN);

const blockOut = (b: BlockRow): MemoryBlockOut => ({
  id: b.id,
  agent_id: b.agentId,
  label: b.label,
  value: b.value,
  limit: b.limit,
  shared: false,
  created_at: b.createdAt.toISOString(),
  updated_at: b.updatedAt.toISOString(),
});

/** A shared block as one of an agent's blocks (what its prompt shows). */
const attachedOut = (b: SharedRow, agentId: string): MemoryBlockOut => ({
  id: b.id,
  agent_id: agentId,
  label: b.label,
  value: b.value,
  limit: b.limit,
  shared: true,
  created_at: b.createdAt.toISOString(),
  updated_at: b.updatedAt.toISOString(),
});

const sharedOut = (b: SharedRow, agentIds: string[]): SharedBlockOut => ({
  id: b.id,
  label: b.label,
  value: b.value,
  limit: b.limit,
  description: b.description,
  agent_ids: agentIds,
  created_at: b.createdAt.toISOString(),
  updated_at: b.updatedAt.toISOString(),
});

const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

type ArchivalListed = Pick<ArchivalRow, "id" | "agentId" | "content" | "metadata" | "createdAt"> & { embedded: boolean };

const memoryOut = (m: ArchivalListed, score?: number): ArchivalMemoryOut => ({
  id: m.id,
  agent_id: m.agentId,
  content: m.content,
  metadata: m.metadata ?? {},
  embedded: m.embedded,
  created_at: m.createdAt.toISOString(),
  ...(score === undefined ? {} : { score }),
});

/** The archival columns sent to clients: not the generated tsvector nor the embedding itself. */
const archivalColumns = {
  id: archivalMemories.id,
  agentId: archivalMemories.agentId,
  content: archivalMemories.content,
  metadata: archivalMemories.metadata,
  createdAt: archivalMemories.createdAt,
  embedded: sql<boolean>`(${archivalMemories.embedding} is not null)`.mapWith(Boolean),
};

/** Candidates each ranking contributes to the fusion (its top N). */
const FUSION_CANDIDATES = 50;

function tooLarge(label: string, length: number, limit: number) {
  return unprocessable(
    "memory_block_too_large",
    `The value of memory block '${label}' would be ${length} characters; its limit is ${limit}. Shorten it or raise the limit.`,
    { label, length, limit },
  );
}

function requireString(args: Record<string, unknown>, name: string, allowEmpty = false): string {
  const v = args[name];
  if (typeof v !== "string" || (!allowEmpty && v.length === 0)) throw badRequest("invalid_arguments", `'${name}' must be a ${allowEmpty ? "" : "non-empty "}string.`);
  return v;
}

export class MemoryService implements MemoryContract {
  constructor(
    private db: Db,
    private checkAgent: AgentCheck,
    /** Called after an agent's core memory blocks changed (gateways cache them with the agent). */
    private blocksChanged: (orgId: string, agentId: string) => void,
    /** --idempotency-stale (see withIdempotency). */
    private idempotencyStaleMs: number,
    /** Embeddings of archival memory and the vector half of its search. */
    private embeddings: ArchivalEmbeddings,
  ) {}

  // ---- contract (other roles) ------------------------------------------------------------

  async createBlocks(orgId: string, agentId: string, blocks: MemoryBlockInput[]): Promise<MemoryBlockOut[]> {
    const labels = new Set<string>();
    for (const b of blocks) {
      if (!labelRe.test(b.label)) throw badRequest("invalid_memory_block", `Memory block label '${b.label}' must match ${LABEL_PATTERN}.`);
      if (labels.has(b.label)) throw badRequest("duplicate_memory_block", `Two memory blocks are labelled '${b.label}'; labels are unique per agent.`);
      labels.add(b.label);
      if (!Number.isInteger(b.limit) || b.limit < 1 || b.limit > MAX_BLOCK_LIMIT) {
        throw badRequest("invalid_memory_block", `The limit of memory block '${b.label}' must be an integer from 1 to ${MAX_BLOCK_LIMIT}.`);
      }
      if (b.value.length > b.limit) throw tooLarge(b.label, b.value.length, b.limit);
    }
    if (blocks.length === 0) return [];
    try {
      const rows = await this.db
        .insert(memoryBlocks)
        .values(blocks.map((b) => ({ id: newId("blk"), orgId, agentId, label: b.label, value: b.value, limit: b.limit })))
        .returning();
      this.blocksChanged(orgId, agentId);
      return rows.map(blockOut);
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict("duplicate_memory_block", "This agent already has a memory block with one of these labels.");
      throw err;
    }
  }

  /** The agent's own blocks (by creation), then the shared blocks attached to it (by attachment). */
  async listBlocks(orgId: string, agentId: string): Promise<MemoryBlockOut[]> {
    // One statement (it runs before every model call): own and attached blocks in one union.
    const fields = (t: typeof memoryBlocks | typeof sharedBlocks) => ({ id: t.id, label: t.label, value: t.value, limit: t.limit, createdAt: t.createdAt, updatedAt: t.updatedAt });
    const own = this.db
      .select({ ...fields(memoryBlocks), shared: sql<boolean>`false`.as("shared"), attachedAt: sql<Date | null>`null::timestamptz`.as("attached_at") })
      .from(memoryBlocks)
      .where(and(eq(memoryBlocks.orgId, orgId), eq(memoryBlocks.agentId, agentId)));
    const attached = this.db
      .select({ ...fields(sharedBlocks), shared: sql<boolean>`true`.as("shared"), attachedAt: sql<Date | null>`${sharedBlockAgents.createdAt}`.as("attached_at") })
      .from(sharedBlockAgents)
      .innerJoin(sharedBlocks, eq(sharedBlocks.id, sharedBlockAgents.blockId))
      .where(and(eq(sharedBlockAgents.orgId, orgId), eq(sharedBlockAgents.agentId, agentId)));
    // Own blocks by creation (id), then attached ones by attachment.
    const rows = await own.unionAll(attached).orderBy(sql`"shared"`, sql`"attached_at" nulls first`, sql`"id"`);
    return rows.map((r) => (r.shared ? attachedOut(r as unknown as SharedRow, agentId) : blockOut({ ...r, orgId, agentId } as BlockRow)));
  }

  async deleteAgentMemory(orgId: string, agentId: string): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.delete(memoryBlocks).where(and(eq(memoryBlocks.orgId, orgId), eq(memoryBlocks.agentId, agentId)));
      await tx.delete(archivalMemories).where(and(eq(archivalMemories.orgId, orgId), eq(archivalMemories.agentId, agentId)));
      await tx.delete(sharedBlockAgents).where(and(eq(sharedBlockAgents.orgId, orgId), eq(sharedBlockAgents.agentId, agentId)));
    });
    this.blocksChanged(orgId, agentId);
  }

  async runBuiltinTool(orgId: string, agentId: string, name: string, args: Record<string, unknown>): Promise<unknown> {
    if (!isBuiltinMemoryTool(name)) throw notFound(`builtin tool '${name}' (builtins: ${BUILTIN_MEMORY_TOOLS.join(", ")})`);
    args = args ?? {};
    switch (name) {
      case "core_memory_append": {
        const label = requireString(args, "label");
        const content = requireString(args, "content");
        const block = await this.editBlock(orgId, agentId, label, (value) => (value ? `${value}\n${content}` : content));
        return { label: block.label, value: block.value, length: block.value.length, limit: block.limit };
      }
      case "core_memory_replace": {
        const label = requireString(args, "label");
        const oldContent = requireString(args, "old_content");
        const newContent = requireString(args, "new_content", true);
        const block = await this.editBlock(orgId, agentId, label, (value) => {
          if (!value.includes(oldContent)) {
            throw notFoundText(`The memory block '${label}' does not contain the text '${oldContent.slice(0, 200)}'; copy old_content exactly from the block.`);
          }
          return value.split(oldContent).join(newContent);
        });
        return { label: block.label, value: block.value, length: block.value.length, limit: block.limit };
      }
      case "archival_memory_insert": {
        const content = requireString(args, "content");
        const memory = await this.insertArchival(orgId, agentId, { content });
        return { id: memory.id, stored: true };
      }
      case "archival_memory_search": {
        const query = requireString(args, "query");
        const limit = typeof args.limit === "number" && Number.isInteger(args.limit) ? Math.min(Math.max(args.limit, 1), 50) : 10;
        const found = await this.searchArchival(orgId, agentId, query, limit, "hybrid");
        return { results: found.data.map((m) => ({ id: m.id, content: m.content, created_at: m.created_at, score: m.score })) };
      }
    }
  }

  // ---- HTTP-facing (the gateway's controller; the caller's organization is checked) -----

  async listBlocksPage(principal: Principal, agentId: string, page: { limit?: number; after?: string; order?: "asc" | "desc" }): Promise<PageOf<MemoryBlockOut>> {
    await this.assertAgent(principal, agentId);
    const orgId = principal.orgId;
    const own = pageQuery(memoryBlocks.id, page, and(eq(memoryBlocks.orgId, orgId), eq(memoryBlocks.agentId, agentId)));
    const shared = pageQuery(sharedBlocks.id, page, and(eq(sharedBlocks.orgId, orgId), eq(sharedBlockAgents.agentId, agentId)));
    const [ownRows, sharedRows] = await Promise.all([
      this.db.select().from(memoryBlocks).where(own.where).orderBy(own.orderBy).limit(own.limit),
      this.db.select({ block: sharedBlocks }).from(sharedBlocks).innerJoin(sharedBlockAgents, eq(sharedBlockAgents.blockId, sharedBlocks.id)).where(shared.where).orderBy(shared.orderBy).limit(shared.limit),
    ]);
    // Both halves are pages of the same cursor and order: merged, they are the page of the union.
    const merged = [...ownRows.map(blockOut), ...sharedRows.map((r) => attachedOut(r.block, agentId))].sort(byId);
    if (page.order === "desc") merged.reverse();
    return toPage(merged, own.pageSize, (b) => b);
  }

  async getBlock(principal: Principal, agentId: string, label: string): Promise<MemoryBlockOut> {
    await this.assertAgent(principal, agentId);
    const [row] = await this.db.select().from(memoryBlocks).where(this.blockWhere(principal.orgId, agentId, label));
    if (row) return blockOut(row);
    const shared = await this.attachedBlocks(this.db, principal.orgId, agentId, label);
    if (shared[0]) return attachedOut(shared[0], agentId);
    throw notFoundText(`The agent has no memory block labelled '${label}'.`);
  }

  /** Creates or replaces a block; a new block without `limit` gets the default limit. */
  async putBlock(principal: Principal, agentId: string, label: string, input: PutBlockInput): Promise<MemoryBlockOut> {
    await this.assertAgent(principal, agentId);
    if (!labelRe.test(label)) throw badRequest("invalid_memory_block", `The label must match ${LABEL_PATTERN}.`);
    const orgId = principal.orgId;
    const [attached] = await this.attachedBlocks(this.db, orgId, agentId, label);
    if (attached) {
      // The label names a shared block of this agent: replacing it changes it for every agent attached.
      const block = await this.updateShared(orgId, attached.id, { value: input.value, limit: input.limit });
      return attachedOut(block, agentId);
    }
    const block = await this.db.transaction(async (tx) => {
      const [current] = await tx.select().from(memoryBlocks).where(this.blockWhere(orgId, agentId, label)).for("update");
      const limit = input.limit ?? current?.limit ?? DEFAULT_BLOCK_LIMIT;
      if (input.value.length > limit) throw tooLarge(label, input.value.length, limit);
      if (current) {
        const [row] = await tx
          .update(memoryBlocks)
          .set({ value: input.value, limit, updatedAt: new Date() })
          .where(eq(memoryBlocks.id, current.id))
          .returning();
        return blockOut(row);
      }
      const [row] = await tx
        .insert(memoryBlocks)
        .values({ id: newId("blk"), orgId, agentId, label, value: input.value, limit })
        .onConflictDoUpdate({ target: [memoryBlocks.agentId, memoryBlocks.label], set: { value: input.value, limit, updatedAt: new Date() } })
        .returning();
      return blockOut(row);
    });
    this.blocksChanged(orgId, agentId);
    return block;
  }

  async createMemory(principal: Principal, agentId: string, input: CreateMemoryInput, idempotency: IdempotencyScope | null = null): Promise<IdempotentResult<ArchivalMemoryOut>> {
    return withIdempotency(this.db, { orgId: principal.orgId, scope: idempotency, params: { id: agentId }, body: input, staleClaimMs: this.idempotencyStaleMs }, async () => {
      await this.assertAgent(principal, agentId);
      return { status: 201, body: await this.insertArchival(principal.orgId, agentId, input) };
    });
  }

  /** With `query`: ranked full-text search (top `limit`); without: the cursor-paginated listing by creation. */
  async listMemories(principal: Principal, agentId: string, input: MemoryListInput): Promise<PageOf<ArchivalMemoryOut>> {
    await this.assertAgent(principal, agentId);
    const query = input.query?.trim();
    if (query) return this.searchArchival(principal.orgId, agentId, query, input.limit ?? 20, input.mode ?? "hybrid");
    const q = pageQuery(archivalMemories.id, input, and(eq(archivalMemories.orgId, principal.orgId), eq(archivalMemories.agentId, agentId)));
    const rows = await this.db.select(archivalColumns).from(archivalMemories).where(q.where).orderBy(q.orderBy).limit(q.limit);
    return toPage(rows, q, (r) => memoryOut(r));
  }

  async getMemory(principal: Principal, agentId: string, memoryId: string): Promise<ArchivalMemoryOut> {
    await this.assertAgent(principal, agentId);
    if (!isId("mem", memoryId)) throw notFound("memory", memoryId);
    const [row] = await this.db.select(archivalColumns).from(archivalMemories).where(this.memoryWhere(principal.orgId, agentId, memoryId));
    if (!row) throw notFound("memory", memoryId);
    return memoryOut(row);
  }

  async deleteMemory(principal: Principal, agentId: string, memoryId: string): Promise<{ id: string; deleted: true }> {
    await this.assertAgent(principal, agentId);
    if (!isId("mem", memoryId)) throw notFound("memory", memoryId);
    const deleted = await this.db.delete(archivalMemories).where(this.memoryWhere(principal.orgId, agentId, memoryId)).returning({ id: archivalMemories.id });
    if (!deleted.length) throw notFound("memory", memoryId);
    return { id: memoryId, deleted: true };
  }

  // ---- shared blocks (/v1/blocks) ------------------------------------------------------------

  async createSharedBlock(principal: Principal, input: CreateSharedBlockInput, idempotency: IdempotencyScope | null = null): Promise<IdempotentResult<SharedBlockOut>> {
    return withIdempotency(this.db, { orgId: principal.orgId, scope: idempotency, body: input, staleClaimMs: this.idempotencyStaleMs }, async () => {
      const limit = input.limit ?? DEFAULT_BLOCK_LIMIT;
      const value = input.value ?? "";
      if (value.length > limit) throw tooLarge(input.label, value.length, limit);
      const [row] = await this.db
        .insert(sharedBlocks)
        .values({ id: newId("blk"), orgId: principal.orgId, label: input.label, value, limit, description: input.description ?? null })
        .returning();
      return { status: 201, body: sharedOut(row, []) };
    });
  }

  async listSharedBlocks(principal: Principal, input: SharedBlockListInput): Promise<PageOf<SharedBlockOut>> {
    const filter = and(eq(sharedBlocks.orgId, principal.orgId), input.label ? eq(sharedBlocks.label, input.label) : undefined);
    const q = pageQuery(sharedBlocks.id, input, filter);
    const rows = await this.db.select().from(sharedBlocks).where(q.where).orderBy(q.orderBy).limit(q.limit);
    const agents = await this.attachedAgents(rows.map((r) => r.id));
    return toPage(rows, q.pageSize, (r) => sharedOut(r, agents.get(r.id) ?? []));
  }

  async getSharedBlock(principal: Principal, blockId: string): Promise<SharedBlockOut> {
    const row = await this.sharedRow(this.db, principal.orgId, blockId);
    return sharedOut(row, (await this.attachedAgents([row.id])).get(row.id) ?? []);
  }

  /** A changed value, limit or label is in the next prompt of every agent attached. */
  async updateSharedBlock(principal: Principal, blockId: string, input: UpdateSharedBlockInput): Promise<SharedBlockOut> {
    const row = await this.updateShared(principal.orgId, blockId, input);
    return sharedOut(row, (await this.attachedAgents([row.id])).get(row.id) ?? []);
  }

  async deleteSharedBlock(principal: Principal, blockId: string): Promise<{ id: string; deleted: true }> {
    const agents = await this.attachedAgents([blockId]);
    const deleted = await this.db.delete(sharedBlocks).where(and(eq(sharedBlocks.orgId, principal.orgId), eq(sharedBlocks.id, blockId))).returning({ id: sharedBlocks.id });
    if (!deleted.length) throw notFound("block", blockId);
    for (const agentId of agents.get(blockId) ?? []) this.blocksChanged(principal.orgId, agentId);
    return { id: blockId, deleted: true };
  }

  /** Attaches a shared block to an agent; 409 when the agent already has a block with its label. Idempotent. */
  async attachBlock(principal: Principal, agentId: string, blockId: string): Promise<MemoryBlockOut> {
    await this.assertAgent(principal, agentId);
    const orgId = principal.orgId;
    const block = await this.db.transaction(async (tx) => {
      const row = await this.sharedRow(tx, orgId, blockId, true);
      const [own] = await tx.select({ id: memoryBlocks.id }).from(memoryBlocks).where(this.blockWhere(orgId, agentId, row.label));
      const clash = (await this.attachedBlocks(tx, orgId, agentId, row.label)).find((b) => b.id !== row.id);
      if (own || clash) throw conflict("duplicate_memory_block", `The agent already has a memory block labelled '${row.label}'; labels are unique per agent.`);
      await tx.insert(sharedBlockAgents).values({ blockId, agentId, orgId }).onConflictDoNothing();
      return row;
    });
    this.blocksChanged(orgId, agentId);
    return attachedOut(block, agentId);
  }

  async detachBlock(principal: Principal, agentId: string, blockId: string): Promise<{ agent_id: string; label: string; deleted: true }> {
    await this.assertAgent(principal, agentId);
    const row = await this.sharedRow(this.db, principal.orgId, blockId);
    const gone = await this.db
      .delete(sharedBlockAgents)
      .where(and(eq(sharedBlockAgents.orgId, principal.orgId), eq(sharedBlockAgents.agentId, agentId), eq(sharedBlockAgents.blockId, blockId)))
      .returning({ id: sharedBlockAgents.blockId });
    if (!gone.length) throw notFoundText(`The shared block ${blockId} is not attached to this agent.`);
    this.blocksChanged(principal.orgId, agentId);
    return { agent_id: agentId, label: row.label, deleted: true };
  }

  /** Removes a label from the agent: deletes its own block, or detaches the shared block (which stays). */
  async deleteAgentBlock(principal: Principal, agentId: string, label: string): Promise<{ agent_id: string; label: string; deleted: true }> {
    await this.assertAgent(principal, agentId);
    const orgId = principal.orgId;
    const own = await this.db.delete(memoryBlocks).where(this.blockWhere(orgId, agentId, label)).returning({ id: memoryBlocks.id });
    if (!own.length) {
      const [attached] = await this.attachedBlocks(this.db, orgId, agentId, label);
      if (!attached) throw notFoundText(`The agent has no memory block labelled '${label}'.`);
      await this.db.delete(sharedBlockAgents).where(and(eq(sharedBlockAgents.agentId, agentId), eq(sharedBlockAgents.blockId, attached.id)));
    }
    this.blocksChanged(orgId, agentId);
    return { agent_id: agentId, label, deleted: true };
  }

  // ---- internals ---------------------------------------------------------------------------

  /** Shared blocks attached to the agent (optionally: the one with `label`), by attachment. */
  private attachedBlocks(tx: DbOrTx, orgId: string, agentId: string, label?: string): Promise<SharedRow[]> {
    return tx
      .select({ block: sharedBlocks })
      .from(sharedBlockAgents)
      .innerJoin(sharedBlocks, eq(sharedBlocks.id, sharedBlockAgents.blockId))
      .where(and(eq(sharedBlockAgents.orgId, orgId), eq(sharedBlockAgents.agentId, agentId), label ? eq(sharedBlocks.label, label) : undefined))
      .orderBy(asc(sharedBlockAgents.createdAt), asc(sharedBlocks.id))
      .then((rows) => rows.map((r) => r.block));
  }

  private async attachedAgents(blockIds: string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    if (!blockIds.length) return out;
    const rows = await this.db
      .select({ blockId: sharedBlockAgents.blockId, agentId: sharedBlockAgents.agentId })
      .from(sharedBlockAgents)
      .where(inArray(sharedBlockAgents.blockId, blockIds))
      .orderBy(asc(sharedBlockAgents.createdAt));
    for (const r of rows) {
      const list = out.get(r.blockId) ?? [];
      if (list.length < MAX_ATTACHED_AGENTS_SHOWN) list.push(r.agentId);
      out.set(r.blockId, list);
    }
    return out;
  }

  private async sharedRow(tx: DbOrTx, orgId: string, blockId: string, lock = false): Promise<SharedRow> {
    if (!isId("blk", blockId)) throw notFound("block", blockId);
    const q = tx.select().from(sharedBlocks).where(and(eq(sharedBlocks.orgId, orgId), eq(sharedBlocks.id, blockId)));
    const [row] = lock ? await q.for("update") : await q;
    if (!row) throw notFound("block", blockId);
    return row;
  }

  /**
   * Read-modify-write of a shared block under its row lock (concurrent edits by several agents
   * are all kept), then every attached agent's cached blocks are invalidated.
   */
  private async updateShared(orgId: string, blockId: string, input: UpdateSharedBlockInput, edit?: (value: string) => string): Promise<SharedRow> {
    const row = await this.db.transaction(async (tx) => {
      const current = await this.sharedRow(tx, orgId, blockId, true);
      const value = edit ? edit(current.value) : input.value ?? current.value;
      const limit = input.limit ?? current.limit;
      const label = input.label ?? current.label;
      if (value.length > limit) throw tooLarge(label, value.length, limit);
      if (label !== current.label) await this.assertLabelFree(tx, orgId, blockId, label);
      const [row] = await tx
        .update(sharedBlocks)
        .set({ value, limit, label, description: input.description === undefined ? current.description : input.description, updatedAt: new Date() })
        .where(eq(sharedBlocks.id, blockId))
        .returning();
      return row;
    });
    for (const agentId of (await this.attachedAgents([blockId])).get(blockId) ?? []) this.blocksChanged(orgId, agentId);
    return row;
  }

  /** A relabelled shared block must not clash with a label of an agent it is attached to. */
  private async assertLabelFree(tx: DbOrTx, orgId: string, blockId: string, label: string) {
    const clash = await tx.execute(sql`
      select 1 from ${sharedBlockAgents} a
      where a.block_id = ${blockId} and a.org_id = ${orgId} and (
        exists (select 1 from ${memoryBlocks} m where m.agent_id = a.agent_id and m.label = ${label})
        or exists (select 1 from ${sharedBlockAgents} o join ${sharedBlocks} s on s.id = o.block_id where o.agent_id = a.agent_id and s.label = ${label} and s.id <> ${blockId})
      ) limit 1`);
    if (rowsOf(clash).length) throw conflict("duplicate_memory_block", `An agent this block is attached to already has a memory block labelled '${label}'.`);
  }

  private async assertAgent(principal: Principal, agentId: string) {
    if (!isId("agt", agentId)) throw notFound("agent", agentId);
    await this.checkAgent(principal, agentId);
  }

  private blockWhere(orgId: string, agentId: string, label: string) {
    return and(eq(memoryBlocks.orgId, orgId), eq(memoryBlocks.agentId, agentId), eq(memoryBlocks.label, label));
  }

  private memoryWhere(orgId: string, agentId: string, memoryId: string) {
    return and(eq(archivalMemories.orgId, orgId), eq(archivalMemories.agentId, agentId), eq(archivalMemories.id, memoryId));
  }

  /** Read-modify-write of one block under a row lock, so concurrent tool calls do not lose edits. */
  private async editBlock(orgId: string, agentId: string, label: string, edit: (value: string) => string): Promise<{ label: string; value: string; limit: number }> {
    const [attached] = await this.attachedBlocks(this.db, orgId, agentId, label);
    if (attached) return this.updateShared(orgId, attached.id, {}, edit);
    const row = await this.db.transaction(async (tx) => {
      const [current] = await tx.select().from(memoryBlocks).where(this.blockWhere(orgId, agentId, label)).for("update");
      if (!current) throw await this.unknownLabel(tx, orgId, agentId, label);
      const value = edit(current.value);
      if (value.length > current.limit) throw tooLarge(label, value.length, current.limit);
      const [row] = await tx.update(memoryBlocks).set({ value, updatedAt: new Date() }).where(eq(memoryBlocks.id, current.id)).returning();
      return row;
    });
    this.blocksChanged(orgId, agentId);
    return row;
  }

  private async unknownLabel(tx: DbOrTx, orgId: string, agentId: string, label: string) {
    const rows = await tx
      .select({ label: memoryBlocks.label })
      .from(memoryBlocks)
      .where(and(eq(memoryBlocks.orgId, orgId), eq(memoryBlocks.agentId, agentId)));
    const labels = [...rows.map((r) => r.label), ...(await this.attachedBlocks(tx, orgId, agentId)).map((b) => b.label)];
    return notFoundText(`No memory block labelled '${label}'. ${labels.length ? `Existing labels: ${labels.join(", ")}.` : "This agent has no memory blocks."}`);
  }

  /**
   * Stores the passage and, in the same transaction, its `memory.created` event: the memory
   * role's consumer embeds it after the commit (an embedding outage never fails the insert).
   */
  private async insertArchival(orgId: string, agentId: string, input: CreateMemoryInput): Promise<ArchivalMemoryOut> {
    const row = await this.db.transaction(async (tx) => {
      const [row] = await tx
        .insert(archivalMemories)
        .values({ id: newId("mem"), orgId, agentId, content: input.content, metadata: input.metadata ?? {} })
        .returning(archivalColumns);
      await emitEvent(tx, { orgId, type: "memory.created", payload: { memory_id: row.id, agent_id: agentId } });
      return row;
    });
    return memoryOut(row);
  }

  /** The consumer of `memory.created`: embeds the memory if it has no embedding yet (the backfill retries failures). */
  async embedCreated(memoryId: string): Promise<void> {
    await this.embeddings.embedPending([memoryId]);
  }

  /**
   * Archival search. `keyword`: ranked full-text (`websearch_to_tsquery` never fails on user
   * syntax, the GIN index answers `@@`, ts_rank orders). `vector`: cosine similarity of the
   * embeddings. `hybrid` (default): both rankings' top 50 fused by reciprocal rank (score =
   * Σ 1/(60 + rank)), so a passage that shares no word with the query can still come first,
   * and one both rankings like beats one only one of them likes. Without an embedding model
   * (or while the embedding server is down) hybrid is the keyword ranking.
   */
  private async searchArchival(orgId: string, agentId: string, query: string, limit: number, mode: SearchMode): Promise<PageOf<ArchivalMemoryOut>> {
    const vector = mode === "keyword" ? null : await this.embeddings.embedQuery(query);
    if (!vector) return mode === "vector" ? { data: [], has_more: false, next_cursor: null } : this.keywordSearch(orgId, agentId, query, limit);
    const nearest = await this.embeddings.nearest(orgId, agentId, vector, mode === "vector" ? limit + 1 : FUSION_CANDIDATES);
    let ranked: { id: string; score: number }[];
    if (mode === "vector") ranked = nearest.map((n) => ({ id: n.id, score: n.similarity }));
    else {
      const keyword = await this.keywordSearch(orgId, agentId, query, FUSION_CANDIDATES);
      ranked = reciprocalRankFusion([keyword.data.map((m) => m.id), nearest.map((n) => n.id)]);
    }
    const page = ranked.slice(0, limit);
    const rows = page.length ? await this.db.select(archivalColumns).from(archivalMemories).where(and(eq(archivalMemories.orgId, orgId), inArray(archivalMemories.id, page.map((r) => r.id)))) : [];
    const byId = new Map(rows.map((r) => [r.id, r]));
    const data = page.flatMap((r) => (byId.has(r.id) ? [memoryOut(byId.get(r.id)!, r.score)] : []));
    return { data, has_more: ranked.length > limit, next_cursor: null };
  }

  private async keywordSearch(orgId: string, agentId: string, query: string, limit: number): Promise<PageOf<ArchivalMemoryOut>> {
    const tsquery = sql`websearch_to_tsquery('english', ${query})`;
    const score = sql<number>`ts_rank(${archivalMemories.searchVector}, ${tsquery})`.mapWith(Number);
    const rows = await this.db
      .select({ ...archivalColumns, score })
      .from(archivalMemories)
      .where(and(eq(archivalMemories.orgId, orgId), eq(archivalMemories.agentId, agentId), sql`${archivalMemories.searchVector} @@ ${tsquery}`))
      .orderBy(sql`${score} desc`, sql`${archivalMemories.id} desc`)
      .limit(limit + 1);
    const hasMore = rows.length > limit;
    const kept = hasMore ? rows.slice(0, limit) : rows;
    return { data: kept.map((r) => memoryOut(r, r.score)), has_more: hasMore, next_cursor: null };
  }
}

function notFoundText(message: string) {
  return new AppError(404, "not_found", message);
}
