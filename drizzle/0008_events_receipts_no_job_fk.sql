-- Events and receipts are written only by the statement that updated or read their job, and jobs are
-- never deleted: the two foreign keys to jobs only looked the job up again for every row on the
-- callback path (about a tenth of PostgreSQL's CPU per callback on the ingest bench).
ALTER TABLE "callback_receipts" DROP CONSTRAINT "callback_receipts_job_id_jobs_id_fk";
--> statement-breakpoint
ALTER TABLE "job_events" DROP CONSTRAINT "job_events_job_id_jobs_id_fk";
