-- Wakes the delivery workers on every replica (channel `relay_deliveries`) when deliveries are
-- written: once per statement that inserted any (a worker claims all that is due), and only at
-- commit, since NOTIFY inside a transaction is held until then. Events that match no subscription
-- insert nothing and wake nobody.
CREATE FUNCTION relay_deliveries_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM new_rows) THEN
    PERFORM pg_notify('relay_deliveries', '');
  END IF;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "deliveries_notify" AFTER INSERT ON "deliveries" REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION relay_deliveries_notify();
