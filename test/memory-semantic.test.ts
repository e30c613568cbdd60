/**
 * Semantic archival memory on the compiled binary, on the embedded default (PGlite with its
 * embedded pgvector) and on real PostgreSQL + NATS (this machine's PostgreSQL has no
 * pgvector: the real[] fallback). Embeddings come from the fake model's /embeddings, whose
 * vectors make synonyms close. Prints hits@1 of keyword-only vs hybrid on the labelled set.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { apiClient } from "./support/api";
import { ARCHIVAL_MEMORIES, ARCHIVAL_QUERIES } from "./support/archival-set";
import { describeReal } from "./support/backends";
import { startBinary, unlimitedUser, type Deployment } from "./support/binary-deployment";
import { waitFor } from "./support/cluster";
import { startFakeModel, type FakeModel } from "./support/fake-model";

function semanticSuite(name: string, real: boolean, expectedBackend: string) {
  describe(name, () => {
    let fake: FakeModel;
    let deployment: Deployment;
    let user: Awaited<ReturnType<typeof unlimitedUser>>;

    beforeAll(async () => {
      fake = await startFakeModel();
      deployment = await startBinary(real, [`--model-base-url=${fake.url}`, "--embedding-model=fake-embed", "--embedding-backfill-interval=300", "--log-level=info"]);
      user = await unlimitedUser(apiClient(deployment.child.url));
    }, 120_000);
    afterAll(async () => {
      await deployment?.stop();
      fake?.stop();
    }, 60_000);

    const search = (agentId: string, query: string, mode: string) => user.ok("GET", `/v1/agents/${agentId}/memories?query=${encodeURIComponent(query)}&mode=${mode}&limit=5`).then((b) => b.data as any[]);

    test(`inserted memories are embedded through the outbox; a query sharing no word finds its memory first; hits@1 keyword vs hybrid`, async () => {
      const agent = await user.ok("POST", "/v1/agents", { name: "semantic", model: "fake-model" });
      const ids: string[] = [];
      for (const content of ARCHIVAL_MEMORIES) ids.push((await user.ok("POST", `/v1/agents/${agent.id}/memories`, { content })).id);
      await waitFor("every memory embedded", async () => {
        const page = await user.ok("GET", `/v1/agents/${agent.id}/memories?limit=100`);
        return page.data.every((m: any) => m.embedded === true);
      }, 30_000);
      expect(fake.embeddingRequests.every((r) => r.model === "fake-embed")).toBe(true);

      // "automobile" shares no word with "The user drives a red Toyota sedan…".
      expect(await search(agent.id, "automobile", "keyword")).toEqual([]);
      const [first] = await search(agent.id, "automobile", "hybrid");
      expect(first).toMatchObject({ id: ids[1], content: ARCHIVAL_MEMORIES[1], embedded: true });

      let keywordHits = 0;
      let hybridHits = 0;
      const misses: string[] = [];
      for (const [query, expected] of ARCHIVAL_QUERIES) {
        if ((await search(agent.id, query, "keyword"))[0]?.id === ids[expected]) keywordHits++;
        if ((await search(agent.id, query, "hybrid"))[0]?.id === ids[expected]) hybridHits++;
        else misses.push(query);
      }
      const n = ARCHIVAL_QUERIES.length;
      console.log(`[archival search quality, ${name}] ${ARCHIVAL_MEMORIES.length} memories, ${n} queries: hits@1 keyword-only ${keywordHits}/${n} = ${(keywordHits / n).toFixed(2)}, hybrid ${hybridHits}/${n} = ${(hybridHits / n).toFixed(2)}${misses.length ? ` (hybrid misses: ${misses.join("; ")})` : ""}`);
      expect(hybridHits).toBeGreaterThan(keywordHits);
      expect(hybridHits / n).toBeGreaterThanOrEqual(0.9);
    }, 120_000);

    test("an embedding outage never loses a memory: stored at once, found by full text, embedded by the backfill later", async () => {
      const agent = await user.ok("POST", "/v1/agents", { name: "outage", model: "fake-model" });
      fake.embeddingsDown(true);
      try {
        const created = await user.ok("POST", `/v1/agents/${agent.id}/memories`, { content: "The user's automobile is parked in garage B." });
        expect(created.embedded).toBe(false);
        // Searching works meanwhile: hybrid falls back to the keyword ranking.
        expect((await search(agent.id, "garage", "hybrid")).map((m) => m.id)).toEqual([created.id]);
        await Bun.sleep(800);
        expect((await user.ok("GET", `/v1/agents/${agent.id}/memories/${created.id}`)).embedded).toBe(false);
      } finally {
        fake.embeddingsDown(false);
      }
      await waitFor("the backfill embedded the memory", async () => {
        const page = await user.ok("GET", `/v1/agents/${agent.id}/memories?limit=100`);
        return page.data[0]?.embedded === true;
      }, 30_000);
      const [hit] = await search(agent.id, "vehicle", "vector");
      expect(hit.content).toContain("garage B");
      expect(hit.score).toBeGreaterThan(0.3);
    }, 120_000);

    test(`start-up chose the ${expectedBackend} similarity back end`, async () => {
      await deployment.child.stop();
      const { stdout, stderr } = await deployment.child.output();
      expect(stdout + stderr).toContain(`"vectors":"${expectedBackend}"`);
    }, 60_000);
  });
}

semanticSuite("semantic archival memory [compiled binary, embedded: PGlite + pgvector]", false, "pgvector");
await describeReal("semantic archival memory [compiled binary]", () => {
  semanticSuite("semantic archival memory [compiled binary, PostgreSQL 15 without pgvector: real[] fallback]", true, "array");
});
