/** The memory controller: /v1/agents/:id/memory/blocks, /v1/agents/:id/memories, shared /v1/blocks. */
import { Elysia } from "elysia";
import type { AuthGuard } from "../../platform/http/auth-guard";
import { idempotencyKeys } from "../../platform/http/idempotency";
import { errors, PageQuery } from "../../platform/http/models";
import type { AppPlatform } from "../clients";
import {
  AgentIdParam, ArchivalMemory, ArchivalMemoryPage, AttachParams, BlockParams, CreateMemoryBody, CreateSharedBlockBody, Deleted, Detached, MemoryBlock,
  MemoryBlockPage, MemoryListQuery, MemoryParams, PutBlockBody, SharedBlock, SharedBlockListQuery, SharedBlockPage, SharedBlockParam, UpdateSharedBlockBody,
} from "./model";

export function memoryController(p: AppPlatform, guard: AuthGuard) {
  const tags = ["memory"];
  return new Elysia({ name: "memory-controller" })
    .use(guard.plugin)
    .use(idempotencyKeys)
    .get("/agents/:id/memory/blocks", ({ principal, params, query }) => p.clients.memory.listBlocksPage(principal, params.id, query), {
      auth: true,
      params: AgentIdParam,
      query: PageQuery,
      response: { 200: MemoryBlockPage, ...errors(400, 401, 404) },
      detail: { tags, summary: "List the agent's core memory blocks (always in its prompt)" },
    })
    .get("/agents/:id/memory/blocks/:label", ({ principal, params }) => p.clients.memory.getBlock(principal, params.id, params.label), {
      auth: true,
      params: BlockParams,
      response: { 200: MemoryBlock, ...errors(400, 401, 404) },
      detail: { tags, summary: "Get one core memory block" },
    })
    .put("/agents/:id/memory/blocks/:label", ({ principal, params, body }) => p.clients.memory.putBlock(principal, params.id, params.label, body), {
      auth: true,
      params: BlockParams,
      body: PutBlockBody,
      response: { 200: MemoryBlock, ...errors(400, 401, 404, 422) },
      detail: { tags, summary: "Create or replace a core memory block (value over its limit → 422 memory_block_too_large)" },
    })
    .delete("/agents/:id/memory/blocks/:label", ({ principal, params }) => p.clients.memory.deleteAgentBlock(principal, params.id, params.label), {
      auth: true,
      params: BlockParams,
      response: { 200: Detached, ...errors(400, 401, 404) },
      detail: { tags, summary: "Remove a label from the agent: deletes its own block, or detaches the shared block (which stays)" },
    })
    .post(
      "/blocks",
      async ({ principal, body, idempotency, set }) => {
        const result = await p.clients.memory.createSharedBlock(principal, body, idempotency);
        set.status = result.status;
        return result.body;
      },
      {
        auth: true,
        idempotent: true,
        body: CreateSharedBlockBody,
        response: { 201: SharedBlock, ...errors(400, 401, 409, 422) },
        detail: { tags, summary: "Create a shared memory block (attach it to any number of agents)" },
      },
    )
    .get("/blocks", ({ principal, query }) => p.clients.memory.listSharedBlocks(principal, query), {
      auth: true,
      query: SharedBlockListQuery,
      response: { 200: SharedBlockPage, ...errors(400, 401) },
      detail: { tags, summary: "List the organization's shared memory blocks" },
    })
    .get("/blocks/:id", ({ principal, params }) => p.clients.memory.getSharedBlock(principal, params.id), {
      auth: true,
      params: SharedBlockParam,
      response: { 200: SharedBlock, ...errors(400, 401, 404) },
      detail: { tags, summary: "Get a shared memory block and the agents it is attached to" },
    })
    .patch("/blocks/:id", ({ principal, params, body }) => p.clients.memory.updateSharedBlock(principal, params.id, body), {
      auth: true,
      params: SharedBlockParam,
      body: UpdateSharedBlockBody,
      response: { 200: SharedBlock, ...errors(400, 401, 404, 409, 422) },
      detail: { tags, summary: "Change a shared block: every attached agent's next prompt shows it" },
    })
    .delete("/blocks/:id", ({ principal, params }) => p.clients.memory.deleteSharedBlock(principal, params.id), {
      auth: true,
      params: SharedBlockParam,
      response: { 200: Deleted, ...errors(400, 401, 404) },
      detail: { tags, summary: "Delete a shared block (detached from every agent)" },
    })
    .post("/agents/:id/blocks/:block_id", ({ principal, params }) => p.clients.memory.attachBlock(principal, params.id, params.block_id), {
      auth: true,
      params: AttachParams,
      response: { 200: MemoryBlock, ...errors(400, 401, 404, 409) },
      detail: { tags, summary: "Attach a shared block to the agent (409 when the agent already has its label)" },
    })
    .delete("/agents/:id/blocks/:block_id", ({ principal, params }) => p.clients.memory.detachBlock(principal, params.id, params.block_id), {
      auth: true,
      params: AttachParams,
      response: { 200: Detached, ...errors(400, 401, 404) },
      detail: { tags, summary: "Detach a shared block from the agent" },
    })
    .post(
      "/agents/:id/memories",
      async ({ principal, params, body, idempotency, set }) => {
        const result = await p.clients.memory.createMemory(principal, params.id, body, idempotency);
        set.status = result.status;
        return result.body;
      },
      {
        auth: true,
        idempotent: true,
        params: AgentIdParam,
        body: CreateMemoryBody,
        response: { 201: ArchivalMemory, ...errors(400, 401, 404, 409) },
        detail: { tags, summary: "Store a passage in the agent's archival memory" },
      },
    )
    .get("/agents/:id/memories", ({ principal, params, query }) => p.clients.memory.listMemories(principal, params.id, query), {
      auth: true,
      params: AgentIdParam,
      query: MemoryListQuery,
      response: { 200: ArchivalMemoryPage, ...errors(400, 401, 404) },
      detail: { tags, summary: "Search archival memory (hybrid: full text + embeddings fused by reciprocal rank, best first) or, without query, list it by creation" },
    })
    .get("/agents/:id/memories/:memory_id", ({ principal, params }) => p.clients.memory.getMemory(principal, params.id, params.memory_id), {
      auth: true,
      params: MemoryParams,
      response: { 200: ArchivalMemory, ...errors(400, 401, 404) },
      detail: { tags, summary: "Get one archival memory" },
    })
    .delete("/agents/:id/memories/:memory_id", ({ principal, params }) => p.clients.memory.deleteMemory(principal, params.id, params.memory_id), {
      auth: true,
      params: MemoryParams,
      response: { 200: Deleted, ...errors(401, 404) },
      detail: { tags, summary: "Delete an archival memory" },
    });
}
