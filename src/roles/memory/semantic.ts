/**
 * Semantic archival memory: embeddings of archival passages and the vector half of the hybrid
 * search. Two SQL back ends, chosen once at start-up:
 *
 * - `pgvector`: the `vector` extension is available (pg_available_extensions) and could be
 *   created — always on the embedded default (PGlite's pgvector is embedded in the binary),
 *   on PostgreSQL when the server has it. Similarity is `1 - (embedding::vector <=> $q)`.
 * - `array`: no pgvector (e.g. a stock PostgreSQL 15): the embedding stays a `real[]` and the
 *   cosine is computed in SQL as the dot product of two unit vectors (`unnest` of both arrays).
 *
 * Both scan the agent's rows (the agent_id index narrows them first): exact, no ANN index —
 * an agent's archive is thousands of rows, not millions.
 *
 * Embeddings are computed after the insert commits, never inside it: the insert writes a
 * `memory.created` outbox event in its transaction, the memory role consumes it and embeds
 * the row; if the embedding server is down the row simply stays without an embedding (it is
 * found by full-text meanwhile) and the backfill loop fills it in later. No memory is lost.
 */
import { and, eq, inArray, isNotNull, isNull, ne, sql } from "drizzle-orm";
import { archivalMemories } from "../../../schema";
import type { Db } from "../../platform/db";
import { rowsOf } from "../../platform/db/rows";
import type { Logger } from "../../platform/logging";
import { EMBED_BATCH, type Embedder } from "../../platform/model/embeddings";

export type VectorBackend = "pgvector" | "array";

/** pgvector when the extension exists and can be created; the real[] fallback otherwise. */
export async function chooseVectorBackend(db: Db, log: Logger): Promise<VectorBackend> {
  const available = rowsOf<{ n: number }>(await db.execute(sql`select count(*)::int as n from pg_available_extensions where name = 'vector'`))[0]?.n > 0;
  if (!available) return "array";
  try {
    await db.execute(sql`create extension if not exists vector`);
    return "pgvector";
  } catch (err) {
    log.warn("pgvector is available but could not be created (needs CREATE on the database); archival similarity uses the real[] fallback", { error: (err as Error).message });
    return "array";
  }
}

/** After a failed query embedding, searches skip the embedding server this long (keyword ranking meanwhile). */
const QUERY_EMBEDDING_PAUSE_MS = 10_000;

export class ArchivalEmbeddings {
  /** performance.now() before which query embeddings are not attempted (the server just failed). */
  private pausedUntil = 0;

  constructor(
    private db: Db,
    readonly backend: VectorBackend,
    /** Null when --embedding-model=none: keyword search only. */
    readonly embedder: Embedder | null,
    private log: Logger,
  ) {}

  /** Embeds the given memories (or, without ids, the next batch still lacking one); returns how many it embedded. Throws when the embedding server fails. */
  async embedPending(ids?: string[]): Promise<number> {
    const embedder = this.embedder;
    if (!embedder) return 0;
    const rows = await this.db
      .select({ id: archivalMemories.id, content: archivalMemories.content })
      .from(archivalMemories)
      .where(ids ? and(isNull(archivalMemories.embedding), inArray(archivalMemories.id, ids)) : isNull(archivalMemories.embedding))
      .orderBy(archivalMemories.id)
      .limit(EMBED_BATCH);
    if (rows.length === 0) return 0;
    const vectors = await embedder.embed(rows.map((r) => r.content));
    this.pausedUntil = 0; // the server answers again: searches use it at once
    for (const [i, row] of rows.entries()) {
      await this.db.update(archivalMemories).set({ embedding: vectors[i], embeddingModel: embedder.model }).where(eq(archivalMemories.id, row.id));
    }
    return rows.length;
  }

  /** The query's embedding, or null (no embedder, or the server failed: the search stays keyword-only). */
  async embedQuery(query: string): Promise<number[] | null> {
    if (!this.embedder || performance.now() < this.pausedUntil) return null;
    try {
      return (await this.embedder.embed([query]))[0];
    } catch (err) {
      this.pausedUntil = performance.now() + QUERY_EMBEDDING_PAUSE_MS;
      this.log.warn("archival search: query embedding failed; ranking by full text only", { error: (err as Error).message, paused_ms: QUERY_EMBEDDING_PAUSE_MS });
      return null;
    }
  }

  /** The agent's memories most similar to `vector`, best first (ids and cosine similarity). */
  async nearest(orgId: string, agentId: string, vector: number[], k: number): Promise<{ id: string; similarity: number }[]> {
    const similarity = this.backend === "pgvector"
      ? sql`1 - (${archivalMemories.embedding}::vector <=> ${`[${vector.join(",")}]`}::vector)`
      : sql`(select sum(a * b) from unnest(${archivalMemories.embedding}, ${`{${vector.join(",")}}`}::real[]) as v(a, b))`;
    const rows = await this.db
      .select({ id: archivalMemories.id, similarity: sql<number>`${similarity}`.mapWith(Number) })
      .from(archivalMemories)
      .where(and(
        eq(archivalMemories.orgId, orgId),
        eq(archivalMemories.agentId, agentId),
        eq(archivalMemories.embeddingModel, this.embedder?.model ?? ""),
        // Vectors of another dimension (a changed model not yet re-embedded) cannot be compared.
        sql`array_length(${archivalMemories.embedding}, 1) = ${vector.length}`,
      ))
      .orderBy(sql`2 desc`, sql`${archivalMemories.id} desc`)
      .limit(k);
    return rows;
  }

  /**
   * After --embedding-model changed: the other model's vectors cannot be compared with the new
   * one's, so they are cleared (once, at start) and the backfill embeds those rows again.
   */
  async forgetOtherModels(): Promise<number> {
    if (!this.embedder) return 0;
    const cleared = await this.db
      .update(archivalMemories)
      .set({ embedding: null, embeddingModel: null })
      .where(and(isNotNull(archivalMemories.embeddingModel), ne(archivalMemories.embeddingModel, this.embedder.model)))
      .returning({ id: archivalMemories.id });
    if (cleared.length) this.log.info("archival memories embedded by another model will be embedded again", { count: cleared.length, embedding_model: this.embedder.model });
    return cleared.length;
  }

  /** Fills in embeddings missing after an outage, every `intervalMs`, until stopped. */
  startBackfill(intervalMs: number) {
    let stopped = false;
    let wake: (() => void) | null = null;
    const loop = async () => {
      while (!stopped) {
        try {
          while (!stopped && (await this.embedPending()) > 0);
        } catch (err) {
          this.log.warn("archival embeddings backfill failed; will retry", { error: (err as Error).message, retry_in_ms: intervalMs });
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, intervalMs);
        });
      }
    };
    const running = this.embedder ? loop() : Promise.resolve();
    return {
      async stop() {
        stopped = true;
        (wake as (() => void) | null)?.();
        await running;
      },
    };
  }
}
