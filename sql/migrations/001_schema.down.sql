-- Rollback of 001_schema.sql: removes everything it created, including the event triggers
-- it put on users' attached tables, and forgets that it was applied, so that
-- `reactor migrate` applies it again. Schema reactor and reactor.schema_migrations belong
-- to `reactor migrate` and stay. All rows of the scheduler tables and the event log are lost.
--
-- Run it in one transaction, after the rollbacks of any later migrations:
--   psql -v ON_ERROR_STOP=1 --single-transaction -f sql/migrations/001_schema.down.sql
-- Every statement tolerates objects that are already gone, so a second run is harmless.

DO $$
BEGIN
  IF to_regclass('reactor.schema_migrations') IS NOT NULL
     AND EXISTS (SELECT 1 FROM reactor.schema_migrations WHERE version > 1) THEN
    RAISE EXCEPTION 'roll back the later migrations first: %',
      (SELECT string_agg(name, ', ' ORDER BY version DESC)
         FROM reactor.schema_migrations WHERE version > 1)
      USING ERRCODE = 'dependent_objects_still_exist';
  END IF;
END
$$;

-- The triggers on users' tables go with their function (CASCADE); the explicit pass
-- first removes them by name, which also covers a trigger created by hand.
DO $$
DECLARE
  t regclass;
BEGIN
  IF to_regclass('reactor.watched_tables') IS NOT NULL THEN
    FOR t IN SELECT w.tbl FROM reactor.watched_tables w
              WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = w.tbl)
    LOOP
      EXECUTE format('DROP TRIGGER IF EXISTS reactor_job_event_insert ON %s', t);
      EXECUTE format('DROP TRIGGER IF EXISTS reactor_job_event_update ON %s', t);
    END LOOP;
  END IF;
END
$$;

-- Functions first (some return the tables' row types), then the tables, then what the
-- tables' defaults, indexes and triggers use.
DROP FUNCTION IF EXISTS reactor.detach(regclass);
DROP FUNCTION IF EXISTS reactor.attach(regclass, text, text, text, text);
DROP FUNCTION IF EXISTS reactor.drop_event_triggers(regclass);
DROP FUNCTION IF EXISTS reactor.job_event_trigger() CASCADE;
DROP FUNCTION IF EXISTS reactor.emit_event(regclass, text, jsonb, text, text, text, text, text);
DROP FUNCTION IF EXISTS reactor.first_column(regclass, text[]);
DROP FUNCTION IF EXISTS reactor.first_field(jsonb, text[]);
DROP FUNCTION IF EXISTS reactor.iso_time(timestamptz);
DROP FUNCTION IF EXISTS reactor.cancel_job(text);
DROP FUNCTION IF EXISTS reactor.update_job_progress(text, integer, text);
DROP FUNCTION IF EXISTS reactor.fail_job(text, integer, text);
DROP FUNCTION IF EXISTS reactor.complete_job(text, integer, jsonb);
DROP FUNCTION IF EXISTS reactor.elapsed_ms(timestamptz, timestamptz);
DROP FUNCTION IF EXISTS reactor.running_execution(text, integer);
DROP FUNCTION IF EXISTS reactor.start_job(text, text);
DROP FUNCTION IF EXISTS reactor.get_next_pending_job();
DROP FUNCTION IF EXISTS reactor.unknown_job(text);
DROP FUNCTION IF EXISTS reactor.calculate_next_schedule(text, jsonb, timestamptz);
DROP FUNCTION IF EXISTS reactor.config();

DROP TABLE IF EXISTS reactor.watched_tables;
DROP TABLE IF EXISTS reactor.job_events;
DROP TABLE IF EXISTS reactor.job_executions;
DROP TABLE IF EXISTS reactor.scheduled_jobs;
DROP TABLE IF EXISTS reactor.scheduler_config;

DROP FUNCTION IF EXISTS reactor.scheduled_jobs_check();
DROP FUNCTION IF EXISTS reactor.check_frequency(text, jsonb);
DROP FUNCTION IF EXISTS reactor.frequency_field(text, jsonb, text, integer, integer, integer);
DROP FUNCTION IF EXISTS reactor.priority_rank(text);
DROP FUNCTION IF EXISTS reactor.default_retry_backoff_seconds();
DROP FUNCTION IF EXISTS reactor.default_retry_max_attempts();
DROP FUNCTION IF EXISTS reactor.scheduler_config_keep();
DROP FUNCTION IF EXISTS reactor.scheduler_config_check();
DROP FUNCTION IF EXISTS reactor.set_updated_at();

DO $$
BEGIN
  IF to_regclass('reactor.schema_migrations') IS NOT NULL THEN
    DELETE FROM reactor.schema_migrations WHERE version = 1;
  END IF;
END
$$;
