-- 006_console: every event says what caused it (cause, actor, action) and carries the
-- job's priority and enabled flag; reactor.job_action performs an operator's action on a
-- job of reactor.scheduled_jobs and writes exactly one event for it.
--
-- Runs inside one transaction opened by `reactor migrate`. Rollback: 006_console.down.sql.
-- Semantics: docs/events.md ("Causes", "Actions") and docs/sql.md ("reactor.job_action").
--
-- The cause travels in a custom setting, read by emit_event:
--   reactor.cause   worker | retry | schedule | timeout | expiry | user | sql (anything
--                   else, or unset, is 'sql');
--   reactor.actor, reactor.action   read only when reactor.cause is 'user'.
-- Each function below that names a cause sets it with a SET clause (restored when it
-- returns) and, where the cause depends on the branch taken, with set_config(..., true)
-- in its body, which the SET clause confines to the call: a cause never outlives the
-- function that set it, so a later statement of the same transaction writes 'sql' again.
--
-- Error codes of reactor.job_action (the reactor maps them for its clients):
--   P0002 no_data_found                      unknown job
--   42501 insufficient_privilege             only_user given and the job is someone else's
--   55000 object_not_in_prerequisite_state   the action changes nothing or does not apply
--                                            in the job's state
--   22023 invalid_parameter_value            unknown action, bad arg, empty actor
--   55P03 lock_not_available                 a worker held the job's row for over 2 s

------------------------------------------------------------------------------------------
-- The log: cause and actor of each event, and the new kind 'action'
------------------------------------------------------------------------------------------

-- Rows written before this migration keep 'sql': their cause is unknown (docs/events.md).
ALTER TABLE reactor.job_events
  ADD COLUMN cause text NOT NULL DEFAULT 'sql'
    CONSTRAINT job_events_cause_check
    CHECK (cause IN ('worker', 'retry', 'schedule', 'timeout', 'expiry', 'user', 'sql')),
  ADD COLUMN actor text;
ALTER TABLE reactor.job_events
  DROP CONSTRAINT job_events_kind_check,
  ADD CONSTRAINT job_events_kind_check CHECK (kind IN ('status', 'progress', 'due', 'action'));

------------------------------------------------------------------------------------------
-- emit_event as in 005, with cause, actor, action, priority and enabled in every event
-- and cause in the truncated form
------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION reactor.emit_event(src regclass, kind text, row_data jsonb, old_status text,
                                   id_column text, status_column text,
                                   user_column text, type_column text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  ev_id bigint;
  event_at timestamptz := clock_timestamp();
  source text;
  v_job_id text;
  v_status text;
  v_user text;
  v_type text;
  attempt jsonb;
  sched jsonb;
  sched_type regtype;
  deadline timestamptz;
  job reactor.scheduled_jobs;
  stuck integer;
  payload jsonb;
  note text;
  channel text;
  -- The oldest transaction still running now: every transaction below it has ended, so
  -- a client resuming after this event needs only events with txid >= it (docs/delivery.md).
  ev_horizon xid8 := pg_snapshot_xmin(pg_current_snapshot());
  -- What made the change: the writing session's reactor.cause (set by the job functions,
  -- tick() and job_action, or by an application's worker with SET LOCAL); anything
  -- other than a known cause is 'sql'. Actor and action only come with 'user'.
  v_cause text := current_setting('reactor.cause', true);
  v_actor text;
  v_action text;
BEGIN
  -- A partition's rows are events of the partitioned table that was attached.
  SELECT c.relname INTO source FROM pg_class c WHERE c.oid = coalesce(pg_partition_root(src), src);
  IF NOT (row_data ? id_column) OR NOT (row_data ? status_column) THEN
    RAISE EXCEPTION 'reactor: table % is attached with id column % and status column %, but it has no column %',
                    src, quote_ident(id_column), quote_ident(status_column),
                    quote_ident(CASE WHEN row_data ? id_column THEN status_column ELSE id_column END)
      USING ERRCODE = 'undefined_column',
            HINT = format('run SELECT reactor.attach(%L, ...) with the current column names, or reactor.detach(%L)',
                          src::text, src::text);
  END IF;
  v_job_id := row_data ->> id_column;
  IF v_job_id IS NULL THEN
    RAISE EXCEPTION 'reactor: a row of % has a NULL id (column %); its event cannot be logged',
                    src, quote_ident(id_column)
      USING ERRCODE = 'not_null_violation';
  END IF;
  v_status := row_data ->> status_column;
  v_user := CASE WHEN user_column IS NOT NULL THEN row_data ->> user_column END;
  v_type := CASE WHEN type_column IS NOT NULL THEN row_data ->> type_column END;
  IF v_cause IS NULL
     OR v_cause NOT IN ('worker', 'retry', 'schedule', 'timeout', 'expiry', 'user', 'sql') THEN
    v_cause := 'sql';
  END IF;
  IF v_cause = 'user' THEN
    v_actor := nullif(current_setting('reactor.actor', true), '');
    v_action := nullif(current_setting('reactor.action', true), '');
  END IF;

  IF src = 'reactor.scheduled_jobs'::regclass THEN
    job := jsonb_populate_record(NULL::reactor.scheduled_jobs, row_data);
    attempt := (SELECT to_jsonb(e.attempt_number) FROM reactor.job_executions e
                 WHERE e.job_id = job.id ORDER BY e.id DESC LIMIT 1);
    sched := to_jsonb(reactor.iso_time(job.scheduled_for));
    IF job.status = 'pending' AND job.enabled THEN
      deadline := least(job.scheduled_for, job.expires_at);
    ELSIF job.status = 'running' THEN
      stuck := coalesce(job.timeout_seconds, (reactor.config()).stuck_timeout_seconds);
      deadline := job.started_at + make_interval(secs => stuck);
    END IF;
  ELSE
    attempt := reactor.first_field(row_data, 'attempt', 'attempts', 'attempt_number');
    sched := row_data -> 'scheduled_for';
    IF sched IS NOT NULL AND sched <> 'null'::jsonb THEN
      SELECT a.atttypid::regtype INTO sched_type FROM pg_attribute a
       WHERE a.attrelid = src AND a.attname = 'scheduled_for';
      IF sched_type IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN
        sched := to_jsonb(reactor.iso_time((sched #>> '{}')::timestamptz));
      END IF;
    END IF;
  END IF;

  ev_id := nextval('reactor.job_events_id_seq');
  payload := jsonb_build_object(
    'id', ev_id,
    'kind', kind,
    'job_id', v_job_id,
    'source', source,
    'status', v_status,
    'old_status', old_status,
    'user_id', v_user,
    'job_type', v_type,
    'attempt', attempt,
    'progress', reactor.first_field(row_data, 'progress_percent', 'progress'),
    'message', reactor.first_field(row_data, 'progress_message', 'message'),
    'error', reactor.first_field(row_data, 'last_error', 'error_message', 'error'),
    'result', row_data -> 'result',
    'scheduled_for', sched,
    'deadline', reactor.iso_time(deadline),
    'cause', v_cause,
    'actor', v_actor,
    'action', v_action,
    'priority', row_data -> 'priority',
    'enabled', row_data -> 'enabled',
    'at', reactor.iso_time(event_at));
  INSERT INTO reactor.job_events (id, job_id, source, kind, status, old_status, user_id,
                                  job_type, payload, created_at, horizon, cause, actor)
  VALUES (ev_id, v_job_id, source, kind, v_status, old_status, v_user, v_type, payload, event_at,
          ev_horizon, v_cause, v_actor);

  -- Signed (reactor.sign_notification); the truncated form when the signed event is
  -- over 7900 bytes. txid is the row's txid column: the same pg_current_xact_id().
  channel := coalesce(nullif(current_setting('reactor.channel', true), ''), 'job_status_changed');
  -- The row's horizon rides in front of the event, inside what is signed:
  -- {"mac":…,"txid":…,"horizon":"<xid8>",<the event after its "{">. A reactor that knows
  -- it takes the field out again (the event stays payload::text byte for byte); one that
  -- does not passes it on as an extra field.
  note := reactor.sign_notification(channel, pg_current_xact_id(),
            '{"horizon":"' || ev_horizon::text || '",' || substr(payload::text, 2));
  IF octet_length(note) > 7900 THEN
    note := reactor.sign_notification(channel, pg_current_xact_id(),
              '{"horizon":"' || ev_horizon::text || '",' ||
              substr(jsonb_build_object('id', ev_id, 'kind', kind, 'job_id', v_job_id,
                                        'status', v_status, 'cause', v_cause,
                                        'truncated', true)::text, 2));
  END IF;
  PERFORM pg_notify(channel, note);
  RETURN ev_id;
END
$$;

------------------------------------------------------------------------------------------
-- The causes of the job functions
------------------------------------------------------------------------------------------

-- A worker's own calls: their events say 'worker'.
ALTER FUNCTION reactor.start_job(text, text) SET reactor.cause = 'worker';
ALTER FUNCTION reactor.update_job_progress(text, integer, text) SET reactor.cause = 'worker';

-- complete_job as in 001; a recurring job made pending again at its next occurrence is
-- 'schedule', a one-time job completed is 'worker'.
CREATE OR REPLACE FUNCTION reactor.complete_job(job_id text, execution_id integer, output jsonb DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SET reactor.cause = 'worker' AS $$
DECLARE
  r record;
  t timestamptz := clock_timestamp();
  next_at timestamptz;
BEGIN
  SELECT * INTO r FROM reactor.running_execution(complete_job.job_id, complete_job.execution_id);
  UPDATE reactor.job_executions e
     SET status = 'completed',
         completed_at = t,
         duration_ms = reactor.elapsed_ms(e.started_at, t),
         output = complete_job.output
   WHERE e.id = (r.execution).id;
  next_at := reactor.calculate_next_schedule((r.job).frequency_type, (r.job).frequency_config, now());
  IF next_at IS NOT NULL THEN
    PERFORM set_config('reactor.cause', 'schedule', true);  -- a recurrence: pending again
  END IF;
  UPDATE reactor.scheduled_jobs s
     SET status = CASE WHEN next_at IS NULL THEN 'completed' ELSE 'pending' END,
         scheduled_for = coalesce(next_at, s.scheduled_for),
         completed_at = t,
         error_count = 0,
         last_error = NULL,
         result = complete_job.output
   WHERE s.id = (r.job).id;
END
$$;

-- fail_job's body (001) with the cause of its change: a failure that schedules another
-- attempt is 'retry', a final one 'worker'; called by time_out for a timeout, both are
-- 'timeout'. as_cause: 'worker' or 'timeout'.
CREATE FUNCTION reactor.fail_job_as(job_id text, execution_id integer, error_message text,
                                    as_cause text)
RETURNS void
LANGUAGE plpgsql VOLATILE SET reactor.cause = 'worker' AS $$
DECLARE
  r record;
  t timestamptz := clock_timestamp();
  failures integer;
BEGIN
  IF as_cause IS NULL OR as_cause NOT IN ('worker', 'timeout') THEN
    RAISE EXCEPTION 'fail_job_as: as_cause must be worker or timeout, got %',
                    coalesce(quote_literal(as_cause), 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO r FROM reactor.running_execution(fail_job_as.job_id, fail_job_as.execution_id);
  failures := (r.job).error_count + 1;
  UPDATE reactor.job_executions e
     SET status = 'failed',
         completed_at = t,
         duration_ms = reactor.elapsed_ms(e.started_at, t),
         error_message = fail_job_as.error_message
   WHERE e.id = (r.execution).id;
  IF (r.job).retry_on_failure AND (r.job).error_count < (r.job).retry_max_attempts THEN
    PERFORM set_config('reactor.cause', CASE WHEN as_cause = 'timeout' THEN 'timeout' ELSE 'retry' END, true);
    UPDATE reactor.scheduled_jobs s
       SET status = 'pending',
           error_count = failures,
           last_error = fail_job_as.error_message,
           scheduled_for = now()
             + make_interval(secs => s.retry_backoff_seconds * power(2, failures - 1))
     WHERE s.id = (r.job).id;
  ELSE
    PERFORM set_config('reactor.cause', as_cause, true);
    UPDATE reactor.scheduled_jobs s
       SET status = 'failed',
           error_count = failures,
           last_error = fail_job_as.error_message,
           completed_at = t
     WHERE s.id = (r.job).id;
  END IF;
END
$$;

-- Failure reported by a worker (001's contract, unchanged).
CREATE OR REPLACE FUNCTION reactor.fail_job(job_id text, execution_id integer, error_message text)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM reactor.fail_job_as(fail_job.job_id, fail_job.execution_id, fail_job.error_message, 'worker');
END
$$;

-- time_out as in 004, its failure caused by 'timeout'.
CREATE OR REPLACE FUNCTION reactor.time_out(j reactor.scheduled_jobs) RETURNS void
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
  PERFORM reactor.fail_job_as(j.id, exec_id, 'timeout', 'timeout');
END
$$;

-- tick() as in 004; its expiries are caused by 'expiry', its due events by 'schedule'
-- (timeouts: 'timeout', through time_out).
CREATE OR REPLACE FUNCTION reactor.tick() RETURNS timestamptz
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_generic_plan
SET reactor.cause = 'sql' AS $$
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
  PERFORM set_config('reactor.cause', 'expiry', true);
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

  PERFORM set_config('reactor.cause', 'schedule', true);
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

------------------------------------------------------------------------------------------
-- Operator actions
------------------------------------------------------------------------------------------

-- Performs `action` on job `job_id` of reactor.scheduled_jobs on behalf of user `actor`
-- and returns the id of the one event it caused (cause 'user', actor, action):
--   cancel        pending or running -> cancelled (as reactor.cancel_job)
--   retry_now     failed, cancelled or expired -> pending at now() (error_count and
--                 last_error kept; an expires_at already passed is cleared); a pending
--                 job not yet due -> scheduled_for = now()
--   run_now       a pending, enabled job not yet due -> scheduled_for = now()
--   enable, disable
--   set_priority  arg: critical, high, medium or low
-- When the change is a status change, the job's event trigger writes the event; otherwise
-- (kind 'action') this function writes it, with status = old_status = the job's status.
-- only_user (when not NULL): the job must be that user's (42501 otherwise, before anything
-- but the job's existence is told). Runs as its owner; EXECUTE is revoked from PUBLIC.
CREATE FUNCTION reactor.job_action(job_id text, action text, actor text,
                                   only_user text DEFAULT NULL, arg text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET reactor.cause = 'user' SET reactor.actor = '' SET reactor.action = ''
-- A job a worker holds locked is answered at once (55P03) rather than waited for: the
-- reactor sends every client's reads and actions on one session.
SET lock_timeout = '2s' AS $$
DECLARE
  w reactor.watched_tables;
  j reactor.scheduled_jobs;
  n reactor.scheduled_jobs;
  ev_id bigint;
  what text := quote_literal(job_action.job_id);
BEGIN
  -- The request itself: nothing about the job is looked at yet.
  IF job_action.action IS NULL
     OR job_action.action NOT IN ('cancel', 'retry_now', 'run_now', 'enable', 'disable', 'set_priority') THEN
    RAISE EXCEPTION 'unknown action %; expected cancel, retry_now, run_now, enable, disable or set_priority',
                    coalesce(quote_literal(job_action.action), 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF job_action.actor IS NULL OR job_action.actor = '' THEN
    RAISE EXCEPTION 'job_action: actor must be a non-empty text (the acting user)'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF job_action.action = 'set_priority' THEN
    IF job_action.arg IS NULL OR job_action.arg NOT IN ('critical', 'high', 'medium', 'low') THEN
      RAISE EXCEPTION 'set_priority needs arg critical, high, medium or low, got %',
                      coalesce(quote_literal(job_action.arg), 'NULL')
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
  ELSIF job_action.arg IS NOT NULL THEN
    RAISE EXCEPTION '% takes no arg, got %', job_action.action, quote_literal(job_action.arg)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- A detached scheduled_jobs makes no events, and an action is its event.
  SELECT * INTO w FROM reactor.watched_tables x WHERE x.tbl = 'reactor.scheduled_jobs'::regclass;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'reactor.scheduled_jobs is detached; actions need its events'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'SELECT reactor.attach(''reactor.scheduled_jobs'', ''id'', ''status'', ''user_id'', ''job_type'')';
  END IF;

  -- The job, locked until the caller commits: a worker's start waits for the action, and
  -- the action for a worker's commit (then it sees what the worker did).
  SELECT * INTO j FROM reactor.scheduled_jobs s WHERE s.id = job_action.job_id FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM reactor.unknown_job(job_action.job_id);
  END IF;
  IF job_action.only_user IS NOT NULL AND j.user_id IS DISTINCT FROM job_action.only_user THEN
    RAISE EXCEPTION 'job % is not a job of user %', what, quote_literal(job_action.only_user)
      USING ERRCODE = 'insufficient_privilege';
  END IF;

  PERFORM set_config('reactor.actor', job_action.actor, true);
  PERFORM set_config('reactor.action', job_action.action, true);

  CASE job_action.action
  WHEN 'cancel' THEN
    IF j.status NOT IN ('pending', 'running') THEN
      RAISE EXCEPTION 'job % is %; cancel needs pending or running', what, j.status
        USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    PERFORM reactor.cancel_job(j.id);
  WHEN 'retry_now' THEN
    IF j.status IN ('failed', 'cancelled', 'expired') THEN
      -- One more attempt: error_count and last_error stay (start_job counts on from them).
      UPDATE reactor.scheduled_jobs s
         SET status = 'pending',
             scheduled_for = now(),
             completed_at = NULL,
             expires_at = CASE WHEN s.expires_at <= now() THEN NULL ELSE s.expires_at END
       WHERE s.id = j.id;
    ELSIF j.status = 'pending' THEN
      IF NOT j.enabled THEN
        RAISE EXCEPTION 'job % is disabled; enable it first', what
          USING ERRCODE = 'object_not_in_prerequisite_state';
      END IF;
      IF j.scheduled_for <= now() THEN
        RAISE EXCEPTION 'job % is pending and already due; retry_now would change nothing', what
          USING ERRCODE = 'object_not_in_prerequisite_state';
      END IF;
      UPDATE reactor.scheduled_jobs s SET scheduled_for = now() WHERE s.id = j.id RETURNING * INTO n;
    ELSE
      RAISE EXCEPTION 'job % is %; retry_now needs failed, cancelled, expired or pending', what, j.status
        USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
  WHEN 'run_now' THEN
    IF j.status <> 'pending' THEN
      RAISE EXCEPTION 'job % is %; run_now needs pending (retry_now starts a finished job again)', what, j.status
        USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF NOT j.enabled THEN
      RAISE EXCEPTION 'job % is disabled; enable it first', what
        USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF j.scheduled_for <= now() THEN
      RAISE EXCEPTION 'job % is already due; run_now would change nothing', what
        USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE reactor.scheduled_jobs s SET scheduled_for = now() WHERE s.id = j.id RETURNING * INTO n;
  WHEN 'enable', 'disable' THEN
    IF j.enabled = (job_action.action = 'enable') THEN
      RAISE EXCEPTION 'job % is already %', what, job_action.action || 'd'
        USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE reactor.scheduled_jobs s SET enabled = (job_action.action = 'enable')
     WHERE s.id = j.id RETURNING * INTO n;
  WHEN 'set_priority' THEN
    IF j.priority = job_action.arg THEN
      RAISE EXCEPTION 'job % already has priority %', what, job_action.arg
        USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE reactor.scheduled_jobs s SET priority = job_action.arg WHERE s.id = j.id RETURNING * INTO n;
  END CASE;

  IF n.id IS NOT NULL THEN
    -- No status change: no event from the trigger; this is the action's event.
    RETURN reactor.emit_event('reactor.scheduled_jobs', 'action', to_jsonb(n), n.status,
                              w.id_column, w.status_column, w.user_column, w.type_column);
  END IF;
  -- A status change: the trigger has just written the event, in this transaction, which
  -- holds the job's row lock; it is the job's latest event of this transaction. (Not
  -- currval(): another trigger of the same statement may have drawn an id since.)
  SELECT e.id INTO ev_id FROM reactor.job_events e
   WHERE e.job_id = j.id AND e.source = 'scheduled_jobs' AND e.txid = pg_current_xact_id()
     AND e.kind = 'status' AND e.cause = 'user'
   ORDER BY e.id DESC LIMIT 1;
  IF ev_id IS NULL THEN
    RAISE EXCEPTION 'job_action: the % of job % wrote no event (are the triggers of reactor.scheduled_jobs disabled?)',
                    job_action.action, what
      USING ERRCODE = 'internal_error';
  END IF;
  RETURN ev_id;
END
$$;

REVOKE EXECUTE ON FUNCTION reactor.job_action(text, text, text, text, text) FROM PUBLIC;
