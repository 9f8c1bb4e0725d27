-- 001_schema: the scheduler (tables and job functions of the meal-planner scheduler seed,
-- under schema reactor, without its users foreign key and recipe tables), the
-- reactor.job_events log with the trigger that writes it and sends the NOTIFY, and
-- reactor.attach / reactor.detach for users' own job tables.
--
-- `reactor migrate` runs this file as one multi-statement request inside its own
-- transaction, after creating schema reactor and reactor.schema_migrations. No
-- BEGIN/COMMIT and no psql meta-commands belong here. Rollback: 001_schema.down.sql.
-- Semantics are described in docs/sql.md and docs/events.md.

-- Error codes raised by the functions below (callers may branch on them):
--   P0002 no_data_found                      unknown job or execution id
--   22023 invalid_parameter_value            bad argument (percent, frequency_config, ...)
--   55000 object_not_in_prerequisite_state   the job or execution is in the wrong state
--   42703 undefined_column                   reactor.attach: a named column does not exist

------------------------------------------------------------------------------------------
-- Configuration (singleton)
------------------------------------------------------------------------------------------

CREATE TABLE reactor.scheduler_config (
  id integer PRIMARY KEY DEFAULT 1
    CONSTRAINT scheduler_config_singleton CHECK (id = 1),
  enabled boolean NOT NULL DEFAULT true,
  max_concurrent_jobs integer NOT NULL DEFAULT 5
    CHECK (max_concurrent_jobs > 0),
  check_interval_seconds integer NOT NULL DEFAULT 60
    CHECK (check_interval_seconds > 0),
  timezone text NOT NULL DEFAULT 'UTC',
  -- Bounded so that backoff * 2^(attempts - 1) always stays a valid timestamp.
  default_retry_max_attempts integer NOT NULL DEFAULT 3
    CHECK (default_retry_max_attempts BETWEEN 0 AND 20),
  default_retry_backoff_seconds integer NOT NULL DEFAULT 60
    CHECK (default_retry_backoff_seconds BETWEEN 0 AND 86400),
  -- A running job without timeout_seconds is failed with 'timeout' after this long;
  -- NULL: never.
  stuck_timeout_seconds integer DEFAULT 1800
    CHECK (stuck_timeout_seconds > 0),
  -- A pending job without expires_at expires this long after its scheduled_for;
  -- NULL: never.
  pending_ttl_seconds integer
    CHECK (pending_ttl_seconds > 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE reactor.scheduler_config IS
  'Scheduler settings: exactly one row, id = 1. Update it; it cannot be deleted.';

INSERT INTO reactor.scheduler_config (id) VALUES (1);

-- The one row, or an error: every function that needs settings reads them here.
CREATE FUNCTION reactor.config() RETURNS reactor.scheduler_config
LANGUAGE plpgsql STABLE AS $$
DECLARE
  cfg reactor.scheduler_config;
BEGIN
  SELECT * INTO cfg FROM reactor.scheduler_config WHERE id = 1;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'reactor.scheduler_config has no row (id = 1)'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'INSERT INTO reactor.scheduler_config (id) VALUES (1)';
  END IF;
  RETURN cfg;
END
$$;

CREATE FUNCTION reactor.set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$;

CREATE TRIGGER scheduler_config_updated_at
  BEFORE UPDATE ON reactor.scheduler_config
  FOR EACH ROW EXECUTE FUNCTION reactor.set_updated_at();

-- A misspelt zone would otherwise surface only when a recurring job completes.
CREATE FUNCTION reactor.scheduler_config_check() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    PERFORM now() AT TIME ZONE NEW.timezone;
  EXCEPTION WHEN invalid_parameter_value THEN
    RAISE EXCEPTION 'scheduler_config.timezone: unknown time zone %', quote_literal(NEW.timezone)
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'use a name from pg_timezone_names, e.g. ''Europe/Berlin''';
  END;
  RETURN NEW;
END
$$;

CREATE TRIGGER scheduler_config_check
  BEFORE INSERT OR UPDATE ON reactor.scheduler_config
  FOR EACH ROW EXECUTE FUNCTION reactor.scheduler_config_check();

CREATE FUNCTION reactor.scheduler_config_keep() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'reactor.scheduler_config must keep its row; update it instead'
    USING ERRCODE = 'object_not_in_prerequisite_state';
END
$$;

CREATE TRIGGER scheduler_config_keep_row
  BEFORE DELETE ON reactor.scheduler_config
  FOR EACH ROW EXECUTE FUNCTION reactor.scheduler_config_keep();
CREATE TRIGGER scheduler_config_keep_truncate
  BEFORE TRUNCATE ON reactor.scheduler_config
  FOR EACH STATEMENT EXECUTE FUNCTION reactor.scheduler_config_keep();

-- Column defaults of scheduled_jobs follow the configured retry policy. They run as their
-- owner so that inserting a job needs no right to read the configuration.
CREATE FUNCTION reactor.default_retry_max_attempts() RETURNS integer
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce((SELECT default_retry_max_attempts FROM reactor.scheduler_config WHERE id = 1), 3)
$$;

CREATE FUNCTION reactor.default_retry_backoff_seconds() RETURNS integer
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce((SELECT default_retry_backoff_seconds FROM reactor.scheduler_config WHERE id = 1), 60)
$$;

------------------------------------------------------------------------------------------
-- Jobs and their executions
------------------------------------------------------------------------------------------

-- Queue order: critical first. IMMUTABLE so the queue index can hold it.
CREATE FUNCTION reactor.priority_rank(priority text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE priority
           WHEN 'critical' THEN 0
           WHEN 'high' THEN 1
           WHEN 'medium' THEN 2
           WHEN 'low' THEN 3
         END
$$;

CREATE TABLE reactor.scheduled_jobs (
  id text PRIMARY KEY DEFAULT gen_random_uuid()::text
    CHECK (id <> ''),
  job_type text NOT NULL
    CHECK (job_type <> ''),
  user_id text,
  frequency_type text NOT NULL DEFAULT 'once'
    CHECK (frequency_type IN ('weekly', 'daily', 'every_n_hours', 'once')),
  frequency_config jsonb NOT NULL DEFAULT '{}'::jsonb
    CHECK (jsonb_typeof(frequency_config) = 'object'),
  parameters jsonb NOT NULL DEFAULT '{}'::jsonb,
  priority text NOT NULL DEFAULT 'medium'
    CHECK (priority IN ('critical', 'high', 'medium', 'low')),
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled', 'expired')),
  enabled boolean NOT NULL DEFAULT true,
  scheduled_for timestamptz NOT NULL DEFAULT now()
    CHECK (isfinite(scheduled_for)),
  started_at timestamptz,
  completed_at timestamptz,
  retry_on_failure boolean NOT NULL DEFAULT true,
  retry_max_attempts integer NOT NULL DEFAULT reactor.default_retry_max_attempts()
    CHECK (retry_max_attempts BETWEEN 0 AND 20),
  retry_backoff_seconds integer NOT NULL DEFAULT reactor.default_retry_backoff_seconds()
    CHECK (retry_backoff_seconds BETWEEN 0 AND 86400),
  error_count integer NOT NULL DEFAULT 0
    CHECK (error_count >= 0),
  last_error text,
  progress_percent integer
    CHECK (progress_percent BETWEEN 0 AND 100),
  progress_message text,
  result jsonb,
  timeout_seconds integer
    CHECK (timeout_seconds > 0),
  expires_at timestamptz
    CHECK (isfinite(expires_at)),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE reactor.scheduled_jobs IS
  'Jobs of the scheduler; every insert, status change and progress/result change is an event (reactor.job_events).';

-- The queue scan of get_next_pending_job: status, then priority order, then due time.
CREATE INDEX idx_scheduled_jobs_status_priority
  ON reactor.scheduled_jobs (status, reactor.priority_rank(priority), scheduled_for, id)
  WHERE enabled;
CREATE INDEX idx_scheduled_jobs_user_id
  ON reactor.scheduled_jobs (user_id)
  WHERE user_id IS NOT NULL;
CREATE INDEX idx_scheduled_jobs_type ON reactor.scheduled_jobs (job_type);
CREATE INDEX idx_scheduled_jobs_scheduled_for ON reactor.scheduled_jobs (scheduled_for);
CREATE INDEX idx_scheduled_jobs_parameters ON reactor.scheduled_jobs USING gin (parameters);
CREATE INDEX idx_scheduled_jobs_frequency_config
  ON reactor.scheduled_jobs USING gin (frequency_config);
-- The concurrency limit counts running jobs; few rows, so a small partial index.
CREATE INDEX idx_scheduled_jobs_running
  ON reactor.scheduled_jobs (started_at)
  WHERE status = 'running';

CREATE TRIGGER scheduled_jobs_updated_at
  BEFORE UPDATE ON reactor.scheduled_jobs
  FOR EACH ROW EXECUTE FUNCTION reactor.set_updated_at();

CREATE TABLE reactor.job_executions (
  id serial PRIMARY KEY,
  job_id text NOT NULL REFERENCES reactor.scheduled_jobs (id) ON DELETE CASCADE,
  started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  completed_at timestamptz,
  status text NOT NULL DEFAULT 'running'
    CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
  error_message text,
  attempt_number integer NOT NULL DEFAULT 1
    CHECK (attempt_number >= 1),
  duration_ms integer
    CHECK (duration_ms >= 0),
  output jsonb,
  trigger_type text NOT NULL DEFAULT 'scheduled'
    CHECK (trigger_type IN ('scheduled', 'manual', 'retry', 'dependent')),
  parent_job_id text REFERENCES reactor.scheduled_jobs (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE reactor.job_executions IS
  'One row per start_job: attempt number, timing, outcome and output of each run.';

-- (job_id, id) also answers "latest execution of a job", which every event needs.
CREATE INDEX idx_job_executions_job_id ON reactor.job_executions (job_id, id);
CREATE INDEX idx_job_executions_started_at ON reactor.job_executions (started_at DESC);
CREATE INDEX idx_job_executions_status ON reactor.job_executions (status);
CREATE INDEX idx_job_executions_output ON reactor.job_executions USING gin (output);
CREATE INDEX idx_job_executions_parent_job_id
  ON reactor.job_executions (parent_job_id)
  WHERE parent_job_id IS NOT NULL;

------------------------------------------------------------------------------------------
-- Schedules
------------------------------------------------------------------------------------------

-- An integer field of a frequency_config, checked; NULL when absent and `fallback` is NULL.
CREATE FUNCTION reactor.frequency_field(frequency_type text, frequency_config jsonb, field text,
                                        lo integer, hi integer, fallback integer)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  v jsonb := frequency_config -> field;
  n numeric;
BEGIN
  IF v IS NULL OR v = 'null'::jsonb THEN
    IF fallback IS NULL THEN
      RAISE EXCEPTION '% frequency_config needs "%" (an integer from % to %), got %',
                      frequency_type, field, lo, hi, frequency_config
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN fallback;
  END IF;
  IF jsonb_typeof(v) = 'number' THEN
    n := (v #>> '{}')::numeric;
  END IF;
  IF n IS NULL OR n <> trunc(n) OR n NOT BETWEEN lo AND hi THEN
    RAISE EXCEPTION '% frequency_config: "%" must be an integer from % to %, got %',
                    frequency_type, field, lo, hi, v
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN n::integer;
END
$$;

-- Raises a clear error when a (frequency_type, frequency_config) pair cannot be scheduled.
CREATE FUNCTION reactor.check_frequency(frequency_type text, frequency_config jsonb)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  hours numeric;
BEGIN
  IF frequency_type IS NULL
     OR frequency_type NOT IN ('weekly', 'daily', 'every_n_hours', 'once') THEN
    RAISE EXCEPTION 'unknown frequency_type %; expected weekly, daily, every_n_hours or once',
                    coalesce(quote_literal(frequency_type), 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF frequency_type = 'once' THEN
    RETURN;
  END IF;
  IF frequency_config IS NULL OR jsonb_typeof(frequency_config) <> 'object' THEN
    RAISE EXCEPTION '% frequency_config must be a JSON object, got %', frequency_type,
                    coalesce(frequency_config::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF frequency_type = 'every_n_hours' THEN
    IF jsonb_typeof(frequency_config -> 'hours') = 'number' THEN
      hours := (frequency_config ->> 'hours')::numeric;
    END IF;
    IF hours IS NULL OR hours <= 0 OR hours > 87600 THEN
      RAISE EXCEPTION 'every_n_hours frequency_config needs "hours" (a number above 0, at most 87600), got %',
                      frequency_config
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN;
  END IF;
  IF frequency_type = 'weekly' THEN
    PERFORM reactor.frequency_field(frequency_type, frequency_config, 'day', 0, 6, NULL);
  END IF;
  PERFORM reactor.frequency_field(frequency_type, frequency_config, 'hour', 0, 23, NULL);
  PERFORM reactor.frequency_field(frequency_type, frequency_config, 'minute', 0, 59, 0);
END
$$;

-- The first occurrence strictly after from_time. Wall-clock fields are read in
-- scheduler_config.timezone; daily and weekly keep the wall-clock time across daylight
-- saving changes, every_n_hours adds elapsed time.
CREATE FUNCTION reactor.calculate_next_schedule(frequency_type text, frequency_config jsonb,
                                                from_time timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
  tz text;
  local_from timestamp;
  day_date date;
  at_time time;
  candidate timestamptz;
  step integer;
BEGIN
  PERFORM reactor.check_frequency(frequency_type, frequency_config);
  IF frequency_type = 'once' THEN
    RETURN NULL;
  END IF;
  IF from_time IS NULL OR NOT isfinite(from_time) THEN
    RAISE EXCEPTION 'calculate_next_schedule: from_time must be a finite time, got %',
                    coalesce(from_time::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF frequency_type = 'every_n_hours' THEN
    RETURN from_time + (frequency_config ->> 'hours')::float8 * interval '1 hour';
  END IF;

  tz := (reactor.config()).timezone;
  local_from := from_time AT TIME ZONE tz;
  at_time := make_time(reactor.frequency_field(frequency_type, frequency_config, 'hour', 0, 23, NULL),
                       reactor.frequency_field(frequency_type, frequency_config, 'minute', 0, 59, 0),
                       0);
  day_date := local_from::date;
  IF frequency_type = 'weekly' THEN
    day_date := day_date
      + ((reactor.frequency_field(frequency_type, frequency_config, 'day', 0, 6, NULL)
          - extract(dow FROM local_from)::integer + 7) % 7);
    step := 7;
  ELSE
    step := 1;
  END IF;
  -- Compared as absolute times so that the repeated hour of an autumn change cannot make
  -- an occurrence fire twice or be skipped.
  candidate := (day_date + at_time) AT TIME ZONE tz;
  IF candidate <= from_time THEN
    candidate := (day_date + step + at_time) AT TIME ZONE tz;
  END IF;
  RETURN candidate;
END
$$;

CREATE FUNCTION reactor.scheduled_jobs_check() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT'
     OR NEW.frequency_type IS DISTINCT FROM OLD.frequency_type
     OR NEW.frequency_config IS DISTINCT FROM OLD.frequency_config THEN
    PERFORM reactor.check_frequency(NEW.frequency_type, NEW.frequency_config);
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER scheduled_jobs_check
  BEFORE INSERT OR UPDATE ON reactor.scheduled_jobs
  FOR EACH ROW EXECUTE FUNCTION reactor.scheduled_jobs_check();

------------------------------------------------------------------------------------------
-- The job functions
------------------------------------------------------------------------------------------

CREATE FUNCTION reactor.unknown_job(job_id text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'unknown job id %', coalesce(quote_literal(job_id), 'NULL')
    USING ERRCODE = 'no_data_found';
END
$$;

-- The next job a worker should run, locked (FOR UPDATE SKIP LOCKED) until the caller's
-- transaction ends, so concurrent callers get different jobs. NULL when none is ready,
-- when the scheduler is disabled, or when max_concurrent_jobs jobs are running.
CREATE FUNCTION reactor.get_next_pending_job() RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  cfg reactor.scheduler_config := reactor.config();
  running integer;
  next_id text;
BEGIN
  IF NOT cfg.enabled THEN
    RETURN NULL;
  END IF;
  SELECT count(*) INTO running FROM reactor.scheduled_jobs s WHERE s.status = 'running';
  IF running >= cfg.max_concurrent_jobs THEN
    RETURN NULL;
  END IF;
  SELECT s.id INTO next_id
    FROM reactor.scheduled_jobs s
   WHERE s.status = 'pending'
     AND s.enabled
     AND s.scheduled_for <= now()
     -- Not one that has expired and only waits for tick() to say so.
     AND CASE
           WHEN s.expires_at IS NOT NULL THEN s.expires_at > now()
           WHEN cfg.pending_ttl_seconds IS NOT NULL
             THEN s.scheduled_for + make_interval(secs => cfg.pending_ttl_seconds) > now()
           ELSE true
         END
   ORDER BY reactor.priority_rank(s.priority), s.scheduled_for, s.id
   LIMIT 1
   FOR UPDATE OF s SKIP LOCKED;
  RETURN next_id;
END
$$;

-- Marks a job running and records an execution; returns the execution id. A pending job
-- can be started with any trigger_type; a finished one (completed, failed, cancelled,
-- expired) only with 'manual', which starts a fresh series of attempts.
CREATE FUNCTION reactor.start_job(job_id text, trigger_type text DEFAULT 'scheduled')
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  j reactor.scheduled_jobs;
  exec_id integer;
  t timestamptz := clock_timestamp();
  fresh boolean;
BEGIN
  IF start_job.trigger_type IS NULL
     OR start_job.trigger_type NOT IN ('scheduled', 'manual', 'retry', 'dependent') THEN
    RAISE EXCEPTION 'start_job: trigger_type must be scheduled, manual, retry or dependent, got %',
                    coalesce(quote_literal(start_job.trigger_type), 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO j FROM reactor.scheduled_jobs s WHERE s.id = start_job.job_id FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM reactor.unknown_job(start_job.job_id);
  END IF;
  IF j.status = 'running' THEN
    RAISE EXCEPTION 'job % is already running', quote_literal(j.id)
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF j.status <> 'pending' AND start_job.trigger_type <> 'manual' THEN
    RAISE EXCEPTION 'job % is %; only a pending job can be started (a finished one with trigger_type ''manual'')',
                    quote_literal(j.id), j.status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  fresh := j.status <> 'pending';
  -- The execution comes first so that the 'running' event already carries its attempt.
  INSERT INTO reactor.job_executions AS e (job_id, started_at, status, attempt_number, trigger_type)
  VALUES (j.id, t, 'running', CASE WHEN fresh THEN 1 ELSE j.error_count + 1 END,
          start_job.trigger_type)
  RETURNING e.id INTO exec_id;
  UPDATE reactor.scheduled_jobs s
     SET status = 'running',
         started_at = t,
         completed_at = NULL,
         progress_percent = NULL,
         progress_message = NULL,
         result = NULL,
         error_count = CASE WHEN fresh THEN 0 ELSE s.error_count END,
         last_error = CASE WHEN fresh THEN NULL ELSE s.last_error END
   WHERE s.id = j.id;
  RETURN exec_id;
END
$$;

-- The running execution `execution_id` of job `job_id`, locked, after checking that both
-- exist, belong together and are running. Shared by complete_job and fail_job.
CREATE FUNCTION reactor.running_execution(job_id text, execution_id integer,
                                          OUT job reactor.scheduled_jobs,
                                          OUT execution reactor.job_executions)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  SELECT * INTO job FROM reactor.scheduled_jobs s WHERE s.id = running_execution.job_id FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM reactor.unknown_job(running_execution.job_id);
  END IF;
  SELECT * INTO execution FROM reactor.job_executions e
   WHERE e.id = running_execution.execution_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'unknown execution id % (job %)',
                    coalesce(running_execution.execution_id::text, 'NULL'), quote_literal(job.id)
      USING ERRCODE = 'no_data_found';
  END IF;
  IF execution.job_id <> job.id THEN
    RAISE EXCEPTION 'execution % belongs to job %, not to job %', execution.id,
                    quote_literal(execution.job_id), quote_literal(job.id)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF execution.status <> 'running' THEN
    RAISE EXCEPTION 'execution % of job % is already %', execution.id, quote_literal(job.id),
                    execution.status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF job.status <> 'running' THEN
    RAISE EXCEPTION 'job % is %, not running', quote_literal(job.id), job.status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
END
$$;

CREATE FUNCTION reactor.elapsed_ms(since timestamptz, upto timestamptz) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
  SELECT greatest(0, round(extract(epoch FROM (upto - since)) * 1000))::integer
$$;

-- Success: the execution gets its duration and output; a one-time job becomes
-- 'completed', a recurring one 'pending' again at its next occurrence after now().
CREATE FUNCTION reactor.complete_job(job_id text, execution_id integer, output jsonb DEFAULT NULL)
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
$$;

-- Failure: error_count + 1 and last_error. While retries remain (retry_on_failure and
-- error_count before this failure < retry_max_attempts) the job is pending again at
-- now() + retry_backoff_seconds * 2^(error_count - 1); otherwise it is 'failed'.
CREATE FUNCTION reactor.fail_job(job_id text, execution_id integer, error_message text)
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
$$;

-- Progress of a running job: percent from 0 to 100, message optional (NULL clears it).
CREATE FUNCTION reactor.update_job_progress(job_id text, percent integer, message text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  j reactor.scheduled_jobs;
BEGIN
  IF percent IS NULL OR percent NOT BETWEEN 0 AND 100 THEN
    RAISE EXCEPTION 'update_job_progress: percent must be from 0 to 100, got %',
                    coalesce(percent::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO j FROM reactor.scheduled_jobs s WHERE s.id = update_job_progress.job_id FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM reactor.unknown_job(update_job_progress.job_id);
  END IF;
  IF j.status <> 'running' THEN
    RAISE EXCEPTION 'job % is %; progress is reported only while it runs', quote_literal(j.id), j.status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  UPDATE reactor.scheduled_jobs s
     SET progress_percent = update_job_progress.percent,
         progress_message = update_job_progress.message
   WHERE s.id = j.id;
END
$$;

-- Cancels a pending or running job (its running execution becomes 'cancelled'). True when
-- it did; false when the job had already finished.
CREATE FUNCTION reactor.cancel_job(job_id text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  j reactor.scheduled_jobs;
  t timestamptz := clock_timestamp();
BEGIN
  SELECT * INTO j FROM reactor.scheduled_jobs s WHERE s.id = cancel_job.job_id FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM reactor.unknown_job(cancel_job.job_id);
  END IF;
  IF j.status NOT IN ('pending', 'running') THEN
    RETURN false;
  END IF;
  UPDATE reactor.job_executions e
     SET status = 'cancelled',
         completed_at = t,
         duration_ms = reactor.elapsed_ms(e.started_at, t)
   WHERE e.job_id = j.id AND e.status = 'running';
  UPDATE reactor.scheduled_jobs s
     SET status = 'cancelled',
         completed_at = t
   WHERE s.id = j.id;
  RETURN true;
END
$$;

------------------------------------------------------------------------------------------
-- Events
------------------------------------------------------------------------------------------

CREATE TABLE reactor.job_events (
  id bigserial PRIMARY KEY,
  job_id text NOT NULL,
  source text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('status', 'progress', 'due')),
  status text,
  old_status text,
  user_id text,
  job_type text,
  payload jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  -- Ids are taken before commit, so a lower id can become visible after a higher one; the
  -- writing transaction lets a reader tell "not yet committed" from "never".
  txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  -- The oldest transaction still running when this row was written: every event that
  -- commits after this one has txid >= horizon, so a subscriber resuming after this event
  -- is served `WHERE txid >= horizon` (docs/delivery.md).
  horizon xid8 NOT NULL DEFAULT pg_snapshot_xmin(pg_current_snapshot())
);

COMMENT ON TABLE reactor.job_events IS
  'The event log: one row per event, payload = the event JSON sent with NOTIFY (docs/events.md).';

CREATE INDEX idx_job_events_txid ON reactor.job_events (txid);
CREATE INDEX idx_job_events_job_id ON reactor.job_events (job_id, id);
CREATE INDEX idx_job_events_created_at ON reactor.job_events (created_at);

CREATE TABLE reactor.watched_tables (
  tbl regclass PRIMARY KEY,
  id_column text NOT NULL,
  status_column text NOT NULL,
  user_column text,
  type_column text,
  attached_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE reactor.watched_tables IS
  'Tables whose rows produce events; maintained by reactor.attach / reactor.detach.';

-- ISO-8601 in UTC with a Z; microseconds only when the time has a fractional second.
-- IMMUTABLE: the formats used depend on no setting (the time is converted to UTC first).
CREATE FUNCTION reactor.iso_time(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT CASE
           WHEN NOT isfinite(t) THEN t::text
           WHEN date_trunc('second', t) = t
             THEN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
           ELSE to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
         END
$$;

-- The value of the first of `keys` present in `j` (a row as jsonb); NULL when none is.
CREATE FUNCTION reactor.first_field(j jsonb, VARIADIC keys text[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT j -> k FROM unnest(keys) WITH ORDINALITY AS u(k, n) WHERE j ? k ORDER BY n LIMIT 1
$$;

-- The first of `keys` that is a column of `tbl`.
CREATE FUNCTION reactor.first_column(tbl regclass, VARIADIC keys text[]) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT k FROM unnest(keys) WITH ORDINALITY AS u(k, n)
   WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                  WHERE a.attrelid = tbl AND a.attname = k AND a.attnum > 0 AND NOT a.attisdropped)
   ORDER BY n LIMIT 1
$$;

-- Writes one event row for a row of `src` (given as jsonb) and sends its NOTIFY; returns
-- the event id. Runs as its owner: writers of watched tables need no rights on
-- reactor.job_events, and nobody else may call it (EXECUTE is revoked below).
CREATE FUNCTION reactor.emit_event(src regclass, kind text, row_data jsonb, old_status text,
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

  note := payload::text;
  IF octet_length(note) > 7900 THEN
    note := jsonb_build_object('id', ev_id, 'kind', kind, 'job_id', v_job_id,
                               'status', v_status, 'truncated', true)::text;
  END IF;
  PERFORM pg_notify(coalesce(nullif(current_setting('reactor.channel', true), ''),
                             'job_status_changed'),
                    note);
  RETURN ev_id;
END
$$;

-- The trigger of every watched table. Arguments: id column, status column, user column,
-- job type column ('' for none). An insert is a 'status' event; an update is a 'status'
-- event when the status changed, a 'progress' event when only progress, message or
-- result changed, and nothing otherwise.
CREATE FUNCTION reactor.job_event_trigger() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  new_row jsonb := to_jsonb(NEW);
  old_row jsonb;
  kind text;
BEGIN
  IF TG_NARGS <> 4 THEN
    RAISE EXCEPTION 'reactor.job_event_trigger on % needs 4 arguments; attach the table with reactor.attach',
                    TG_RELID::regclass;
  END IF;
  IF TG_OP = 'INSERT' THEN
    kind := 'status';
  ELSIF TG_OP = 'UPDATE' THEN
    old_row := to_jsonb(OLD);
    IF (new_row -> TG_ARGV[1]) IS DISTINCT FROM (old_row -> TG_ARGV[1]) THEN
      kind := 'status';
    ELSIF reactor.first_field(new_row, 'progress_percent', 'progress')
            IS DISTINCT FROM reactor.first_field(old_row, 'progress_percent', 'progress')
       OR reactor.first_field(new_row, 'progress_message', 'message')
            IS DISTINCT FROM reactor.first_field(old_row, 'progress_message', 'message')
       OR (new_row -> 'result') IS DISTINCT FROM (old_row -> 'result') THEN
      kind := 'progress';
    ELSE
      RETURN NULL;
    END IF;
  ELSE
    RETURN NULL;
  END IF;
  PERFORM reactor.emit_event(TG_RELID, kind, new_row, old_row ->> TG_ARGV[1],
                             TG_ARGV[0], TG_ARGV[1], nullif(TG_ARGV[2], ''), nullif(TG_ARGV[3], ''));
  RETURN NULL;
END
$$;

REVOKE EXECUTE ON FUNCTION reactor.emit_event(regclass, text, jsonb, text, text, text, text, text)
  FROM PUBLIC;
-- Creating a trigger needs EXECUTE on its function: only those who may attach tables.
REVOKE EXECUTE ON FUNCTION reactor.job_event_trigger() FROM PUBLIC;

-- Drops the event triggers of `tbl`; true when there were any. (Checked first: DROP
-- TRIGGER IF EXISTS would send a notice for each missing one.)
CREATE FUNCTION reactor.drop_event_triggers(tbl regclass) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  name text;
  found_any boolean := false;
BEGIN
  FOR name IN SELECT t.tgname FROM pg_catalog.pg_trigger t
               WHERE t.tgrelid = tbl AND NOT t.tgisinternal
                 AND t.tgname IN ('reactor_job_event_insert', 'reactor_job_event_update')
  LOOP
    EXECUTE format('DROP TRIGGER %I ON %s', name, tbl);
    found_any := true;
  END LOOP;
  RETURN found_any;
END
$$;

-- Makes `tbl` produce events (its triggers reactor_job_event_insert and
-- reactor_job_event_update). Attaching an attached table again replaces its settings.
CREATE FUNCTION reactor.attach(tbl regclass, id_column text DEFAULT 'id',
                               status_column text DEFAULT 'status',
                               user_column text DEFAULT NULL, type_column text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  relkind "char";
  arg record;
  watched text[];
  args text;
  cond text;
BEGIN
  IF tbl IS NULL THEN
    RAISE EXCEPTION 'reactor.attach: tbl must not be NULL' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT c.relkind INTO relkind FROM pg_catalog.pg_class c WHERE c.oid = tbl;
  IF relkind IS NULL OR relkind NOT IN ('r', 'p') THEN
    RAISE EXCEPTION 'reactor.attach: % is not a table', tbl USING ERRCODE = 'wrong_object_type';
  END IF;
  IF tbl IN ('reactor.job_events'::regclass, 'reactor.job_executions'::regclass,
             'reactor.scheduler_config'::regclass, 'reactor.watched_tables'::regclass) THEN
    RAISE EXCEPTION 'reactor.attach: % is part of the reactor and cannot be attached', tbl
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR arg IN SELECT * FROM (VALUES ('id_column', id_column, true),
                                   ('status_column', status_column, true),
                                   ('user_column', user_column, false),
                                   ('type_column', type_column, false)) AS v(name, col, required)
  LOOP
    IF arg.col IS NULL OR arg.col = '' THEN
      IF arg.required THEN
        RAISE EXCEPTION 'reactor.attach: % must name a column of %', arg.name, tbl
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
      CONTINUE;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid = tbl AND a.attname = arg.col
                      AND a.attnum > 0 AND NOT a.attisdropped) THEN
      RAISE EXCEPTION 'reactor.attach: table % has no column % (given as %)', tbl,
                      quote_ident(arg.col), arg.name
        USING ERRCODE = 'undefined_column';
    END IF;
  END LOOP;

  -- The update trigger fires only when a column that can make an event changed; the
  -- trigger function then decides which event. Compared as text: every type has one.
  watched := array_remove(ARRAY[status_column,
                                reactor.first_column(tbl, 'progress_percent', 'progress'),
                                reactor.first_column(tbl, 'progress_message', 'message'),
                                reactor.first_column(tbl, 'result')], NULL);
  SELECT string_agg(format('(OLD.%1$I)::text IS DISTINCT FROM (NEW.%1$I)::text', w.c), ' OR ' ORDER BY w.c)
    INTO cond FROM (SELECT DISTINCT u.c FROM unnest(watched) AS u(c)) AS w;
  args := format('%L, %L, %L, %L', id_column, status_column,
                 coalesce(nullif(user_column, ''), ''), coalesce(nullif(type_column, ''), ''));

  PERFORM reactor.drop_event_triggers(tbl);
  EXECUTE format('CREATE TRIGGER reactor_job_event_insert AFTER INSERT ON %s '
                 'FOR EACH ROW EXECUTE FUNCTION reactor.job_event_trigger(%s)', tbl, args);
  EXECUTE format('CREATE TRIGGER reactor_job_event_update AFTER UPDATE ON %s '
                 'FOR EACH ROW WHEN (%s) EXECUTE FUNCTION reactor.job_event_trigger(%s)',
                 tbl, cond, args);

  INSERT INTO reactor.watched_tables AS w (tbl, id_column, status_column, user_column, type_column)
  VALUES (tbl, id_column, status_column, nullif(user_column, ''), nullif(type_column, ''))
  ON CONFLICT ON CONSTRAINT watched_tables_pkey DO UPDATE
     SET id_column = EXCLUDED.id_column,
         status_column = EXCLUDED.status_column,
         user_column = EXCLUDED.user_column,
         type_column = EXCLUDED.type_column,
         attached_at = now();
END
$$;

-- Stops events from `tbl`: drops its triggers and its watched_tables row. True when it
-- was attached; a table that was not attached only gets a NOTICE and false.
CREATE FUNCTION reactor.detach(tbl regclass) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  had_row boolean;
  had_trigger boolean;
BEGIN
  IF tbl IS NULL THEN
    RAISE EXCEPTION 'reactor.detach: tbl must not be NULL' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  had_trigger := reactor.drop_event_triggers(tbl);
  DELETE FROM reactor.watched_tables w WHERE w.tbl = detach.tbl;
  had_row := FOUND;
  IF NOT had_row AND NOT had_trigger THEN
    RAISE NOTICE 'reactor.detach: % was not attached', tbl;
    RETURN false;
  END IF;
  RETURN true;
END
$$;

SELECT reactor.attach('reactor.scheduled_jobs', 'id', 'status', 'user_id', 'job_type');
