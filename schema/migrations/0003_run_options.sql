ALTER TABLE "agents" ADD COLUMN "temperature" double precision;--> statement-breakpoint
ALTER TABLE "agents" ADD COLUMN "top_p" double precision;--> statement-breakpoint
ALTER TABLE "agents" ADD COLUMN "max_output_tokens" integer;--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "parsed" jsonb;--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "options" jsonb DEFAULT '{}'::jsonb NOT NULL;