CREATE TABLE "model_providers" (
	"id" text PRIMARY KEY NOT NULL,
	"org_id" text NOT NULL,
	"name" text NOT NULL,
	"base_url" text NOT NULL,
	"api_key_sealed" text,
	"models" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "shared_block_agents" (
	"block_id" text NOT NULL,
	"agent_id" text NOT NULL,
	"org_id" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "shared_block_agents_block_id_agent_id_pk" PRIMARY KEY("block_id","agent_id")
);
--> statement-breakpoint
CREATE TABLE "shared_blocks" (
	"id" text PRIMARY KEY NOT NULL,
	"org_id" text NOT NULL,
	"label" text NOT NULL,
	"value" text DEFAULT '' NOT NULL,
	"char_limit" integer NOT NULL,
	"description" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "archival_memories" ADD COLUMN "embedding" real[];--> statement-breakpoint
ALTER TABLE "archival_memories" ADD COLUMN "embedding_model" text;--> statement-breakpoint
ALTER TABLE "shared_block_agents" ADD CONSTRAINT "shared_block_agents_block_id_shared_blocks_id_fk" FOREIGN KEY ("block_id") REFERENCES "public"."shared_blocks"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "model_providers_org_name_key" ON "model_providers" USING btree ("org_id","name");--> statement-breakpoint
CREATE INDEX "shared_block_agents_agent_idx" ON "shared_block_agents" USING btree ("agent_id");--> statement-breakpoint
CREATE INDEX "shared_blocks_org_idx" ON "shared_blocks" USING btree ("org_id","id");--> statement-breakpoint
CREATE INDEX "archival_memories_unembedded_idx" ON "archival_memories" USING btree ("id") WHERE embedding is null;