-- Cheaper event bookkeeping for batches (see src/callbacks/store.ts, the one-statement write).
--
-- 1. An event inserted with its `commit_seq` already set skips the deferred numbering trigger. Only
--    a statement that took the numbering lock (726351002) before drawing from the sequence, and
--    commits right after, may do that: it then holds the lock until its commit is visible, exactly
--    as the trigger would, so every snapshot still sees a gap-free prefix of commit_seq. A deferred
--    constraint trigger's WHEN is evaluated as the row is inserted, so such rows queue nothing.
DROP TRIGGER "job_events_commit_seq" ON "job_events";
--> statement-breakpoint
CREATE CONSTRAINT TRIGGER "job_events_commit_seq" AFTER INSERT ON "job_events"
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW."commit_seq" IS NULL)
EXECUTE FUNCTION relay_job_events_commit_seq();
--> statement-breakpoint
-- 2. `relay_events` once per statement instead of once per event: the payload is the distinct job
--    ids, separated by spaces, at most 200 to a notification (a payload must stay under 8,000 bytes).
DROP TRIGGER "job_events_notify" ON "job_events";
--> statement-breakpoint
CREATE OR REPLACE FUNCTION relay_job_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('relay_events', string_agg(job_id, ' '))
  FROM (SELECT job_id, (row_number() OVER () - 1) / 200 AS chunk FROM (SELECT DISTINCT job_id FROM new_rows) d) c
  GROUP BY chunk;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "job_events_notify" AFTER INSERT ON "job_events" REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION relay_job_events_notify();
