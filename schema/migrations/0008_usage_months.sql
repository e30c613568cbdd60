CREATE TABLE "usage_months" (
	"org_id" text NOT NULL,
	"period" text NOT NULL,
	"runs" bigint DEFAULT 0 NOT NULL,
	"tokens" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "usage_months_org_id_period_pk" PRIMARY KEY("org_id","period")
);
--> statement-breakpoint
-- Backfill: the counters of every (organization, UTC month) recorded before this migration.
INSERT INTO "usage_months" ("org_id", "period", "runs", "tokens")
SELECT "org_id", to_char("occurred_at" AT TIME ZONE 'UTC', 'YYYY-MM'), count(*) FILTER (WHERE "kind" = 'run'), coalesce(sum("total_tokens"), 0)
FROM "usage_records" GROUP BY 1, 2;
