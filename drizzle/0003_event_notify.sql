-- Wakes long-polls and event streams on every replica (channel `relay_events`, payload the job id).
-- A NOTIFY sent inside a transaction is delivered only when it commits, so a listener never hears
-- of an event it cannot read yet.
CREATE FUNCTION relay_job_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('relay_events', NEW."job_id");
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "job_events_notify" AFTER INSERT ON "job_events" FOR EACH ROW EXECUTE FUNCTION relay_job_events_notify();
