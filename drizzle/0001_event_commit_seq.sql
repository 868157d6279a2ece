ALTER TABLE "job_events" ADD COLUMN "commit_seq" bigint;--> statement-breakpoint
CREATE UNIQUE INDEX "job_events_commit_seq_uq" ON "job_events" USING btree ("commit_seq");