import type { MemoryBlockInput, MemoryBlockOut } from "./model";
import type { MemoryService } from "./service";

export type { ArchivalMemoryOut, MemoryBlockInput, MemoryBlockOut } from "./model";

/**
 * What other roles may call on the memory role (through `p.clients.memory`). Implemented by
 * MemoryService; a direct call in-process, NATS request/reply when split. JSON in, JSON out.
 */
export interface MemoryContract {
  /** Creates the agent's core memory blocks (agent creation); 422 memory_block_too_large when value > limit. */
  createBlocks(orgId: string, agentId: string, blocks: MemoryBlockInput[]): Promise<MemoryBlockOut[]>;
  /** Core memory blocks of an agent (its own, then the shared blocks attached to it); what the run loop renders into the prompt. */
  listBlocks(orgId: string, agentId: string): Promise<MemoryBlockOut[]>;
  /** Removes every block and archival memory of a deleted agent. */
  deleteAgentMemory(orgId: string, agentId: string): Promise<void>;
  /**
   * Runs a builtin memory tool for an agent: core_memory_append {label, content},
   * core_memory_replace {label, old_content, new_content}, archival_memory_insert {content},
   * archival_memory_search {query, limit?}. Failures (unknown label, over limit…) are thrown
   * as AppError 4xx and become error results for the model.
   */
  runBuiltinTool(orgId: string, agentId: string, name: string, args: Record<string, unknown>): Promise<unknown>;
}

export const BUILTIN_MEMORY_TOOLS = ["core_memory_append", "core_memory_replace", "archival_memory_insert", "archival_memory_search"] as const;

export type BuiltinMemoryTool = (typeof BUILTIN_MEMORY_TOOLS)[number];

export const isBuiltinMemoryTool = (name: string): name is BuiltinMemoryTool => (BUILTIN_MEMORY_TOOLS as readonly string[]).includes(name);

/** Definitions (description + JSON Schema of the arguments) the model sees for the builtin memory tools. */
export const BUILTIN_MEMORY_TOOL_DEFS: Record<BuiltinMemoryTool, { description: string; parameters: Record<string, unknown> }> = {
  core_memory_append: {
    description: "Append text to one of your core memory blocks (always shown in your instructions). Use it to remember lasting facts about the user or yourself.",
    parameters: {
      type: "object",
      properties: {
        label: { type: "string", description: "Label of the block to append to, e.g. `human` or `persona`" },
        content: { type: "string", minLength: 1, description: "Text to append (on a new line)" },
      },
      required: ["label", "content"],
      additionalProperties: false,
    },
  },
  core_memory_replace: {
    description: "Replace text in one of your core memory blocks. Every occurrence of old_content is replaced by new_content (empty new_content deletes it).",
    parameters: {
      type: "object",
      properties: {
        label: { type: "string", description: "Label of the block to edit" },
        old_content: { type: "string", minLength: 1, description: "Exact text currently in the block" },
        new_content: { type: "string", description: "Replacement text" },
      },
      required: ["label", "old_content", "new_content"],
      additionalProperties: false,
    },
  },
  archival_memory_insert: {
    description: "Store a passage in your archival memory (long-term, unlimited, not shown in your instructions; find it later with archival_memory_search).",
    parameters: {
      type: "object",
      properties: { content: { type: "string", minLength: 1, maxLength: 100000, description: "The passage to store" } },
      required: ["content"],
      additionalProperties: false,
    },
  },
  archival_memory_search: {
    description: "Search your archival memory by meaning and words (hybrid: embeddings + full text), best matches first.",
    parameters: {
      type: "object",
      properties: {
        query: { type: "string", minLength: 1, maxLength: 1000, description: "What to look for (a question or words); \"quoted phrases\", or, -exclusion work for the full-text half" },
        limit: { type: "integer", minimum: 1, maximum: 50, default: 10, description: "How many results (default 10)" },
      },
      required: ["query"],
      additionalProperties: false,
    },
  },
};

/**
 * The memory role's RPC surface: what gateways and other roles may call through
 * `p.clients.memory`. Over the bus nothing else is served (src/platform/rpc.ts).
 */
export const MEMORY_RPC = [
  "createBlocks", "listBlocks", "deleteAgentMemory", "runBuiltinTool", "listBlocksPage", "getBlock",
  "putBlock", "createMemory", "listMemories", "getMemory", "deleteMemory", "deleteAgentBlock", "createSharedBlock", "listSharedBlocks",
  "getSharedBlock", "updateSharedBlock", "deleteSharedBlock", "attachBlock", "detachBlock",
] as const satisfies readonly (keyof MemoryService)[];
export type MemoryClient = Pick<MemoryService, (typeof MEMORY_RPC)[number]>;
