/** Memory: core memory blocks (always in the prompt) and archival memory (searched). */
import { sql } from "drizzle-orm";
import { index, integer, jsonb, pgTable, primaryKey, real, text, uniqueIndex } from "drizzle-orm/pg-core";
import { createdAt, tsvector, updatedAt } from "./columns";

export const memoryBlocks = pgTable(
  "memory_blocks",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id").notNull(),
    agentId: text("agent_id").notNull(),
    label: text("label").notNull(),
    value: text("value").notNull().default(""),
    limit: integer("char_limit").notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex("memory_blocks_agent_label_key").on(t.agentId, t.label)],
);

export const archivalMemories = pgTable(
  "archival_memories",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id").notNull(),
    agentId: text("agent_id").notNull(),
    content: text("content").notNull(),
    metadata: jsonb("metadata").$type<Record<string, unknown>>().notNull().default({}),
    searchVector: tsvector("search_vector").generatedAlwaysAs(sql`to_tsvector('english', content)`),
    /**
     * The content's embedding (unit length), null until computed (the outbox consumer, or the
     * backfill after an embedding outage). A plain real[] on every backend: with pgvector it is
     * cast to `vector` for `<=>`, without it the cosine is a dot product in SQL.
     */
    embedding: real("embedding").array(),
    /** The model that computed `embedding` (after --embedding-model changed, start-up clears the others and the backfill re-embeds). */
    embeddingModel: text("embedding_model"),
    createdAt: createdAt(),
  },
  (t) => [
    index("archival_memories_agent_idx").on(t.agentId, t.id),
    index("archival_memories_search_idx").using("gin", t.searchVector),
    // The backfill's worklist: memories still without an embedding.
    index("archival_memories_unembedded_idx").on(t.id).where(sql`embedding is null`),
  ],
);

/** Blocks of their own: one value shown in the prompt of every agent it is attached to. */
export const sharedBlocks = pgTable(
  "shared_blocks",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id").notNull(),
    label: text("label").notNull(),
    value: text("value").notNull().default(""),
    limit: integer("char_limit").notNull(),
    description: text("description"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index("shared_blocks_org_idx").on(t.orgId, t.id)],
);

/** Which agents a shared block is attached to (an agent's labels stay unique: checked on attach). */
export const sharedBlockAgents = pgTable(
  "shared_block_agents",
  {
    blockId: text("block_id").notNull().references(() => sharedBlocks.id, { onDelete: "cascade" }),
    agentId: text("agent_id").notNull(),
    orgId: text("org_id").notNull(),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.blockId, t.agentId] }), index("shared_block_agents_agent_idx").on(t.agentId)],
);
