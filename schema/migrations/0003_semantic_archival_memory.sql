ALTER TABLE "archival_memories" ADD COLUMN "embedding" real[];--> statement-breakpoint
ALTER TABLE "archival_memories" ADD COLUMN "embedding_model" text;--> statement-breakpoint
CREATE INDEX "archival_memories_unembedded_idx" ON "archival_memories" USING btree ("id") WHERE embedding is null;