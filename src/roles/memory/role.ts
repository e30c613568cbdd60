import type { Unsubscribe } from "../../platform/bus";
import { publishInvalidation } from "../../platform/edge-cache";
import { consumeDomainEvents } from "../../platform/event-consumer";
import { createEmbedder } from "../../platform/model/embeddings";
import { AGENT_CACHE_KIND, agentCacheKey } from "../agents/contract";
import type { AppPlatform } from "../clients";
import type { RoleInstance } from "../modules";
import { ArchivalEmbeddings, chooseVectorBackend } from "./semantic";
import { MemoryService } from "./service";

/** The memory role's code; what it is (deps, uses, rpc) is its row in src/roles/modules.ts. */
export async function init(p: AppPlatform): Promise<RoleInstance> {
  const config = p.config;
  const embedder = config.embeddingModel === "none"
    ? null
    : createEmbedder({ baseUrl: config.embeddingBaseUrl ?? config.modelBaseUrl, apiKey: config.modelApiKey, model: config.embeddingModel });
  const backend = await chooseVectorBackend(p.db, p.log);
  const embeddings = new ArchivalEmbeddings(p.db, backend, embedder, p.log);
  const service = new MemoryService(
    p.db,
    async (principal, agentId) => {
      await p.clients.agents.getAgent(principal.orgId, agentId); // 404 outside the organization
    },
    (orgId, agentId) => publishInvalidation(p.bus, AGENT_CACHE_KIND, agentCacheKey(orgId, agentId)),
    config.idempotencyStaleMs,
    embeddings,
  );
  let stopConsumer: Unsubscribe | undefined;
  let backfill: { stop(): Promise<void> } | undefined;
  return {
    service,
    async start() {
      p.log.info("archival memory search", { vectors: backend, embedding_model: embedder?.model ?? "none" });
      if (!embedder) return;
      await embeddings.forgetOtherModels();
      stopConsumer = await consumeDomainEvents(
        { bus: p.bus, db: p.db, log: p.log, database: p.database, tracing: p.tracing },
        {
          durable: "memory-embeddings",
          replayTypes: ["memory.created"],
          // A failed embedding is not retried here: the row waits for the backfill (no redelivery storm during an outage).
          handle: async (event) => {
            if (event.type !== "memory.created" || typeof event.payload.memory_id !== "string") return;
            await service.embedCreated(event.payload.memory_id).catch((err) => p.log.warn("archival memory embedding failed; the backfill will retry", { memory_id: event.payload.memory_id, error: (err as Error).message }));
          },
          retryWarning: "memory: embedding an inserted memory failed; will retry",
        },
      );
      backfill = embeddings.startBackfill(config.embeddingBackfillIntervalMs);
    },
    async stop() {
      stopConsumer?.();
      await backfill?.stop();
    },
  };
}
