-- Rollback of 004_tick_scale.sql: reactor.tick() as 002 wrote it, without due_queue, its
-- trigger, the timeout indexes, reactor.tick_budget_ms(), due_announcements.left_pending
-- and reactor.scheduler_leader; 004 is forgotten.
-- Stop the reactors first: the leader's lock on reactor.scheduler_leader (and every
-- standby's wait for it) would make the DROP TABLE wait.
--
--   psql -v ON_ERROR_STOP=1 --single-transaction -f sql/migrations/004_tick_scale.down.sql

DO $$
BEGIN
  IF to_regclass('reactor.schema_migrations') IS NOT NULL
     AND EXISTS (SELECT 1 FROM reactor.schema_migrations WHERE version > 4) THEN
    RAISE EXCEPTION 'roll back the later migrations first: %',
      (SELECT string_agg(name, ', ' ORDER BY version DESC)
         FROM reactor.schema_migrations WHERE version > 4)
      USING ERRCODE = 'dependent_objects_still_exist';
  END IF;
END
$$;

DO $$
BEGIN
  IF to_regclass('reactor.scheduled_jobs') IS NOT NULL THEN
    DROP TRIGGER IF EXISTS scheduled_jobs_track_due_insert ON reactor.scheduled_jobs;
    DROP TRIGGER IF EXISTS scheduled_jobs_track_due_update ON reactor.scheduled_jobs;
    DROP TRIGGER IF EXISTS scheduled_jobs_track_due_delete ON reactor.scheduled_jobs;
    DROP TRIGGER IF EXISTS scheduled_jobs_track_due_truncate ON reactor.scheduled_jobs;
  END IF;
END
$$;

-- 002's tick(), when 002 is still applied (a second run after 002's rollback must not
-- bring it back).
DO $do$
BEGIN
  IF to_regprocedure('reactor.tick()') IS NOT NULL THEN
    EXECUTE $sql$
CREATE OR REPLACE FUNCTION reactor.tick() RETURNS timestamptz
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  cfg reactor.scheduler_config;
  ttl interval;
  stuck interval;
  j reactor.scheduled_jobs;
  exec_id integer;
  ev_id bigint;
  busy boolean := false;
  next_at timestamptz;
BEGIN
  -- Two reactors ticking at once would both fail the same stuck job; one waits instead.
  PERFORM pg_advisory_xact_lock(7212853350187139074);
  cfg := reactor.config();
  IF NOT cfg.enabled THEN
    RETURN NULL;
  END IF;
  ttl := make_interval(secs => cfg.pending_ttl_seconds);
  stuck := make_interval(secs => cfg.stuck_timeout_seconds);

  -- 1. Timeouts. A row locked by a worker is left for the next tick ("busy").
  FOR j IN SELECT s.* FROM reactor.scheduled_jobs s
            WHERE s.status = 'running'
              AND s.started_at + coalesce(make_interval(secs => s.timeout_seconds), stuck) <= now()
            ORDER BY s.started_at, s.id
            FOR UPDATE OF s SKIP LOCKED
  LOOP
    SELECT e.id INTO exec_id FROM reactor.job_executions e
     WHERE e.job_id = j.id AND e.status = 'running' ORDER BY e.id DESC LIMIT 1;
    IF NOT FOUND THEN
      -- Set running by hand, without start_job: give the run a record so that its
      -- failure and retry are accounted like any other.
      INSERT INTO reactor.job_executions AS e (job_id, started_at, status, attempt_number, trigger_type)
      VALUES (j.id, j.started_at, 'running', j.error_count + 1, 'manual')
      RETURNING e.id INTO exec_id;
    END IF;
    PERFORM reactor.fail_job(j.id, exec_id, 'timeout');
  END LOOP;
  busy := busy OR EXISTS (
    SELECT 1 FROM reactor.scheduled_jobs s
     WHERE s.status = 'running'
       AND s.started_at + coalesce(make_interval(secs => s.timeout_seconds), stuck) <= now());

  -- 2. Expiry.
  UPDATE reactor.scheduled_jobs s
     SET status = 'expired', completed_at = clock_timestamp()
   WHERE s.id IN (SELECT x.id FROM reactor.scheduled_jobs x
                   WHERE x.status = 'pending' AND x.enabled
                     AND (x.expires_at <= now()
                          OR (x.expires_at IS NULL AND x.scheduled_for + ttl <= now()))
                   FOR UPDATE OF x SKIP LOCKED);
  busy := busy OR EXISTS (
    SELECT 1 FROM reactor.scheduled_jobs x
     WHERE x.status = 'pending' AND x.enabled
       AND (x.expires_at <= now() OR (x.expires_at IS NULL AND x.scheduled_for + ttl <= now())));

  -- 3. Due events (only while scheduled_jobs is attached: a detached table is silent).
  -- Rows are read, not locked: announcing never waits for a worker.
  IF EXISTS (SELECT 1 FROM reactor.watched_tables w WHERE w.tbl = 'reactor.scheduled_jobs'::regclass) THEN
    FOR j IN SELECT s.* FROM reactor.scheduled_jobs s
              WHERE s.status = 'pending' AND s.enabled AND s.scheduled_for <= now()
                AND NOT EXISTS (SELECT 1 FROM reactor.due_announcements d
                                 WHERE d.job_id = s.id AND d.scheduled_for = s.scheduled_for)
              ORDER BY s.scheduled_for, s.id
    LOOP
      ev_id := reactor.emit_event('reactor.scheduled_jobs', 'due', to_jsonb(j), j.status,
                                  'id', 'status', 'user_id', 'job_type');
      INSERT INTO reactor.due_announcements AS d (job_id, scheduled_for, event_id)
      VALUES (j.id, j.scheduled_for, ev_id)
      ON CONFLICT (job_id) DO UPDATE
         SET scheduled_for = EXCLUDED.scheduled_for,
             event_id = EXCLUDED.event_id,
             announced_at = EXCLUDED.announced_at;
    END LOOP;
  END IF;
  DELETE FROM reactor.due_announcements d
   WHERE NOT EXISTS (SELECT 1 FROM reactor.scheduled_jobs s WHERE s.id = d.job_id AND s.status = 'pending');

  -- The next deadline. Past moments left over are rows locked by others: they are
  -- retried a second from now rather than at once, so a long worker transaction cannot
  -- make the caller spin.
  next_at := least(
    (SELECT min(s.scheduled_for) FROM reactor.scheduled_jobs s
      WHERE s.status = 'pending' AND s.enabled AND s.scheduled_for > now()),
    (SELECT min(s.expires_at) FROM reactor.scheduled_jobs s
      WHERE s.status = 'pending' AND s.enabled AND s.expires_at > now()),
    (SELECT min(s.scheduled_for) + ttl FROM reactor.scheduled_jobs s
      WHERE s.status = 'pending' AND s.enabled AND s.expires_at IS NULL
        AND s.scheduled_for > now() - ttl),
    (SELECT min(s.started_at + coalesce(make_interval(secs => s.timeout_seconds), stuck))
       FROM reactor.scheduled_jobs s
      WHERE s.status = 'running'
        AND s.started_at + coalesce(make_interval(secs => s.timeout_seconds), stuck) > now()),
    CASE WHEN busy THEN clock_timestamp() + interval '1 second' END);
  RETURN next_at;
END
$$
$sql$;
  END IF;
END
$do$;

DROP FUNCTION IF EXISTS reactor.time_out(reactor.scheduled_jobs);
DROP FUNCTION IF EXISTS reactor.tick_budget_ms();
DROP FUNCTION IF EXISTS reactor.track_due();
DROP FUNCTION IF EXISTS reactor.due_queue_sync(text, text, boolean, timestamptz, boolean);
DROP TABLE IF EXISTS reactor.due_queue;
DROP TABLE IF EXISTS reactor.scheduler_leader;
DROP INDEX IF EXISTS reactor.idx_scheduled_jobs_running_timeout;
DROP INDEX IF EXISTS reactor.idx_scheduled_jobs_running_stuck;
DROP FUNCTION IF EXISTS reactor.timeout_at(timestamptz, integer);
DROP INDEX IF EXISTS reactor.idx_due_announcements_left_pending;
DO $$
BEGIN
  IF to_regclass('reactor.due_announcements') IS NOT NULL THEN
    ALTER TABLE reactor.due_announcements DROP COLUMN IF EXISTS left_pending;
  END IF;
  IF to_regclass('reactor.schema_migrations') IS NOT NULL THEN
    DELETE FROM reactor.schema_migrations WHERE version = 4;
  END IF;
END
$$;
