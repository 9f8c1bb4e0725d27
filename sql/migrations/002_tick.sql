-- 002_tick: the scheduler's time-driven transitions, reactor.tick(), and the doorbells
-- that tell the reactor to re-evaluate when scheduling inputs change without an event.
--
-- Runs inside one transaction opened by `reactor migrate`. Rollback: 002_tick.down.sql.
-- Semantics: docs/sql.md ("reactor.tick") and docs/events.md ("config" notifications).

-- Which scheduled_for of a pending job has had its 'due' event. No foreign key on
-- purpose: checking one would take a KEY SHARE lock on the job row and wait for a worker
-- that holds it (get_next_pending_job's FOR UPDATE) for as long as its transaction runs.
-- tick() removes the rows of jobs that are no longer pending.
CREATE TABLE reactor.due_announcements (
  job_id text PRIMARY KEY,
  scheduled_for timestamptz NOT NULL,
  event_id bigint NOT NULL,
  announced_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

COMMENT ON TABLE reactor.due_announcements IS
  'The scheduled_for of each pending job whose due event reactor.tick() has written.';

-- tick() reads only these: pending enabled jobs by time, their explicit expiry, and the
-- running jobs (idx_scheduled_jobs_running of 001).
CREATE INDEX idx_scheduled_jobs_pending_due
  ON reactor.scheduled_jobs (scheduled_for)
  WHERE status = 'pending' AND enabled;
CREATE INDEX idx_scheduled_jobs_pending_expiry
  ON reactor.scheduled_jobs (expires_at)
  WHERE status = 'pending' AND enabled AND expires_at IS NOT NULL;

-- Performs, as of now(), every time-driven transition and returns the next moment one is
-- due (NULL when none is, and while scheduler_config.enabled is false, when it does
-- nothing):
--   1. a running job past started_at + timeout_seconds (else the configured
--      stuck_timeout_seconds) is failed through fail_job with error 'timeout', so its
--      retry rules apply;
--   2. a pending enabled job past expires_at (else scheduled_for + pending_ttl_seconds)
--      becomes 'expired';
--   3. a pending enabled job whose scheduled_for has arrived gets one 'due' event, once
--      per job and scheduled_for.
-- Runs as its owner: the caller needs only EXECUTE (revoked from PUBLIC below).
CREATE FUNCTION reactor.tick() RETURNS timestamptz
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
$$;

REVOKE EXECUTE ON FUNCTION reactor.tick() FROM PUBLIC;

-- Doorbells without a log row: {"kind": "config", "source": ...} on the event channel
-- tells the reactor to call tick() again, because something that decides deadlines
-- changed without making an event.
CREATE FUNCTION reactor.notify_config() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  note jsonb := jsonb_build_object('kind', 'config', 'source', TG_TABLE_NAME);
BEGIN
  IF TG_TABLE_NAME = 'scheduled_jobs' THEN
    note := note || jsonb_build_object('job_id', NEW.id);
  END IF;
  PERFORM pg_notify(coalesce(nullif(current_setting('reactor.channel', true), ''),
                             'job_status_changed'),
                    note::text);
  RETURN NULL;
END
$$;

REVOKE EXECUTE ON FUNCTION reactor.notify_config() FROM PUBLIC;

CREATE TRIGGER scheduler_config_notify
  AFTER INSERT OR UPDATE ON reactor.scheduler_config
  FOR EACH ROW EXECUTE FUNCTION reactor.notify_config();

-- A status change is an event already (with its deadline); this covers the rest.
CREATE TRIGGER scheduled_jobs_notify_schedule
  AFTER UPDATE ON reactor.scheduled_jobs
  FOR EACH ROW
  WHEN (OLD.status IS NOT DISTINCT FROM NEW.status
        AND (OLD.scheduled_for IS DISTINCT FROM NEW.scheduled_for
             OR OLD.enabled IS DISTINCT FROM NEW.enabled
             OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
             OR OLD.timeout_seconds IS DISTINCT FROM NEW.timeout_seconds
             OR OLD.started_at IS DISTINCT FROM NEW.started_at))
  EXECUTE FUNCTION reactor.notify_config();
