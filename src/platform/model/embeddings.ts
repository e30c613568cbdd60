/**
 * OpenAI-compatible embeddings: POST `${baseUrl}/embeddings` `{model, input: string[]}` →
 * `{data: [{index, embedding}]}`. Vectors come back normalised to unit length, so cosine
 * similarity is a dot product (what the SQL fallback without pgvector computes). One attempt
 * per call, bounded by a timeout: callers decide what a failure means (an insert leaves the
 * row for the backfill, a search falls back to keyword ranking). The API key is never logged.
 */
export interface Embedder {
  model: string;
  embed(texts: string[]): Promise<number[][]>;
}

export class EmbeddingError extends Error {}

/** At most this many inputs per request (OpenAI allows 2048; smaller batches fail smaller). */
export const EMBED_BATCH = 64;

export function createEmbedder(opts: { baseUrl: string; apiKey?: string; model: string; timeoutMs?: number; fetch?: typeof fetch }): Embedder {
  const url = `${opts.baseUrl.replace(/\/+$/, "")}/embeddings`;
  const send = opts.fetch ?? globalThis.fetch;
  const timeoutMs = opts.timeoutMs ?? 15_000;
  return {
    model: opts.model,
    async embed(texts) {
      if (texts.length === 0) return [];
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (opts.apiKey) headers.authorization = `Bearer ${opts.apiKey}`;
      let res: Response;
      try {
        res = await send(url, { method: "POST", headers, body: JSON.stringify({ model: opts.model, input: texts }), signal: AbortSignal.timeout(timeoutMs) });
      } catch (err) {
        throw new EmbeddingError(`embedding request failed: ${(err as Error).name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : (err as Error).message}`);
      }
      if (!res.ok) {
        await res.body?.cancel().catch(() => {});
        throw new EmbeddingError(`embedding server answered ${res.status}`);
      }
      const body = (await res.json().catch(() => null)) as { data?: { index?: number; embedding?: unknown }[] } | null;
      const vectors: number[][] = new Array(texts.length);
      for (const [i, item] of (body?.data ?? []).entries()) {
        const at = typeof item.index === "number" ? item.index : i;
        if (Array.isArray(item.embedding) && item.embedding.length > 0 && item.embedding.every((x) => typeof x === "number" && Number.isFinite(x))) {
          vectors[at] = normalise(item.embedding as number[]);
        }
      }
      for (let i = 0; i < texts.length; i++) if (!vectors[i]) throw new EmbeddingError(`embedding server returned no vector for input ${i}`);
      return vectors;
    },
  };
}

export function normalise(v: number[]): number[] {
  const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  return norm > 0 ? v.map((x) => x / norm) : v;
}

/**
 * Reciprocal rank fusion (Cormack et al. 2009): each list contributes 1 / (k + rank) for an
 * item at 1-based `rank`; items are ordered by the sum. k = 60 damps the head so that one
 * list's top hit does not drown an item both lists rank well. Ties keep first-seen order.
 */
export function reciprocalRankFusion(lists: string[][], k = 60): { id: string; score: number }[] {
  const scores = new Map<string, number>();
  for (const list of lists) list.forEach((id, i) => scores.set(id, (scores.get(id) ?? 0) + 1 / (k + i + 1)));
  return [...scores.entries()].map(([id, score]) => ({ id, score })).sort((a, b) => b.score - a.score);
}
