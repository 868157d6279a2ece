CREATE TABLE "api_keys" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"prefix" text NOT NULL,
	"hash" text NOT NULL,
	"scopes" text[] NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_used_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "api_keys_hash_unique" UNIQUE("hash")
);
--> statement-breakpoint
CREATE TABLE "callback_receipts" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"provider" text NOT NULL,
	"job_id" text,
	"claimed_job_id" text,
	"route" text NOT NULL,
	"delivery_id" text,
	"verdict" text NOT NULL,
	"reason" text,
	"headers" jsonb NOT NULL,
	"body" "bytea" NOT NULL,
	"body_size" integer NOT NULL,
	"source_address" text,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "job_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"event_id" text NOT NULL,
	"job_id" text NOT NULL,
	"sequence" integer NOT NULL,
	"type" text NOT NULL,
	"data" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "job_events_event_id_unique" UNIQUE("event_id")
);
--> statement-breakpoint
CREATE TABLE "jobs" (
	"id" text PRIMARY KEY NOT NULL,
	"provider" text NOT NULL,
	"model" text,
	"provider_task_id" text,
	"status" text NOT NULL,
	"progress" integer,
	"input" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"result" jsonb,
	"error" jsonb,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"notify_url" text,
	"idempotency_key" text,
	"idempotency_owner" text,
	"request_hash" text,
	"due_at" timestamp with time zone,
	"lease_until" timestamp with time zone,
	"attempts" integer DEFAULT 0 NOT NULL,
	"submit_in_flight_since" timestamp with time zone,
	"last_error" jsonb,
	"polls" integer DEFAULT 0 NOT NULL,
	"poll_failures" integer DEFAULT 0 NOT NULL,
	"not_found_count" integer DEFAULT 0 NOT NULL,
	"progress_at" timestamp with time zone,
	"progress_base" integer,
	"progress_base_at" timestamp with time zone,
	"event_seq" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"submitted_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "provider_budgets" (
	"provider" text NOT NULL,
	"kind" text NOT NULL,
	"tokens" double precision NOT NULL,
	"refilled_at" timestamp with time zone DEFAULT now() NOT NULL,
	"paused_until" timestamp with time zone,
	CONSTRAINT "provider_budgets_provider_kind_pk" PRIMARY KEY("provider","kind")
);
--> statement-breakpoint
CREATE TABLE "settings" (
	"key" text PRIMARY KEY NOT NULL,
	"value" text NOT NULL
);
--> statement-breakpoint
ALTER TABLE "callback_receipts" ADD CONSTRAINT "callback_receipts_job_id_jobs_id_fk" FOREIGN KEY ("job_id") REFERENCES "public"."jobs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "job_events" ADD CONSTRAINT "job_events_job_id_jobs_id_fk" FOREIGN KEY ("job_id") REFERENCES "public"."jobs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "callback_receipts_job_idx" ON "callback_receipts" USING btree ("job_id","id");--> statement-breakpoint
CREATE INDEX "callback_receipts_received_idx" ON "callback_receipts" USING btree ("received_at");--> statement-breakpoint
CREATE INDEX "callback_receipts_delivery_idx" ON "callback_receipts" USING btree ("provider","delivery_id") WHERE "callback_receipts"."delivery_id" is not null;--> statement-breakpoint
CREATE INDEX "callback_receipts_rejected_idx" ON "callback_receipts" USING btree ("id") WHERE "callback_receipts"."job_id" is null;--> statement-breakpoint
CREATE UNIQUE INDEX "job_events_job_seq_uq" ON "job_events" USING btree ("job_id","sequence");--> statement-breakpoint
CREATE UNIQUE INDEX "jobs_provider_task_uq" ON "jobs" USING btree ("provider","provider_task_id") WHERE "jobs"."provider_task_id" is not null;--> statement-breakpoint
CREATE INDEX "jobs_created_idx" ON "jobs" USING btree ("created_at","id");--> statement-breakpoint
CREATE UNIQUE INDEX "jobs_idempotency_uq" ON "jobs" USING btree ("idempotency_owner","idempotency_key") WHERE "jobs"."idempotency_key" is not null;--> statement-breakpoint
CREATE INDEX "jobs_submit_due_idx" ON "jobs" USING btree ("due_at") WHERE "jobs"."status" = 'queued' and "jobs"."due_at" is not null;--> statement-breakpoint
CREATE INDEX "jobs_poll_due_idx" ON "jobs" USING btree ("provider","due_at") WHERE "jobs"."status" in ('submitted', 'processing', 'expired') and "jobs"."due_at" is not null;