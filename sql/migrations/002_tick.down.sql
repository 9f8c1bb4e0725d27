-- Rollback of 002_tick.sql: removes reactor.tick(), the "config" doorbells, the due
-- announcements and the indexes tick() reads, and forgets that 002 was applied. 001's
-- objects stay.
--
--   psql -v ON_ERROR_STOP=1 --single-transaction -f sql/migrations/002_tick.down.sql

DO $$
BEGIN
  IF to_regclass('reactor.schema_migrations') IS NOT NULL
     AND EXISTS (SELECT 1 FROM reactor.schema_migrations WHERE version > 2) THEN
    RAISE EXCEPTION 'roll back the later migrations first: %',
      (SELECT string_agg(name, ', ' ORDER BY version DESC)
         FROM reactor.schema_migrations WHERE version > 2)
      USING ERRCODE = 'dependent_objects_still_exist';
  END IF;
END
$$;

DO $$
BEGIN
  IF to_regclass('reactor.scheduled_jobs') IS NOT NULL THEN
    DROP TRIGGER IF EXISTS scheduled_jobs_notify_schedule ON reactor.scheduled_jobs;
  END IF;
  IF to_regclass('reactor.scheduler_config') IS NOT NULL THEN
    DROP TRIGGER IF EXISTS scheduler_config_notify ON reactor.scheduler_config;
  END IF;
END
$$;
DROP FUNCTION IF EXISTS reactor.notify_config();
DROP FUNCTION IF EXISTS reactor.tick();
DROP INDEX IF EXISTS reactor.idx_scheduled_jobs_pending_expiry;
DROP INDEX IF EXISTS reactor.idx_scheduled_jobs_pending_due;
DROP TABLE IF EXISTS reactor.due_announcements;

DO $$
BEGIN
  IF to_regclass('reactor.schema_migrations') IS NOT NULL THEN
    DELETE FROM reactor.schema_migrations WHERE version = 2;
  END IF;
END
$$;
