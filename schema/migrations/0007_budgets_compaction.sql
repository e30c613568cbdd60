CREATE TABLE "api_key_daily_spend" (
	"api_key_id" text NOT NULL,
	"day" text NOT NULL,
	"org_id" text NOT NULL,
	"micro_cents" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "api_key_daily_spend_api_key_id_day_pk" PRIMARY KEY("api_key_id","day")
);
--> statement-breakpoint
CREATE TABLE "budget_reservations" (
	"step_id" text PRIMARY KEY NOT NULL,
	"org_id" text NOT NULL,
	"run_id" text NOT NULL,
	"api_key_id" text,
	"day" text NOT NULL,
	"tokens" integer NOT NULL,
	"micro_cents" bigint NOT NULL,
	"status" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"settled_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "thread_summaries" (
	"thread_id" text PRIMARY KEY NOT NULL,
	"org_id" text NOT NULL,
	"through_message_id" text NOT NULL,
	"content" text NOT NULL,
	"step_id" text NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "api_keys" ADD COLUMN "daily_spend_cap_cents" integer;--> statement-breakpoint
ALTER TABLE "agents" ADD COLUMN "context_strategy" text DEFAULT 'truncate' NOT NULL;--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "budget" jsonb;--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "api_key_id" text;--> statement-breakpoint
ALTER TABLE "budget_reservations" ADD CONSTRAINT "budget_reservations_run_id_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."runs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "thread_summaries" ADD CONSTRAINT "thread_summaries_thread_id_threads_id_fk" FOREIGN KEY ("thread_id") REFERENCES "public"."threads"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "budget_reservations_run_idx" ON "budget_reservations" USING btree ("run_id");