CREATE TABLE "mcp_servers" (
	"id" text PRIMARY KEY NOT NULL,
	"org_id" text NOT NULL,
	"name" text NOT NULL,
	"url" text NOT NULL,
	"headers_sealed" text,
	"allowed_tools" jsonb,
	"requires_approval" jsonb NOT NULL,
	"timeout_ms" integer DEFAULT 10000 NOT NULL,
	"server_info" jsonb,
	"refreshed_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "tools" ADD COLUMN "previous_signing_secret" text;--> statement-breakpoint
ALTER TABLE "tools" ADD COLUMN "previous_secret_expires_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "tools" ADD COLUMN "mcp_server_id" text;--> statement-breakpoint
CREATE UNIQUE INDEX "mcp_servers_org_name_key" ON "mcp_servers" USING btree ("org_id","name");--> statement-breakpoint
CREATE INDEX "mcp_servers_org_idx" ON "mcp_servers" USING btree ("org_id","id");--> statement-breakpoint
ALTER TABLE "tools" ADD CONSTRAINT "tools_mcp_server_id_mcp_servers_id_fk" FOREIGN KEY ("mcp_server_id") REFERENCES "public"."mcp_servers"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "tools_mcp_server_idx" ON "tools" USING btree ("mcp_server_id");