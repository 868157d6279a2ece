-- Commit order for the event feed (GET /v1/events; see src/events/feed.ts).
-- `job_events.id` is taken when the row is inserted, so ids can commit out of order: a reader that
-- followed ids would skip an event with a lower id that commits after one with a higher id. Instead,
-- each event gets `commit_seq` as its transaction commits: a deferred constraint trigger runs at
-- COMMIT, takes a transaction-level advisory lock (held until the commit is visible to everyone),
-- and only then draws from a sequence. Event-writing commits therefore take their numbers and
-- become visible one after another, so any snapshot sees a gap-free prefix of commit_seq (gaps only
-- from transactions that failed at commit), and `commit_seq > cursor` never skips an event.
-- The NOTIFY trigger on job_events already makes these commits take Postgres' notify queue lock in
-- turn, so the advisory lock costs little more.
CREATE SEQUENCE "job_events_commit_seq_seq" AS bigint;
--> statement-breakpoint
-- Events from before this migration keep their id order.
UPDATE "job_events" AS e SET "commit_seq" = o.n
FROM (SELECT "id", row_number() OVER (ORDER BY "id") AS n FROM "job_events") AS o
WHERE e."id" = o."id";
--> statement-breakpoint
SELECT setval('job_events_commit_seq_seq', coalesce((SELECT max("commit_seq") FROM "job_events"), 0) + 1, false);
--> statement-breakpoint
CREATE FUNCTION relay_job_events_commit_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- 726351002: the relay's lock for numbering events (726351001 serialises migrations).
  PERFORM pg_advisory_xact_lock(726351002);
  UPDATE "job_events" SET "commit_seq" = nextval('job_events_commit_seq_seq') WHERE "id" = NEW."id";
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE CONSTRAINT TRIGGER "job_events_commit_seq" AFTER INSERT ON "job_events"
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION relay_job_events_commit_seq();
