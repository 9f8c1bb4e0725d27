-- Rollback of 006_console.sql: emit_event as 005 defined it (no cause, actor, action,
-- priority or enabled), complete_job and fail_job as 001 wrote them, time_out and tick()
-- as 004 did, start_job and update_job_progress without their cause; reactor.job_action
-- and reactor.fail_job_as are dropped, and so are the columns job_events.cause and
-- job_events.actor (the payloads of the events written meanwhile keep their fields). Events
-- of kind 'action' stay in the log; the kind CHECK of 001 is put back, NOT VALID while such
-- rows exist. 006 is forgotten.
-- Each function is restored only while it is still in its 006 form, so a second run, or
-- a run after an earlier migration's rollback, brings nothing back.
--
--   psql -v ON_ERROR_STOP=1 --single-transaction -f sql/migrations/006_console.down.sql

DO $$
BEGIN
  IF to_regclass('reactor.schema_migrations') IS NOT NULL
     AND EXISTS (SELECT 1 FROM reactor.schema_migrations WHERE version > 6) THEN
    RAISE EXCEPTION 'roll back the later migrations first: %',
      (SELECT string_agg(name, ', ' ORDER BY version DESC)
         FROM reactor.schema_migrations WHERE version > 6)
      USING ERRCODE = 'dependent_objects_still_exist';
  END IF;
END
$$;

DROP FUNCTION IF EXISTS reactor.job_action(text, text, text, text, text);

-- True when function `f` exists and its definition mentions `needle`: still in its 006 form.
-- (to_regprocedure raises, rather than answering NULL, when an argument type is gone.)
CREATE OR REPLACE FUNCTION pg_temp.in_006_form(f text, needle text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  RETURN to_regprocedure(f) IS NOT NULL
         AND strpos(pg_get_functiondef(to_regprocedure(f)), needle) > 0;
EXCEPTION WHEN undefined_object THEN
  RETURN false;
END
$$;

-- 005's emit_event.
DO $do$
BEGIN
  IF pg_temp.in_006_form('reactor.emit_event(regclass, text, jsonb, text, text, text, text, text)',
                         'reactor.cause') THEN
    EXECUTE $sql$
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
    'at', reactor.iso_time(event_at));
  INSERT INTO reactor.job_events (id, job_id, source, kind, status, old_status, user_id,
                                  job_type, payload, created_at, horizon)
  VALUES (ev_id, v_job_id, source, kind, v_status, old_status, v_user, v_type, payload, event_at,
          ev_horizon);

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
                                        'status', v_status, 'truncated', true)::text, 2));
  END IF;
  PERFORM pg_notify(channel, note);
  RETURN ev_id;
END
$$
$sql$;
  END IF;
END
$do$;

-- 001's complete_job and fail_job.
DO $do$
BEGIN
  IF pg_temp.in_006_form('reactor.complete_job(text, integer, jsonb)', 'reactor.cause') THEN
    EXECUTE $sql$
CREATE OR REPLACE FUNCTION reactor.complete_job(job_id text, execution_id integer, output jsonb DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
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
  UPDATE reactor.scheduled_jobs s
     SET status = CASE WHEN next_at IS NULL THEN 'completed' ELSE 'pending' END,
         scheduled_for = coalesce(next_at, s.scheduled_for),
         completed_at = t,
         error_count = 0,
         last_error = NULL,
         result = complete_job.output
   WHERE s.id = (r.job).id;
END
$$
$sql$;
  END IF;
  IF pg_temp.in_006_form('reactor.fail_job(text, integer, text)', 'fail_job_as') THEN
    EXECUTE $sql$
CREATE OR REPLACE FUNCTION reactor.fail_job(job_id text, execution_id integer, error_message text)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  r record;
  t timestamptz := clock_timestamp();
  failures integer;
BEGIN
  SELECT * INTO r FROM reactor.running_execution(fail_job.job_id, fail_job.execution_id);
  failures := (r.job).error_count + 1;
  UPDATE reactor.job_executions e
     SET status = 'failed',
         completed_at = t,
         duration_ms = reactor.elapsed_ms(e.started_at, t),
         error_message = fail_job.error_message
   WHERE e.id = (r.execution).id;
  IF (r.job).retry_on_failure AND (r.job).error_count < (r.job).retry_max_attempts THEN
    UPDATE reactor.scheduled_jobs s
       SET status = 'pending',
           error_count = failures,
           last_error = fail_job.error_message,
           scheduled_for = now()
             + make_interval(secs => s.retry_backoff_seconds * power(2, failures - 1))
     WHERE s.id = (r.job).id;
  ELSE
    UPDATE reactor.scheduled_jobs s
       SET status = 'failed',
           error_count = failures,
           last_error = fail_job.error_message,
           completed_at = t
     WHERE s.id = (r.job).id;
  END IF;
END
$$
$sql$;
  END IF;
  IF to_regprocedure('reactor.start_job(text, text)') IS NOT NULL THEN
    ALTER FUNCTION reactor.start_job(text, text) RESET reactor.cause;
  END IF;
  IF to_regprocedure('reactor.update_job_progress(text, integer, text)') IS NOT NULL THEN
    ALTER FUNCTION reactor.update_job_progress(text, integer, text) RESET reactor.cause;
  END IF;
END
$do$;

-- 004's time_out and tick().
DO $do$
BEGIN
  IF pg_temp.in_006_form('reactor.time_out(reactor.scheduled_jobs)', 'fail_job_as') THEN
    EXECUTE $sql$
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
  PERFORM reactor.fail_job(j.id, exec_id, 'timeout');
END
$$
$sql$;
  END IF;
  IF pg_temp.in_006_form('reactor.tick()', 'reactor.cause') THEN
    EXECUTE $sql$
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
$$
$sql$;
  END IF;
END
$do$;

DROP FUNCTION IF EXISTS reactor.fail_job_as(text, integer, text, text);

DO $$
BEGIN
  IF to_regclass('reactor.job_events') IS NOT NULL THEN
    ALTER TABLE reactor.job_events DROP COLUMN IF EXISTS cause, DROP COLUMN IF EXISTS actor;
    IF EXISTS (SELECT 1 FROM pg_constraint c
                WHERE c.conrelid = 'reactor.job_events'::regclass AND c.conname = 'job_events_kind_check'
                  AND pg_get_constraintdef(c.oid) ~ 'action') THEN
      ALTER TABLE reactor.job_events DROP CONSTRAINT job_events_kind_check;
      IF EXISTS (SELECT 1 FROM reactor.job_events e WHERE e.kind = 'action') THEN
        ALTER TABLE reactor.job_events ADD CONSTRAINT job_events_kind_check
          CHECK (kind IN ('status', 'progress', 'due')) NOT VALID;
      ELSE
        ALTER TABLE reactor.job_events ADD CONSTRAINT job_events_kind_check
          CHECK (kind IN ('status', 'progress', 'due'));
      END IF;
    END IF;
  END IF;
  IF to_regclass('reactor.schema_migrations') IS NOT NULL THEN
    DELETE FROM reactor.schema_migrations WHERE version = 6;
  END IF;
END
$$;
