-- Rollback of 005_notify_horizon.sql: emit_event as 003 defined it (the horizon is the
-- column's default again and is not sent in front of the event), reactor.warm_up() is
-- dropped, and 005 is forgotten.
-- A reactor then resumes from the database where it cannot prove a resume from memory
-- exact (docs/delivery.md).
--
--   psql -v ON_ERROR_STOP=1 --single-transaction -f sql/migrations/005_notify_horizon.down.sql

DO $$
BEGIN
  IF to_regclass('reactor.schema_migrations') IS NOT NULL
     AND EXISTS (SELECT 1 FROM reactor.schema_migrations WHERE version > 5) THEN
    RAISE EXCEPTION 'roll back the later migrations first: %',
      (SELECT string_agg(name, ', ' ORDER BY version DESC)
         FROM reactor.schema_migrations WHERE version > 5)
      USING ERRCODE = 'dependent_objects_still_exist';
  END IF;
END
$$;

-- 003's emit_event, while 003 is applied (a second run after 003's rollback must not
-- bring it back).
DO $do$
BEGIN
  IF to_regprocedure('reactor.sign_notification(text, xid8, text)') IS NOT NULL THEN
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
                                  job_type, payload, created_at)
  VALUES (ev_id, v_job_id, source, kind, v_status, old_status, v_user, v_type, payload, event_at);

  -- Signed (reactor.sign_notification); the truncated form when the signed event is
  -- over 7900 bytes. txid is the row's txid column: the same pg_current_xact_id().
  channel := coalesce(nullif(current_setting('reactor.channel', true), ''), 'job_status_changed');
  note := reactor.sign_notification(channel, pg_current_xact_id(), payload::text);
  IF octet_length(note) > 7900 THEN
    note := reactor.sign_notification(channel, pg_current_xact_id(),
              jsonb_build_object('id', ev_id, 'kind', kind, 'job_id', v_job_id,
                                 'status', v_status, 'truncated', true)::text);
  END IF;
  PERFORM pg_notify(channel, note);
  RETURN ev_id;
END
$$;
$sql$;
  END IF;
END
$do$;

DROP FUNCTION IF EXISTS reactor.warm_up();

DO $$
BEGIN
  IF to_regclass('reactor.schema_migrations') IS NOT NULL THEN
    DELETE FROM reactor.schema_migrations WHERE version = 5;
  END IF;
END
$$;
