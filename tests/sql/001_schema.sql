-- The schema of 001_schema.sql: tables, columns, defaults, constraints, indexes, the
-- singleton configuration and the updated_at trigger.
BEGIN;
SELECT plan(111);

-- Tables and columns
SELECT has_table('reactor', t, 'table reactor.' || t || ' exists')
  FROM unnest(ARRAY['scheduled_jobs', 'job_executions', 'scheduler_config', 'job_events',
                    'watched_tables']) AS t;

SELECT columns_are('reactor', 'scheduled_jobs', ARRAY[
  'id', 'job_type', 'user_id', 'frequency_type', 'frequency_config', 'parameters', 'priority',
  'status', 'enabled', 'scheduled_for', 'started_at', 'completed_at', 'retry_on_failure',
  'retry_max_attempts', 'retry_backoff_seconds', 'error_count', 'last_error', 'progress_percent',
  'progress_message', 'result', 'timeout_seconds', 'expires_at', 'created_at', 'updated_at']);
SELECT columns_are('reactor', 'job_executions', ARRAY[
  'id', 'job_id', 'started_at', 'completed_at', 'status', 'error_message', 'attempt_number',
  'duration_ms', 'output', 'trigger_type', 'parent_job_id', 'created_at']);
SELECT columns_are('reactor', 'scheduler_config', ARRAY[
  'id', 'enabled', 'max_concurrent_jobs', 'check_interval_seconds', 'timezone',
  'default_retry_max_attempts', 'default_retry_backoff_seconds', 'stuck_timeout_seconds',
  'pending_ttl_seconds', 'created_at', 'updated_at']);
SELECT columns_are('reactor', 'job_events', ARRAY[
  'id', 'job_id', 'source', 'kind', 'status', 'old_status', 'user_id', 'job_type', 'payload',
  'created_at', 'txid', 'horizon', 'cause', 'actor']);
SELECT columns_are('reactor', 'watched_tables', ARRAY[
  'tbl', 'id_column', 'status_column', 'user_column', 'type_column', 'attached_at']);

SELECT col_is_pk('reactor', 'scheduled_jobs', 'id', 'scheduled_jobs.id is the primary key');
SELECT col_type_is('reactor', 'scheduled_jobs', 'id', 'text', 'scheduled_jobs.id is text');
SELECT col_is_null('reactor', 'scheduled_jobs', 'user_id', 'scheduled_jobs.user_id may be NULL');
SELECT col_type_is('reactor', 'scheduled_jobs', 'frequency_config', 'jsonb', 'frequency_config is jsonb');
SELECT col_type_is('reactor', 'scheduled_jobs', 'parameters', 'jsonb', 'parameters is jsonb');
SELECT col_type_is('reactor', 'scheduled_jobs', 'result', 'jsonb', 'result is jsonb');
SELECT col_type_is('reactor', 'scheduled_jobs', 'scheduled_for', 'timestamp with time zone',
                   'scheduled_for is timestamptz');
SELECT col_type_is('reactor', 'job_executions', 'id', 'integer', 'job_executions.id is an integer');
SELECT col_type_is('reactor', 'job_events', 'id', 'bigint', 'job_events.id is a bigint');
SELECT col_type_is('reactor', 'job_events', 'txid', 'xid8', 'job_events.txid is xid8');
SELECT col_type_is('reactor', 'job_events', 'horizon', 'xid8', 'job_events.horizon is xid8');
SELECT col_type_is('reactor', 'job_events', 'payload', 'jsonb', 'job_events.payload is jsonb');
SELECT col_not_null('reactor', 'job_events', c, 'job_events.' || c || ' is NOT NULL')
  FROM unnest(ARRAY['job_id', 'source', 'kind', 'payload', 'created_at', 'txid', 'horizon']) AS c;
SELECT col_type_is('reactor', 'watched_tables', 'tbl', 'regclass', 'watched_tables.tbl is a regclass');
SELECT col_is_pk('reactor', 'watched_tables', 'tbl', 'watched_tables is keyed by table');

SELECT fk_ok('reactor', 'job_executions', 'job_id', 'reactor', 'scheduled_jobs', 'id');
SELECT fk_ok('reactor', 'job_executions', 'parent_job_id', 'reactor', 'scheduled_jobs', 'id');
SELECT is((SELECT confdeltype FROM pg_constraint
            WHERE conrelid = 'reactor.job_executions'::regclass AND contype = 'f'
              AND conkey = ARRAY[(SELECT attnum FROM pg_attribute
                                   WHERE attrelid = 'reactor.job_executions'::regclass
                                     AND attname = 'job_id')]),
          'c'::"char", 'executions are deleted with their job (ON DELETE CASCADE)');
SELECT is((SELECT confdeltype FROM pg_constraint
            WHERE conrelid = 'reactor.job_executions'::regclass AND contype = 'f'
              AND conkey = ARRAY[(SELECT attnum FROM pg_attribute
                                   WHERE attrelid = 'reactor.job_executions'::regclass
                                     AND attname = 'parent_job_id')]),
          'n'::"char", 'a deleted parent job leaves parent_job_id NULL (ON DELETE SET NULL)');

-- Defaults of a job inserted with only the required columns
INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('defaults', 'auto_sync');
SELECT results_eq(
  $$SELECT frequency_type, frequency_config, parameters, priority, status, enabled,
           scheduled_for = now(), retry_on_failure, retry_max_attempts, retry_backoff_seconds,
           error_count, progress_percent, created_at = now(), updated_at = now()
      FROM reactor.scheduled_jobs WHERE id = 'defaults'$$,
  $$VALUES ('once', '{}'::jsonb, '{}'::jsonb, 'medium', 'pending', true, true, true, 3, 60, 0,
            NULL::integer, true, true)$$,
  'a new job is a pending, enabled, medium, one-time job due now, retrying 3 times from 60 s');
INSERT INTO reactor.scheduled_jobs (job_type) VALUES ('no_id');
SELECT ok((SELECT id FROM reactor.scheduled_jobs WHERE job_type = 'no_id') ~ '^[0-9a-f-]{36}$',
          'a job inserted without id gets a generated one');

-- The retry defaults follow scheduler_config
UPDATE reactor.scheduler_config SET default_retry_max_attempts = 5, default_retry_backoff_seconds = 30;
INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('defaults2', 'auto_sync');
SELECT results_eq(
  $$SELECT retry_max_attempts, retry_backoff_seconds FROM reactor.scheduled_jobs WHERE id = 'defaults2'$$,
  $$VALUES (5, 30)$$,
  'retry_max_attempts and retry_backoff_seconds default to scheduler_config''s defaults');
UPDATE reactor.scheduler_config SET default_retry_max_attempts = 3, default_retry_backoff_seconds = 60;

-- CHECK constraints
SELECT throws_ok($$INSERT INTO reactor.scheduled_jobs (id, job_type, status) VALUES ('x', 't', 'done')$$,
                 '23514', NULL, 'status must be one of the six states');
SELECT lives_ok($$INSERT INTO reactor.scheduled_jobs (id, job_type, status) VALUES
                   ('s1', 't', 'pending'), ('s2', 't', 'running'), ('s3', 't', 'completed'),
                   ('s4', 't', 'failed'), ('s5', 't', 'cancelled'), ('s6', 't', 'expired')$$,
                'every documented status is accepted');
SELECT throws_ok($$INSERT INTO reactor.scheduled_jobs (id, job_type, priority) VALUES ('x', 't', 'urgent')$$,
                 '23514', NULL, 'priority must be critical, high, medium or low');
SELECT throws_ok($$INSERT INTO reactor.scheduled_jobs (id, job_type, frequency_type) VALUES ('x', 't', 'monthly')$$,
                 '22023', 'unknown frequency_type ''monthly''; expected weekly, daily, every_n_hours or once',
                 'frequency_type must be weekly, daily, every_n_hours or once');
SELECT throws_ok($$INSERT INTO reactor.scheduled_jobs (id, job_type, progress_percent) VALUES ('x', 't', 101)$$,
                 '23514', NULL, 'progress_percent above 100 is rejected');
SELECT throws_ok($$INSERT INTO reactor.scheduled_jobs (id, job_type, progress_percent) VALUES ('x', 't', -1)$$,
                 '23514', NULL, 'negative progress_percent is rejected');
SELECT throws_ok($$INSERT INTO reactor.scheduled_jobs (id, job_type, error_count) VALUES ('x', 't', -1)$$,
                 '23514', NULL, 'negative error_count is rejected');
SELECT throws_ok($$INSERT INTO reactor.scheduled_jobs (id, job_type, retry_max_attempts) VALUES ('x', 't', 21)$$,
                 '23514', NULL, 'retry_max_attempts is at most 20 (the backoff stays a valid time)');
SELECT throws_ok($$INSERT INTO reactor.scheduled_jobs (id, job_type, timeout_seconds) VALUES ('x', 't', 0)$$,
                 '23514', NULL, 'timeout_seconds must be positive');
SELECT throws_ok($$INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for) VALUES ('x', 't', 'infinity')$$,
                 '23514', NULL, 'scheduled_for must be finite');
SELECT throws_ok($$INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('', 't')$$,
                 '23514', NULL, 'an empty id is rejected');
SELECT throws_ok($$INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('x', NULL)$$,
                 '23502', NULL, 'job_type is required');
SELECT throws_ok($$INSERT INTO reactor.scheduled_jobs (id, job_type, frequency_config) VALUES ('x', 't', '[]')$$,
                 '23514', NULL, 'frequency_config must be a JSON object');
SELECT throws_ok($$INSERT INTO reactor.job_executions (job_id, trigger_type) VALUES ('defaults', 'cron')$$,
                 '23514', NULL, 'trigger_type must be scheduled, manual, retry or dependent');
SELECT throws_ok($$INSERT INTO reactor.job_executions (job_id, status) VALUES ('defaults', 'pending')$$,
                 '23514', NULL, 'an execution is running, completed, failed or cancelled');
SELECT throws_ok($$INSERT INTO reactor.job_executions (job_id) VALUES ('nope')$$,
                 '23503', NULL, 'an execution needs an existing job');
SELECT throws_ok($$INSERT INTO reactor.job_events (job_id, source, kind, payload) VALUES ('j', 's', 'other', '{}')$$,
                 '23514', NULL, 'job_events.kind is status, progress or due');

-- frequency_config is validated when written, with a clear message
SELECT throws_ok($$INSERT INTO reactor.scheduled_jobs (id, job_type, frequency_type, frequency_config)
                   VALUES ('x', 't', 'weekly', '{"hour": 6, "minute": 0}')$$,
                 '22023', 'weekly frequency_config needs "day" (an integer from 0 to 6), got {"hour": 6, "minute": 0}',
                 'a weekly job without a day is rejected');
SELECT throws_ok($$INSERT INTO reactor.scheduled_jobs (id, job_type, frequency_type, frequency_config)
                   VALUES ('x', 't', 'daily', '{"hour": 24}')$$,
                 '22023', 'daily frequency_config: "hour" must be an integer from 0 to 23, got 24',
                 'a daily job at hour 24 is rejected');
SELECT throws_ok($$INSERT INTO reactor.scheduled_jobs (id, job_type, frequency_type, frequency_config)
                   VALUES ('x', 't', 'every_n_hours', '{"hours": 0}')$$,
                 '22023', NULL, 'every_n_hours with 0 hours is rejected');
SELECT lives_ok($$INSERT INTO reactor.scheduled_jobs (id, job_type, frequency_type, frequency_config)
                  VALUES ('weekly_ok', 'weekly_generation', 'weekly', '{"day": 5, "hour": 6, "minute": 0}')$$,
                'the seed''s weekly Friday 06:00 configuration is accepted');
SELECT throws_ok($$UPDATE reactor.scheduled_jobs SET frequency_config = '{"day": 5}' WHERE id = 'weekly_ok'$$,
                 '22023', NULL, 'an update that breaks frequency_config is rejected');

-- Indexes
SELECT has_index('reactor', 'scheduled_jobs', i, 'index ' || i || ' exists')
  FROM unnest(ARRAY['idx_scheduled_jobs_status_priority', 'idx_scheduled_jobs_user_id',
                    'idx_scheduled_jobs_type', 'idx_scheduled_jobs_scheduled_for',
                    'idx_scheduled_jobs_parameters', 'idx_scheduled_jobs_frequency_config']) AS i;
SELECT has_index('reactor', 'job_executions', i, 'index ' || i || ' exists')
  FROM unnest(ARRAY['idx_job_executions_job_id', 'idx_job_executions_started_at',
                    'idx_job_executions_status', 'idx_job_executions_output']) AS i;
SELECT has_index('reactor', 'job_events', i, 'index ' || i || ' exists')
  FROM unnest(ARRAY['idx_job_events_txid', 'idx_job_events_job_id',
                    'idx_job_events_created_at']) AS i;
SELECT index_is_type('reactor', 'scheduled_jobs', i, 'gin')
  FROM unnest(ARRAY['idx_scheduled_jobs_parameters', 'idx_scheduled_jobs_frequency_config']) AS i;
SELECT index_is_type('reactor', 'job_executions', 'idx_job_executions_output', 'gin');
SELECT is(pg_get_expr(indpred, indrelid), 'enabled',
          'idx_scheduled_jobs_status_priority only holds enabled jobs')
  FROM pg_index WHERE indexrelid = 'reactor.idx_scheduled_jobs_status_priority'::regclass;
SELECT ok(pg_get_indexdef('reactor.idx_scheduled_jobs_status_priority'::regclass)
            ~ '\(status, reactor\.priority_rank\(priority\), scheduled_for, id\)',
          'idx_scheduled_jobs_status_priority is on status, then priority order');
SELECT is(pg_get_expr(indpred, indrelid), '(user_id IS NOT NULL)',
          'idx_scheduled_jobs_user_id only holds jobs with a user')
  FROM pg_index WHERE indexrelid = 'reactor.idx_scheduled_jobs_user_id'::regclass;
SELECT ok(pg_get_indexdef('reactor.idx_job_events_job_id'::regclass) ~ '\(job_id, id\)',
          'idx_job_events_job_id is on (job_id, id)');
SELECT ok(pg_get_indexdef('reactor.idx_job_events_txid'::regclass) ~ '\(txid\)',
          'idx_job_events_txid is on txid');

-- Priority order
SELECT is(ARRAY(SELECT p FROM unnest(ARRAY['low', 'critical', 'medium', 'high']) AS p
                 ORDER BY reactor.priority_rank(p)),
          ARRAY['critical', 'high', 'medium', 'low'], 'priority_rank orders critical > high > medium > low');

-- The singleton configuration
SELECT results_eq(
  $$SELECT id, enabled, max_concurrent_jobs, check_interval_seconds, timezone,
           default_retry_max_attempts, default_retry_backoff_seconds, stuck_timeout_seconds,
           pending_ttl_seconds FROM reactor.scheduler_config$$,
  $$VALUES (1, true, 5, 60, 'UTC', 3, 60, 1800, NULL::integer)$$,
  'scheduler_config has one row with the documented defaults');
SELECT throws_ok($$INSERT INTO reactor.scheduler_config (id) VALUES (2)$$,
                 '23514', NULL, 'a second configuration row (id 2) is rejected');
SELECT throws_ok($$INSERT INTO reactor.scheduler_config (id) VALUES (1)$$,
                 '23505', NULL, 'a second row with id 1 is rejected');
SELECT throws_ok($$DELETE FROM reactor.scheduler_config$$,
                 '55000', 'reactor.scheduler_config must keep its row; update it instead',
                 'the configuration row cannot be deleted');
SELECT throws_ok($$TRUNCATE reactor.scheduler_config$$,
                 '55000', NULL, 'the configuration row cannot be truncated away');
SELECT throws_ok($$UPDATE reactor.scheduler_config SET timezone = 'Mars/Olympus_Mons'$$,
                 '22023', 'scheduler_config.timezone: unknown time zone ''Mars/Olympus_Mons''',
                 'an unknown time zone is rejected with a clear message');
SELECT lives_ok($$UPDATE reactor.scheduler_config SET timezone = 'Europe/Berlin'$$,
                'a known time zone is accepted');
SELECT throws_ok($$UPDATE reactor.scheduler_config SET max_concurrent_jobs = 0$$,
                 '23514', NULL, 'max_concurrent_jobs must be positive');
SELECT throws_ok($$UPDATE reactor.scheduler_config SET pending_ttl_seconds = 0$$,
                 '23514', NULL, 'pending_ttl_seconds must be positive (NULL: never)');

-- updated_at
UPDATE reactor.scheduled_jobs SET created_at = '2000-01-01', updated_at = '2000-01-01' WHERE id = 'defaults';
UPDATE reactor.scheduled_jobs SET parameters = '{"a": 1}' WHERE id = 'defaults';
SELECT results_eq($$SELECT created_at, updated_at FROM reactor.scheduled_jobs WHERE id = 'defaults'$$,
                  $$VALUES ('2000-01-01'::timestamptz, now())$$,
                  'an update sets scheduled_jobs.updated_at and leaves created_at');
UPDATE reactor.scheduler_config SET updated_at = '2000-01-01';
UPDATE reactor.scheduler_config SET check_interval_seconds = 30;
SELECT is((SELECT updated_at FROM reactor.scheduler_config), now(),
          'an update sets scheduler_config.updated_at');
SELECT has_trigger('reactor'::name, 'scheduled_jobs'::name, 'scheduled_jobs_updated_at'::name,
                   'scheduled_jobs has its updated_at trigger');
SELECT has_trigger('reactor'::name, 'scheduler_config'::name, 'scheduler_config_updated_at'::name,
                   'scheduler_config has its updated_at trigger');

-- Functions of the contract
SELECT has_function('reactor', f, args, format('reactor.%s(%s) exists', f, array_to_string(args, ', ')))
  FROM (VALUES ('get_next_pending_job', ARRAY[]::text[]),
               ('start_job', ARRAY['text', 'text']),
               ('complete_job', ARRAY['text', 'integer', 'jsonb']),
               ('fail_job', ARRAY['text', 'integer', 'text']),
               ('calculate_next_schedule', ARRAY['text', 'jsonb', 'timestamp with time zone']),
               ('update_job_progress', ARRAY['text', 'integer', 'text']),
               ('cancel_job', ARRAY['text']),
               ('attach', ARRAY['regclass', 'text', 'text', 'text', 'text']),
               ('detach', ARRAY['regclass'])) AS v(f, args);
SELECT function_returns('reactor', 'get_next_pending_job', ARRAY[]::text[], 'text');
SELECT function_returns('reactor', 'start_job', ARRAY['text', 'text'], 'integer');
SELECT function_returns('reactor', 'complete_job', ARRAY['text', 'integer', 'jsonb'], 'void');
SELECT function_returns('reactor', 'fail_job', ARRAY['text', 'integer', 'text'], 'void');
SELECT function_returns('reactor', 'calculate_next_schedule',
                        ARRAY['text', 'jsonb', 'timestamp with time zone'], 'timestamp with time zone');
SELECT function_returns('reactor', 'cancel_job', ARRAY['text'], 'boolean');

-- scheduled_jobs is watched by the migration itself
SELECT results_eq($$SELECT tbl, id_column, status_column, user_column, type_column FROM reactor.watched_tables$$,
                  $$VALUES ('reactor.scheduled_jobs'::regclass, 'id', 'status', 'user_id', 'job_type')$$,
                  'the migration attaches reactor.scheduled_jobs');

SELECT * FROM finish();
ROLLBACK;
