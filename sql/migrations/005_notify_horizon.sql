-- 005_notify_horizon: each event's notification carries the row's horizon, so that a
-- replica can serve a resume from memory exactly as the database would (docs/delivery.md,
-- "Resume on any replica"): every event with txid >= the horizon of `since`.
-- Runs inside one transaction opened by `reactor migrate`. Rollback: 005_notify_horizon.down.sql.

-- emit_event as in 003, the horizon computed once, stored in the row and signed in front
-- of the event.
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
$$;

-- Compiles and plans, in the calling session, what writing an event runs (the triggers,
-- emit_event, sign_notification, tick()'s announcing), then undoes it (a tick it ran
-- included: whatever it did is rolled back and the real tick does it again). A reactor calls it when it becomes the
-- scheduler's leader: the first due event it writes is then not late by the ~40 ms a
-- fresh session spends on that (docs/scheduler.md). Writes nothing; the job_events id it
-- drew is skipped.
CREATE FUNCTION reactor.warm_up() RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  warm text := 'reactor_warm_up_' || pg_backend_pid();
BEGIN
  BEGIN
    -- A job due now: tick() announces it (the due path), then it starts (a status event).
    INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for)
    VALUES (warm, 'reactor_warm_up', now() - interval '1 second');
    PERFORM reactor.tick();
    UPDATE reactor.scheduled_jobs SET status = 'running', started_at = now() WHERE id = warm;
    RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'reactor warm-up, undone';
  EXCEPTION WHEN raise_exception THEN
    NULL;  -- everything above is rolled back, notifications included
  END;
END
$$;
REVOKE EXECUTE ON FUNCTION reactor.warm_up() FROM PUBLIC;
