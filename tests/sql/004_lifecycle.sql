-- start_job and complete_job: the seed's lifecycle test (duration and output), recurring
-- jobs going back to pending, and the errors for wrong ids and states.
BEGIN;
SELECT plan(41);

-- The seed's lifecycle test
INSERT INTO reactor.scheduled_jobs (id, job_type, frequency_type, frequency_config, status)
VALUES ('test_complete', 'weekly_generation', 'once', '{}', 'pending');
SELECT reactor.start_job('test_complete', 'manual') AS exec_id \gset
SELECT ok(:exec_id > 0, 'start_job returns the new execution id');
SELECT results_eq(
  $$SELECT status, started_at IS NOT NULL, completed_at IS NULL FROM reactor.scheduled_jobs WHERE id = 'test_complete'$$,
  $$VALUES ('running', true, true)$$,
  'start_job: the job is running with started_at set');
SELECT results_eq(
  format($$SELECT job_id, status, attempt_number, trigger_type, completed_at IS NULL
             FROM reactor.job_executions WHERE id = %s$$, :exec_id),
  $$VALUES ('test_complete', 'running', 1, 'manual', true)$$,
  'start_job: a running execution, attempt 1, with its trigger type');
SELECT is((SELECT started_at FROM reactor.scheduled_jobs WHERE id = 'test_complete'),
          (SELECT started_at FROM reactor.job_executions WHERE id = :exec_id),
          'the job and its execution share started_at');
SELECT pg_sleep(0.1) \gset
SELECT lives_ok(format($$SELECT reactor.complete_job('test_complete', %s, '{"recipes": 4}'::jsonb)$$, :exec_id),
                'complete_job succeeds');
SELECT results_eq(
  $$SELECT status, error_count, completed_at IS NOT NULL, last_error, result
      FROM reactor.scheduled_jobs WHERE id = 'test_complete'$$,
  $$VALUES ('completed', 0, true, NULL::text, '{"recipes": 4}'::jsonb)$$,
  'complete_job: completed, error_count 0, completed_at set, result = output');
SELECT results_eq(
  $$SELECT status, duration_ms > 0, output ->> 'recipes' FROM reactor.job_executions WHERE job_id = 'test_complete'$$,
  $$VALUES ('completed', true, '4')$$,
  'the seed''s check: execution completed, has a duration, recipe_count = 4');
SELECT cmp_ok((SELECT duration_ms FROM reactor.job_executions WHERE id = :exec_id), '>=', 100,
              'duration_ms covers the 0.1 s of work');
SELECT is((SELECT duration_ms FROM reactor.job_executions WHERE id = :exec_id),
          (SELECT round(extract(epoch FROM completed_at - started_at) * 1000)::integer
             FROM reactor.job_executions WHERE id = :exec_id),
          'duration_ms = completed_at - started_at in milliseconds');
SELECT is((SELECT completed_at FROM reactor.scheduled_jobs WHERE id = 'test_complete'),
          (SELECT completed_at FROM reactor.job_executions WHERE id = :exec_id),
          'the job and its execution share completed_at');

-- Errors: ids and states
SELECT throws_ok($$SELECT reactor.start_job('no_such_job', 'manual')$$,
                 'P0002', 'unknown job id ''no_such_job''', 'start_job: unknown job id');
SELECT throws_ok($$SELECT reactor.start_job(NULL, 'manual')$$,
                 'P0002', 'unknown job id NULL', 'start_job: NULL job id');
SELECT throws_ok(format($$SELECT reactor.complete_job('no_such_job', %s, NULL)$$, :exec_id),
                 'P0002', 'unknown job id ''no_such_job''', 'complete_job: unknown job id');
SELECT throws_ok($$SELECT reactor.complete_job('test_complete', 999999, NULL)$$,
                 'P0002', 'unknown execution id 999999 (job ''test_complete'')', 'complete_job: unknown execution id');
SELECT throws_ok(format($$SELECT reactor.complete_job('test_complete', %s, NULL)$$, :exec_id),
                 '55000', format('execution %s of job ''test_complete'' is already completed', :exec_id),
                 'complete_job: an execution cannot complete twice');
SELECT throws_ok($$SELECT reactor.start_job('test_complete', 'scheduled')$$,
                 '55000', NULL, 'a completed job is not started again by the scheduler');
SELECT throws_ok($$SELECT reactor.start_job('test_complete', 'cron')$$,
                 '22023', 'start_job: trigger_type must be scheduled, manual, retry or dependent, got ''cron''',
                 'start_job: an unknown trigger type is rejected');

INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('other', 't');
SELECT reactor.start_job('other') AS other_exec \gset
SELECT is((SELECT trigger_type FROM reactor.job_executions WHERE id = :other_exec), 'scheduled',
          'start_job''s trigger_type defaults to scheduled');
SELECT throws_ok($$SELECT reactor.start_job('other', 'manual')$$,
                 '55000', 'job ''other'' is already running', 'a running job cannot be started twice');
SELECT throws_ok(format($$SELECT reactor.complete_job('test_complete', %s, NULL)$$, :other_exec),
                 '22023', format('execution %s belongs to job ''other'', not to job ''test_complete''', :other_exec),
                 'complete_job: the execution must belong to the job');
SELECT lives_ok(format($$SELECT reactor.complete_job('other', %s)$$, :other_exec),
                'complete_job without output');
SELECT is((SELECT output FROM reactor.job_executions WHERE id = :other_exec), NULL::jsonb,
          'no output: NULL');

-- A manual re-run of a finished job starts a fresh series of attempts
UPDATE reactor.scheduled_jobs SET error_count = 2, last_error = 'old' WHERE id = 'test_complete';
UPDATE reactor.scheduled_jobs SET status = 'failed' WHERE id = 'test_complete';
SELECT reactor.start_job('test_complete', 'manual') AS rerun \gset
SELECT results_eq(
  format($$SELECT j.status, j.error_count, j.last_error, e.attempt_number, j.result
             FROM reactor.scheduled_jobs j JOIN reactor.job_executions e ON e.job_id = j.id
            WHERE e.id = %s$$, :rerun),
  $$VALUES ('running', 0, NULL::text, 1, NULL::jsonb)$$,
  'manual re-run of a failed job: running, attempt 1, errors and old result cleared');
SELECT is((SELECT count(*)::integer FROM reactor.job_executions WHERE job_id = 'test_complete'), 2,
          'each run has its own execution row');

-- A job in progress: starting clears the previous run's progress
SELECT reactor.update_job_progress('test_complete', 40, 'working') \gset
SELECT reactor.complete_job('test_complete', :rerun, '{"n": 1}') \gset
SELECT reactor.start_job('test_complete', 'manual') AS rerun2 \gset
SELECT results_eq($$SELECT progress_percent, progress_message FROM reactor.scheduled_jobs WHERE id = 'test_complete'$$,
                  $$VALUES (NULL::integer, NULL::text)$$,
                  'start_job clears the progress of the previous run');

-- Recurring jobs go back to pending at their next occurrence
INSERT INTO reactor.scheduled_jobs (id, job_type, frequency_type, frequency_config, error_count, last_error)
VALUES ('daily', 'daily_advisor', 'daily', '{"hour": 20, "minute": 0}', 2, 'earlier failure'),
       ('hourly', 'auto_sync', 'every_n_hours', '{"hours": 2}', 0, NULL),
       ('weekly', 'weekly_generation', 'weekly', '{"day": 5, "hour": 6, "minute": 0}', 0, NULL);
SELECT reactor.start_job('daily', 'retry') AS daily_exec \gset
SELECT is((SELECT attempt_number FROM reactor.job_executions WHERE id = :daily_exec), 3,
          'attempt_number = error_count + 1 (the third attempt after two failures)');
SELECT reactor.complete_job('daily', :daily_exec, '{"sent": true}') \gset
SELECT results_eq(
  $$SELECT status, scheduled_for, error_count, last_error, completed_at IS NOT NULL, result
      FROM reactor.scheduled_jobs WHERE id = 'daily'$$,
  $$VALUES ('pending', reactor.calculate_next_schedule('daily', '{"hour": 20, "minute": 0}', now()),
            0, NULL::text, true, '{"sent": true}'::jsonb)$$,
  'a daily job completes back to pending at its next 20:00, errors cleared');
SELECT ok((SELECT scheduled_for > now() AND scheduled_for <= now() + interval '1 day'
                  AND to_char(scheduled_for AT TIME ZONE 'UTC', 'HH24:MI:SS') = '20:00:00'
             FROM reactor.scheduled_jobs WHERE id = 'daily'),
          'the next daily run is the coming 20:00 UTC');
SELECT is((SELECT status FROM reactor.job_executions WHERE id = :daily_exec), 'completed',
          'its execution is completed');

SELECT reactor.start_job('hourly') AS hourly_exec \gset
SELECT reactor.complete_job('hourly', :hourly_exec, NULL) \gset
SELECT results_eq($$SELECT status, scheduled_for FROM reactor.scheduled_jobs WHERE id = 'hourly'$$,
                  $$VALUES ('pending', now() + interval '2 hours')$$,
                  'an every_n_hours job is pending again N hours after completion');

SELECT reactor.start_job('weekly') AS weekly_exec \gset
SELECT reactor.complete_job('weekly', :weekly_exec, NULL) \gset
SELECT ok((SELECT status = 'pending' AND extract(dow FROM scheduled_for AT TIME ZONE 'UTC') = 5
                  AND to_char(scheduled_for AT TIME ZONE 'UTC', 'HH24:MI:SS') = '06:00:00'
                  AND scheduled_for > now() AND scheduled_for <= now() + interval '7 days'
             FROM reactor.scheduled_jobs WHERE id = 'weekly'),
          'a weekly job is pending again at the coming Friday 06:00');
SELECT is(reactor.get_next_pending_job(), NULL, 'rescheduled jobs are not ready now');

-- Progress only while running; percent validated
INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('p', 't');
SELECT throws_ok($$SELECT reactor.update_job_progress('p', 10, 'x')$$,
                 '55000', 'job ''p'' is pending; progress is reported only while it runs',
                 'update_job_progress on a pending job is an error');
SELECT reactor.start_job('p') AS p_exec \gset
SELECT throws_ok($$SELECT reactor.update_job_progress('p', 101, 'x')$$,
                 '22023', 'update_job_progress: percent must be from 0 to 100, got 101', 'percent above 100');
SELECT throws_ok($$SELECT reactor.update_job_progress('p', -1, 'x')$$,
                 '22023', 'update_job_progress: percent must be from 0 to 100, got -1', 'negative percent');
SELECT throws_ok($$SELECT reactor.update_job_progress('p', NULL, 'x')$$,
                 '22023', 'update_job_progress: percent must be from 0 to 100, got NULL', 'NULL percent');
SELECT throws_ok($$SELECT reactor.update_job_progress('nope', 5, 'x')$$,
                 'P0002', 'unknown job id ''nope''', 'update_job_progress: unknown job id');
SELECT lives_ok($$SELECT reactor.update_job_progress('p', 0, 'starting')$$, '0 is a valid percent');
SELECT lives_ok($$SELECT reactor.update_job_progress('p', 100)$$, '100 is a valid percent; message optional');
SELECT results_eq($$SELECT progress_percent, progress_message FROM reactor.scheduled_jobs WHERE id = 'p'$$,
                  $$VALUES (100, NULL::text)$$,
                  'progress_percent and progress_message are stored (a missing message clears it)');
SELECT reactor.update_job_progress('p', 55, 'half way') \gset
SELECT results_eq($$SELECT progress_percent, progress_message FROM reactor.scheduled_jobs WHERE id = 'p'$$,
                  $$VALUES (55, 'half way')$$, 'a later report replaces the earlier one');

SELECT * FROM finish();
ROLLBACK;
