-- 004_tick_scale: reactor.tick() costs what is due and what changed, not what exists;
-- its due events are ordered with the job's other changes; the scheduler's leader is
-- elected on a table lock, which a waiting standby holds without a snapshot.
--
-- Runs inside one transaction opened by `reactor migrate`. Rollback: 004_tick_scale.down.sql.
-- Semantics: docs/sql.md ("reactor.tick") and docs/scheduler.md.
--
-- What 002's tick() did on every call, and what replaces it:
--   * due: an anti-join of every pending job whose time had passed against
--     due_announcements (so a backlog of announced jobs that workers have not taken yet
--     was re-read each time) -> reactor.due_queue holds exactly the pending, enabled jobs
--     whose scheduled_for has not been announced, kept by a trigger in the writer's
--     transaction; tick() reads the due part of it in order;
--   * the clean-up of due_announcements compared the whole table with the jobs -> the
--     trigger flags an announcement when its job leaves 'pending' (left_pending), and
--     tick() deletes the flagged rows through a partial index;
--   * timeouts were an expression over every running job -> two partial indexes answer
--     "timed out" and "next timeout" directly (explicit timeout_seconds by an expression
--     index on the moment, the configured stuck timeout by started_at);
--   * the TTL condition `scheduled_for + ttl <= now()` could use no index -> written as
--     `scheduled_for <= now() - ttl`;
--   * the "busy" re-checks re-ran each scan -> min() of the same index (one entry), or a
--     skipped (locked) row sets the flag.
-- The statements are written so that their generic plans (plpgsql caches them, with the
-- intervals as parameters) still start at the right end of an index: ORDER BY the
-- index's columns with a LIMIT, or min().
-- And every step runs within a time budget (the setting reactor.tick_budget_ms, default
-- 40): with more due than fits, it returns a moment in the past, which makes the reactor
-- tick again at once.

-- The moment a running job with its own timeout_seconds times out. IMMUTABLE (index
-- expression): adding whole seconds to a timestamptz does not depend on the time zone.
CREATE FUNCTION reactor.timeout_at(started_at timestamptz, timeout_seconds integer)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT started_at + make_interval(secs => timeout_seconds)
$$;

CREATE INDEX idx_scheduled_jobs_running_timeout
  ON reactor.scheduled_jobs (reactor.timeout_at(started_at, timeout_seconds), id)
  WHERE status = 'running' AND timeout_seconds IS NOT NULL;
-- Jobs without timeout_seconds time out at started_at + the configured stuck timeout.
CREATE INDEX idx_scheduled_jobs_running_stuck
  ON reactor.scheduled_jobs (started_at, id)
  WHERE status = 'running' AND timeout_seconds IS NULL;

-- The pending, enabled jobs whose current scheduled_for has no due event yet: what tick()
-- announces, in time order. Kept by the trigger below in the transaction that changes the
-- job, so it is never ahead of or behind what tick() can see of the job itself.
CREATE TABLE reactor.due_queue (
  job_id text PRIMARY KEY,
  scheduled_for timestamptz NOT NULL
);
CREATE INDEX idx_due_queue_scheduled_for ON reactor.due_queue (scheduled_for, job_id);

COMMENT ON TABLE reactor.due_queue IS
  'Pending, enabled jobs whose scheduled_for reactor.tick() has not announced yet (kept by a trigger).';

-- An announcement whose job has left 'pending' is flagged by the trigger and deleted by
-- the next tick() (002 compared the whole table with the jobs on every tick).
ALTER TABLE reactor.due_announcements
  ADD COLUMN left_pending boolean NOT NULL DEFAULT false;
CREATE INDEX idx_due_announcements_left_pending
  ON reactor.due_announcements (job_id) WHERE left_pending;

UPDATE reactor.due_announcements d SET left_pending = true
 WHERE NOT EXISTS (SELECT 1 FROM reactor.scheduled_jobs s WHERE s.id = d.job_id AND s.status = 'pending');
INSERT INTO reactor.due_queue (job_id, scheduled_for)
SELECT s.id, s.scheduled_for FROM reactor.scheduled_jobs s
 WHERE s.status = 'pending' AND s.enabled
   AND NOT EXISTS (SELECT 1 FROM reactor.due_announcements d
                    WHERE d.job_id = s.id AND d.scheduled_for = s.scheduled_for AND NOT d.left_pending);

-- Puts job `id` in due_queue at `scheduled_for`, or takes it out: in when it is pending and
-- enabled and this scheduled_for has not been announced in the current run (`fresh_run`:
-- it has just become pending, so an earlier announcement belongs to an earlier run).
CREATE FUNCTION reactor.due_queue_sync(id text, status text, enabled boolean,
                                       scheduled_for timestamptz, fresh_run boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF due_queue_sync.status = 'pending' AND due_queue_sync.enabled
     AND (fresh_run OR NOT EXISTS (
           SELECT 1 FROM reactor.due_announcements d
            WHERE d.job_id = due_queue_sync.id AND d.scheduled_for = due_queue_sync.scheduled_for
              AND NOT d.left_pending)) THEN
    INSERT INTO reactor.due_queue AS q (job_id, scheduled_for)
    VALUES (due_queue_sync.id, due_queue_sync.scheduled_for)
    ON CONFLICT (job_id) DO UPDATE SET scheduled_for = EXCLUDED.scheduled_for
     WHERE q.scheduled_for IS DISTINCT FROM EXCLUDED.scheduled_for;
  ELSE
    DELETE FROM reactor.due_queue q WHERE q.job_id = due_queue_sync.id;
  END IF;
END
$$;

REVOKE EXECUTE ON FUNCTION reactor.due_queue_sync(text, text, boolean, timestamptz, boolean) FROM PUBLIC;

-- The trigger that keeps due_queue and the due_announcements flags. It runs in the
-- writer's transaction (which holds the job's row lock): tick() never sees a job change
-- without its queue change or the reverse. Runs as its owner: writers of scheduled_jobs
-- need no rights on either table.
CREATE FUNCTION reactor.track_due() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    DELETE FROM reactor.due_queue;
    DELETE FROM reactor.due_announcements;
    RETURN NULL;
  END IF;
  IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.id IS DISTINCT FROM NEW.id) THEN
    DELETE FROM reactor.due_queue q WHERE q.job_id = OLD.id;
    DELETE FROM reactor.due_announcements d WHERE d.job_id = OLD.id;
    IF TG_OP = 'DELETE' THEN
      RETURN NULL;
    END IF;
  ELSIF TG_OP = 'UPDATE' AND OLD.status = 'pending' AND NEW.status <> 'pending' THEN
    UPDATE reactor.due_announcements d SET left_pending = true
     WHERE d.job_id = NEW.id AND NOT d.left_pending;
  END IF;
  PERFORM reactor.due_queue_sync(NEW.id, NEW.status, NEW.enabled, NEW.scheduled_for,
                                 TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM 'pending'
                                   OR OLD.id IS DISTINCT FROM NEW.id);
  RETURN NULL;
END
$$;

REVOKE EXECUTE ON FUNCTION reactor.track_due() FROM PUBLIC;

CREATE TRIGGER scheduled_jobs_track_due_insert
  AFTER INSERT ON reactor.scheduled_jobs
  FOR EACH ROW WHEN (NEW.status = 'pending' AND NEW.enabled)
  EXECUTE FUNCTION reactor.track_due();
CREATE TRIGGER scheduled_jobs_track_due_update
  AFTER UPDATE ON reactor.scheduled_jobs
  FOR EACH ROW
  WHEN (OLD.status IS DISTINCT FROM NEW.status
        OR OLD.enabled IS DISTINCT FROM NEW.enabled
        OR OLD.scheduled_for IS DISTINCT FROM NEW.scheduled_for
        OR OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION reactor.track_due();
CREATE TRIGGER scheduled_jobs_track_due_delete
  AFTER DELETE ON reactor.scheduled_jobs
  FOR EACH ROW EXECUTE FUNCTION reactor.track_due();
CREATE TRIGGER scheduled_jobs_track_due_truncate
  AFTER TRUNCATE ON reactor.scheduled_jobs
  FOR EACH STATEMENT EXECUTE FUNCTION reactor.track_due();

-- The time budget of one tick() in milliseconds: the setting reactor.tick_budget_ms
-- (1 to 60000), 40 when it is not set.
CREATE FUNCTION reactor.tick_budget_ms() RETURNS integer
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v text := nullif(btrim(current_setting('reactor.tick_budget_ms', true)), '');
BEGIN
  IF v IS NULL THEN
    RETURN 40;
  END IF;
  IF v !~ '^[0-9]{1,5}$' OR v::integer NOT BETWEEN 1 AND 60000 THEN
    RAISE EXCEPTION 'reactor.tick_budget_ms must be a number of milliseconds from 1 to 60000, got %', quote_literal(v)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN v::integer;
END
$$;

-- Fails a running job that passed its timeout through fail_job (so its retry rules
-- apply). REQUIRES: the caller holds the job's row lock.
CREATE FUNCTION reactor.time_out(j reactor.scheduled_jobs) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  exec_id integer;
BEGIN
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
END
$$;

REVOKE EXECUTE ON FUNCTION reactor.time_out(reactor.scheduled_jobs) FROM PUBLIC;

-- Performs, as of now(), the time-driven transitions that are due, within
-- reactor.tick_budget_ms milliseconds (a setting: ALTER ROLE/DATABASE ... SET
-- reactor.tick_budget_ms = N; default 40), and returns the next moment one is due (NULL when
-- none is, and while scheduler_config.enabled is false, when it does nothing):
--   1. a running job past started_at + timeout_seconds (else the configured
--      stuck_timeout_seconds) is failed through fail_job with error 'timeout';
--   2. a pending enabled job past expires_at (else scheduled_for + pending_ttl_seconds)
--      becomes 'expired';
--   3. a pending enabled job whose scheduled_for has arrived gets one 'due' event, once
--      per job and scheduled_for, written while holding the job's row lock (FOR SHARE),
--      so that it takes its place among the job's other events in commit order; a job
--      a worker holds locked is skipped (it is being started: it needs no due event).
-- Each step handles at least one row if any is due, then stops when the budget is spent;
-- the answer is then the earliest moment left unhandled, which is in the past: "tick
-- again now". Rows locked by others make the answer at most one second ahead.
-- Generic plans from the first call: every statement below starts at the right end of an
-- index with parameters as well (see above), and custom plans would re-plan each of them
-- on a session's first five calls, which made the first due events of a new leader a few
-- milliseconds later.
CREATE OR REPLACE FUNCTION reactor.tick() RETURNS timestamptz
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  cfg reactor.scheduler_config;
  ttl interval;
  stuck interval;
  budget_end timestamptz;
  j reactor.scheduled_jobs;
  q reactor.due_queue;
  ev_id bigint;
  n integer;
  cut boolean;
  busy boolean := false;
  more_at timestamptz;  -- the earliest moment left unhandled when the budget ran out
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
  budget_end := clock_timestamp() + make_interval(secs => reactor.tick_budget_ms() / 1000.0);

  -- 1. Timeouts: jobs with their own timeout_seconds, then those on the stuck timeout.
  n := 0; cut := false;
  FOR j IN SELECT s.* FROM reactor.scheduled_jobs s
            WHERE s.status = 'running' AND s.timeout_seconds IS NOT NULL
              AND reactor.timeout_at(s.started_at, s.timeout_seconds) <= now()
            ORDER BY reactor.timeout_at(s.started_at, s.timeout_seconds), s.id
            LIMIT 1000
            FOR UPDATE OF s SKIP LOCKED
  LOOP
    IF n > 0 AND clock_timestamp() >= budget_end THEN
      more_at := least(more_at, reactor.timeout_at(j.started_at, j.timeout_seconds));
      cut := true;
      EXIT;
    END IF;
    PERFORM reactor.time_out(j);
    n := n + 1;
  END LOOP;
  IF n = 1000 THEN
    more_at := least(more_at, now());
  ELSIF NOT cut THEN
    busy := busy OR (SELECT min(reactor.timeout_at(s.started_at, s.timeout_seconds)) FROM reactor.scheduled_jobs s
                      WHERE s.status = 'running' AND s.timeout_seconds IS NOT NULL) <= now();
  END IF;
  IF stuck IS NOT NULL THEN
    n := 0; cut := false;
    FOR j IN SELECT s.* FROM reactor.scheduled_jobs s
              WHERE s.status = 'running' AND s.timeout_seconds IS NULL
                AND s.started_at <= now() - stuck
              ORDER BY s.started_at, s.id
              LIMIT 1000
              FOR UPDATE OF s SKIP LOCKED
    LOOP
      IF n > 0 AND clock_timestamp() >= budget_end THEN
        more_at := least(more_at, j.started_at + stuck);
        cut := true;
        EXIT;
      END IF;
      PERFORM reactor.time_out(j);
      n := n + 1;
    END LOOP;
    IF n = 1000 THEN
      more_at := least(more_at, now());
    ELSIF NOT cut THEN
      busy := busy OR (SELECT min(s.started_at) FROM reactor.scheduled_jobs s
                        WHERE s.status = 'running' AND s.timeout_seconds IS NULL) <= now() - stuck;
    END IF;
  END IF;

  -- 2. Expiry: explicit expires_at, then the pending TTL of jobs without one.
  n := 0; cut := false;
  FOR j IN SELECT s.* FROM reactor.scheduled_jobs s
            WHERE s.status = 'pending' AND s.enabled AND s.expires_at <= now()
            ORDER BY s.expires_at, s.id
            LIMIT 1000
            FOR UPDATE OF s SKIP LOCKED
  LOOP
    IF n > 0 AND clock_timestamp() >= budget_end THEN
      more_at := least(more_at, j.expires_at);
      cut := true;
      EXIT;
    END IF;
    UPDATE reactor.scheduled_jobs s SET status = 'expired', completed_at = clock_timestamp()
     WHERE s.id = j.id;
    n := n + 1;
  END LOOP;
  IF n = 1000 THEN
    more_at := least(more_at, now());
  ELSIF NOT cut THEN
    busy := busy OR (SELECT min(s.expires_at) FROM reactor.scheduled_jobs s
                      WHERE s.status = 'pending' AND s.enabled AND s.expires_at IS NOT NULL) <= now();
  END IF;
  IF ttl IS NOT NULL THEN
    n := 0; cut := false;
    FOR j IN SELECT s.* FROM reactor.scheduled_jobs s
              WHERE s.status = 'pending' AND s.enabled AND s.expires_at IS NULL
                AND s.scheduled_for <= now() - ttl
              ORDER BY s.scheduled_for, s.id
              LIMIT 1000
              FOR UPDATE OF s SKIP LOCKED
    LOOP
      IF n > 0 AND clock_timestamp() >= budget_end THEN
        more_at := least(more_at, j.scheduled_for + ttl);
        cut := true;
        EXIT;
      END IF;
      UPDATE reactor.scheduled_jobs s SET status = 'expired', completed_at = clock_timestamp()
       WHERE s.id = j.id;
      n := n + 1;
    END LOOP;
    IF n = 1000 THEN
      more_at := least(more_at, now());
    ELSIF NOT cut THEN
      busy := busy OR (SELECT min(s.scheduled_for) FROM reactor.scheduled_jobs s
                        WHERE s.status = 'pending' AND s.enabled AND s.expires_at IS NULL) <= now() - ttl;
    END IF;
  END IF;

  -- 3. Due events. First forget the announcements of jobs that left 'pending' (flagged
  -- by the trigger; a bounded batch per tick, the rest at the next one).
  DELETE FROM reactor.due_announcements d
   WHERE d.job_id IN (SELECT x.job_id FROM reactor.due_announcements x WHERE x.left_pending
                       LIMIT 1000 FOR UPDATE SKIP LOCKED);
  -- Only while scheduled_jobs is attached: a detached table is silent (its queue waits).
  IF EXISTS (SELECT 1 FROM reactor.watched_tables w WHERE w.tbl = 'reactor.scheduled_jobs'::regclass) THEN
    n := 0;
    FOR q IN SELECT x.* FROM reactor.due_queue x
              WHERE x.scheduled_for <= now()
              ORDER BY x.scheduled_for, x.job_id
              LIMIT 2000
    LOOP
      n := n + 1;
      IF n > 1 AND clock_timestamp() >= budget_end THEN
        more_at := least(more_at, q.scheduled_for);
        EXIT;
      END IF;
      -- The job's current row, share-locked until this tick commits: a worker's change of
      -- it waits for the due event to commit and takes a later event id. A row a worker
      -- holds is skipped: it is being started (or changed), and if that is rolled back,
      -- the next tick, a second from now, finds it again.
      SELECT s.* INTO j FROM reactor.scheduled_jobs s WHERE s.id = q.job_id FOR SHARE SKIP LOCKED;
      IF NOT FOUND THEN
        IF EXISTS (SELECT 1 FROM reactor.scheduled_jobs s WHERE s.id = q.job_id) THEN
          busy := true;
        ELSE
          DELETE FROM reactor.due_queue x WHERE x.job_id = q.job_id;  -- the job is gone
        END IF;
        CONTINUE;
      END IF;
      IF j.status IS DISTINCT FROM 'pending' OR NOT j.enabled OR j.scheduled_for <> q.scheduled_for THEN
        -- Changed since this statement's snapshot (its own trigger has updated the queue,
        -- and its event or doorbell makes the reactor tick again); or a queue row that a
        -- bypassed trigger left behind: bring it in line and look again at once.
        PERFORM reactor.due_queue_sync(j.id, j.status, j.enabled, j.scheduled_for, false);
        IF j.status = 'pending' AND j.enabled AND j.scheduled_for <= now() THEN
          more_at := least(more_at, j.scheduled_for);
        END IF;
        CONTINUE;
      END IF;
      IF j.expires_at <= now() OR (j.expires_at IS NULL AND j.scheduled_for <= now() - ttl) THEN
        CONTINUE;  -- expiring, not due: step 2 takes it (it was locked, or out of budget)
      END IF;
      ev_id := reactor.emit_event('reactor.scheduled_jobs', 'due', to_jsonb(j), j.status,
                                  'id', 'status', 'user_id', 'job_type');
      INSERT INTO reactor.due_announcements AS d (job_id, scheduled_for, event_id)
      VALUES (j.id, j.scheduled_for, ev_id)
      ON CONFLICT (job_id) DO UPDATE
         SET scheduled_for = EXCLUDED.scheduled_for,
             event_id = EXCLUDED.event_id,
             announced_at = EXCLUDED.announced_at,
             left_pending = false;
      DELETE FROM reactor.due_queue x WHERE x.job_id = j.id;
    END LOOP;
    IF n = 2000 THEN
      more_at := least(more_at, now());
    END IF;
  END IF;

  -- The next deadline, each read from the start of an index range. Rows locked by others
  -- are retried a second from now rather than at once, so a long worker transaction
  -- cannot make the caller spin.
  next_at := least(
    more_at,
    (SELECT min(s.scheduled_for) FROM reactor.scheduled_jobs s
      WHERE s.status = 'pending' AND s.enabled AND s.scheduled_for > now()),
    (SELECT min(s.expires_at) FROM reactor.scheduled_jobs s
      WHERE s.status = 'pending' AND s.enabled AND s.expires_at > now()),
    (SELECT min(s.scheduled_for) + ttl FROM reactor.scheduled_jobs s
      WHERE s.status = 'pending' AND s.enabled AND s.expires_at IS NULL
        AND s.scheduled_for > now() - ttl),
    (SELECT min(reactor.timeout_at(s.started_at, s.timeout_seconds)) FROM reactor.scheduled_jobs s
      WHERE s.status = 'running' AND s.timeout_seconds IS NOT NULL
        AND reactor.timeout_at(s.started_at, s.timeout_seconds) > now()),
    (SELECT min(s.started_at) + stuck FROM reactor.scheduled_jobs s
      WHERE s.status = 'running' AND s.timeout_seconds IS NULL
        AND s.started_at > now() - stuck),
    CASE WHEN busy THEN clock_timestamp() + interval '1 second' END);
  RETURN next_at;
END
$$;

REVOKE EXECUTE ON FUNCTION reactor.tick() FROM PUBLIC;

-- The scheduler's leader holds an EXCLUSIVE lock on this table, in a transaction its lock
-- session keeps open; standbys wait in LOCK TABLE, a statement that takes no snapshot
-- (docs/scheduler.md, "Leader election"). One row, never written: only the lock counts.
-- A reactor connecting as another role needs GRANT SELECT, UPDATE ON it.
CREATE TABLE reactor.scheduler_leader (
  id integer PRIMARY KEY DEFAULT 1
    CONSTRAINT scheduler_leader_singleton CHECK (id = 1)
);
INSERT INTO reactor.scheduler_leader (id) VALUES (1);

COMMENT ON TABLE reactor.scheduler_leader IS
  'Locked (EXCLUSIVE) by the reactor that runs the scheduler; the others wait in LOCK TABLE.';
