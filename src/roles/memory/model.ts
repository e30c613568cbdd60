/** Route models of the memory role: the single source of truth for validation and OpenAPI. */
import { t } from "elysia";
import { IdOf, Metadata, Page, Timestamp, Enum } from "../../platform/http/models";

/** Letta's default core-memory block size, in characters. */
export const DEFAULT_BLOCK_LIMIT = 5000;
export const MAX_BLOCK_LIMIT = 100_000;
export const MAX_ARCHIVAL_CONTENT = 100_000;
export const MAX_LABEL_LENGTH = 64;
export const LABEL_PATTERN = `^[A-Za-z0-9_.-]{1,${MAX_LABEL_LENGTH}}$`;

export const BlockLabel = t.String({ pattern: LABEL_PATTERN, description: "Block label (letters, digits, _ . -), e.g. `persona` or `human`" });
export const BlockLimit = t.Integer({ minimum: 1, maximum: MAX_BLOCK_LIMIT, description: "Maximum characters of the value" });

/** A core memory block given at agent creation (`memory_blocks` of POST /v1/agents). */
export const MemoryBlockIn = t.Object({
  label: t.String({ minLength: 1, maxLength: MAX_LABEL_LENGTH, pattern: LABEL_PATTERN, description: "Block name, e.g. persona or human" }),
  value: t.String({ maxLength: MAX_BLOCK_LIMIT }),
  limit: t.Optional(t.Integer({ minimum: 1, maximum: MAX_BLOCK_LIMIT, default: DEFAULT_BLOCK_LIMIT, description: "Maximum characters of value" })),
});
/** What the memory role stores for a block: its limit is always known (the default applied). */
export type MemoryBlockInput = Required<typeof MemoryBlockIn.static>;

const AgentId = IdOf("agt", "Agent id (agt_…)");
export const AgentIdParam = t.Object({ id: AgentId });
export const BlockParams = t.Object({ id: AgentId, label: BlockLabel });
export const MemoryParams = t.Object({ id: AgentId, memory_id: IdOf("mem", "Archival memory id (mem_…)") });

export const MemoryBlock = t.Object({
  id: t.String(),
  agent_id: t.String(),
  label: t.String(),
  value: t.String(),
  limit: t.Integer(),
  shared: t.Boolean({ description: "A shared block (/v1/blocks, `id` is its id) attached to this agent; false: the agent's own block" }),
  created_at: Timestamp,
  updated_at: Timestamp,
});
export const MemoryBlockPage = Page(MemoryBlock);

export const PutBlockBody = t.Object({
  value: t.String({ maxLength: MAX_BLOCK_LIMIT, description: "The whole new value (at most `limit` characters)" }),
  limit: t.Optional(BlockLimit),
});

export const ArchivalMemory = t.Object({
  id: t.String(),
  agent_id: t.String(),
  content: t.String(),
  metadata: t.Record(t.String(), t.Any()),
  embedded: t.Boolean({ description: "Whether its embedding is computed yet (found by full text until then)" }),
  created_at: Timestamp,
  score: t.Optional(t.Number({ description: "Search results only, higher is better: the fused reciprocal-rank score (hybrid), ts_rank (keyword) or cosine similarity (vector)" })),
});
export const ArchivalMemoryPage = Page(ArchivalMemory);

export const CreateMemoryBody = t.Object({
  content: t.String({ minLength: 1, maxLength: MAX_ARCHIVAL_CONTENT }),
  metadata: t.Optional(Metadata),
});

export const SEARCH_MODES = ["hybrid", "keyword", "vector"] as const;
export type SearchMode = (typeof SEARCH_MODES)[number];

export const MemoryListQuery = t.Object({
  query: t.Optional(
    t.String({
      maxLength: 1000,
      description: "Search (web-search syntax: words, \"quoted phrases\", or, -exclusion); results ranked best first",
    }),
  ),
  mode: t.Optional(Enum(SEARCH_MODES, { default: "hybrid", description: "With `query`: hybrid (full text + embeddings, fused by reciprocal rank), keyword or vector" })),
  limit: t.Optional(t.Integer({ minimum: 1, maximum: 100, default: 20, description: "Page size (1-100)" })),
  after: t.Optional(t.String({ maxLength: 64, description: "Cursor (listing without `query`): the `next_cursor` of the previous page" })),
  before: t.Optional(t.String({ maxLength: 64, description: "Cursor (listing without `query`): the items just before this id; has_more and next_cursor then continue backwards" })),
  order: t.Optional(Enum(["asc", "desc"], { default: "asc", description: "Listing without `query`: by creation time" })),
});

export const Deleted = t.Object({ id: t.String(), deleted: t.Literal(true) });

// ---- shared blocks (/v1/blocks) -------------------------------------------------------------

const SharedBlockId = IdOf("blk", "Shared block id (blk_…)");
export const SharedBlockParam = t.Object({ id: SharedBlockId });
export const AttachParams = t.Object({ id: AgentId, block_id: SharedBlockId });
export const MAX_ATTACHED_AGENTS_SHOWN = 100;

export const SharedBlock = t.Object({
  id: t.String(),
  label: t.String(),
  value: t.String(),
  limit: t.Integer(),
  description: t.Union([t.String(), t.Null()]),
  agent_ids: t.Array(t.String(), { description: `Agents it is attached to (the first ${MAX_ATTACHED_AGENTS_SHOWN})` }),
  created_at: Timestamp,
  updated_at: Timestamp,
});
export const SharedBlockPage = Page(SharedBlock);

export const CreateSharedBlockBody = t.Object({
  label: BlockLabel,
  value: t.String({ maxLength: MAX_BLOCK_LIMIT, default: "" }),
  limit: t.Optional(BlockLimit),
  description: t.Optional(t.String({ maxLength: 1000 })),
});
export const UpdateSharedBlockBody = t.Object({
  label: t.Optional(BlockLabel),
  value: t.Optional(t.String({ maxLength: MAX_BLOCK_LIMIT })),
  limit: t.Optional(BlockLimit),
  description: t.Optional(t.Union([t.String({ maxLength: 1000 }), t.Null()])),
});
export const SharedBlockListQuery = t.Object({
  limit: t.Optional(t.Integer({ minimum: 1, maximum: 100, default: 20, description: "Page size (1-100)" })),
  after: t.Optional(t.String({ maxLength: 64, description: "Cursor: the `next_cursor` of the previous page" })),
  order: t.Optional(Enum(["asc", "desc"], { default: "asc" })),
  label: t.Optional(BlockLabel),
});
export const Detached = t.Object({ agent_id: t.String(), label: t.String(), deleted: t.Literal(true) });

export type SharedBlockOut = typeof SharedBlock.static;
export type CreateSharedBlockInput = typeof CreateSharedBlockBody.static;
export type UpdateSharedBlockInput = typeof UpdateSharedBlockBody.static;
export type SharedBlockListInput = typeof SharedBlockListQuery.static;

export type MemoryBlockOut = typeof MemoryBlock.static;
export type ArchivalMemoryOut = typeof ArchivalMemory.static;
export type PutBlockInput = typeof PutBlockBody.static;
export type CreateMemoryInput = typeof CreateMemoryBody.static;
export type MemoryListInput = typeof MemoryListQuery.static;
