/** The embeddings client and the reciprocal rank fusion of the hybrid archival search. */
import { afterAll, describe, expect, test } from "bun:test";
import { createEmbedder, EmbeddingError, reciprocalRankFusion } from "./embeddings";

describe("reciprocal rank fusion", () => {
  test("an item both lists rank beats one only one list ranks first; ties keep first-seen order", () => {
    const fused = reciprocalRankFusion([["a", "b"], ["c", "b"]]);
    expect(fused.map((f) => f.id)).toEqual(["b", "a", "c"]);
    expect(fused[0].score).toBeCloseTo(2 / 62, 12);
    expect(fused[1].score).toBeCloseTo(1 / 61, 12);
  });

  test("one empty list (no full-text match) leaves the other's order", () => {
    expect(reciprocalRankFusion([[], ["x", "y", "z"]]).map((f) => f.id)).toEqual(["x", "y", "z"]);
  });
});

describe("embeddings client", () => {
  let answer: (body: any) => Response = () => new Response("{}");
  const seen: { body: any; auth: string | null }[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const body = await req.json();
      seen.push({ body, auth: req.headers.get("authorization") });
      return answer(body);
    },
  });
  afterAll(() => void server.stop(true));
  const embedder = createEmbedder({ baseUrl: `http://127.0.0.1:${server.port}/v1/`, apiKey: "sk-embed", model: "m", timeoutMs: 2000 });

  test("POST /embeddings {model, input}; vectors by index, unit length", async () => {
    answer = (b) => Response.json({ data: b.input.map((_: string, i: number) => ({ index: b.input.length - 1 - i, embedding: i === 0 ? [0, 2] : [3, 4] })) });
    expect(await embedder.embed(["first", "second"])).toEqual([[0.6, 0.8], [0, 1]]);
    expect(seen.at(-1)).toEqual({ body: { model: "m", input: ["first", "second"] }, auth: "Bearer sk-embed" });
  });

  test("an error status, a missing vector or a non-number fails with EmbeddingError (the key never in the message)", async () => {
    answer = () => new Response("sk-embed is wrong", { status: 401 });
    await expect(embedder.embed(["x"])).rejects.toThrow(new EmbeddingError("embedding server answered 401"));
    answer = () => Response.json({ data: [] });
    await expect(embedder.embed(["x"])).rejects.toThrow(/no vector for input 0/);
    answer = () => Response.json({ data: [{ index: 0, embedding: [1, "2"] }] });
    await expect(embedder.embed(["x"])).rejects.toBeInstanceOf(EmbeddingError);
    expect(await embedder.embed([])).toEqual([]);
  });
});
