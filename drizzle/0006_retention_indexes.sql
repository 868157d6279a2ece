CREATE INDEX "job_events_created_idx" ON "job_events" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "jobs_metadata_idx" ON "jobs" USING gin ("metadata" jsonb_path_ops);