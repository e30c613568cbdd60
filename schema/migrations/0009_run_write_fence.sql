-- A fenced run write sent in one round trip (BEGIN, the run update, its other statements and
-- COMMIT at once: src/runs/store.ts) cannot look at the update's row count before the rest
-- runs. The update calls this on its count instead: no row (the lease was lost, the run is
-- gone) raises, which aborts the transaction, so nothing after it is written and COMMIT
-- rolls back.
CREATE FUNCTION agentos_run_write_matched(matched bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  IF matched = 0 THEN
    RAISE EXCEPTION 'the run write matched no run (lease lost, or the run is gone)' USING ERRCODE = 'AG001';
  END IF;
  RETURN matched;
END
$$;
