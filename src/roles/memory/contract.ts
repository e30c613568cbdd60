/**
 * What other roles may call on the memory role (through `p.clients.memory`). Implemented by
 * MemoryService; a direct call in-process, NATS request/reply when split. JSON in, JSON out.
 */
export interface MemoryBlockInput {
  label: string;
  value: string;
  /** Maximum characters of `value`. */
  limit: number;
}
export interface MemoryBlockOut extends MemoryBlockInput {
  id: string;
  agent_id: string;
  created_at: string;
  updated_at: string;
}
export interface ArchivalMemoryOut {
  id: string;
  agent_id: string;
  content: string;
  metadata: Record<string, unknown>;
  created_at: string;
  /** Present on search results: higher is a better match. */
  score?: number;
}

export interface MemoryContract {
  /** Creates the agent's core memory blocks (agent creation); 422 memory_block_too_large when value > limit. */
  createBlocks(orgId: string, agentId: string, blocks: MemoryBlockInput[]): Promise<MemoryBlockOut[]>;
  /** Core memory blocks of an agent, by label; what the run loop renders into the prompt. */
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
