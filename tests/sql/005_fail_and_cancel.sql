-- fail_job: the seed's retry example (failures 1, 2, 3 retry after 60, 120, 240 s; the 4th
-- is final) and its variants; cancel_job.
BEGIN;
SELECT plan(37);

-- The seed's example: retry_on_failure, 3 attempts, 60 s backoff
INSERT INTO reactor.scheduled_jobs (id, job_type, frequency_type, frequency_config, status,
                                    retry_on_failure, retry_max_attempts, retry_backoff_seconds)
VALUES ('test_fail', 'auto_sync', 'once', '{}', 'pending', true, 3, 60);

SELECT reactor.start_job('test_fail', 'scheduled') AS exec1 \gset
SELECT lives_ok(format($$SELECT reactor.fail_job('test_fail', %s, 'Test error 1')$$, :exec1), 'failure 1 recorded');
SELECT results_eq($$SELECT status, error_count, last_error, scheduled_for FROM reactor.scheduled_jobs WHERE id = 'test_fail'$$,
                  $$VALUES ('pending', 1, 'Test error 1', now() + interval '60 seconds')$$,
                  'failure 1: pending again at now() + 60 s, error_count 1');
SELECT results_eq(format($$SELECT status, error_message, attempt_number, completed_at IS NOT NULL, duration_ms >= 0
                             FROM reactor.job_executions WHERE id = %s$$, :exec1),
                  $$VALUES ('failed', 'Test error 1', 1, true, true)$$,
                  'the failed execution keeps its error, attempt and duration');

SELECT reactor.start_job('test_fail', 'retry') AS exec2 \gset
SELECT is((SELECT attempt_number FROM reactor.job_executions WHERE id = :exec2), 2, 'the retry is attempt 2');
SELECT reactor.fail_job('test_fail', :exec2, 'Test error 2') \gset
SELECT results_eq($$SELECT status, error_count, last_error, scheduled_for FROM reactor.scheduled_jobs WHERE id = 'test_fail'$$,
                  $$VALUES ('pending', 2, 'Test error 2', now() + interval '120 seconds')$$,
                  'failure 2: pending again at now() + 120 s, error_count 2');

SELECT reactor.start_job('test_fail', 'retry') AS exec3 \gset
SELECT is((SELECT attempt_number FROM reactor.job_executions WHERE id = :exec3), 3, 'then attempt 3');
SELECT reactor.fail_job('test_fail', :exec3, 'Test error 3') \gset
SELECT results_eq($$SELECT status, error_count, last_error, scheduled_for FROM reactor.scheduled_jobs WHERE id = 'test_fail'$$,
                  $$VALUES ('pending', 3, 'Test error 3', now() + interval '240 seconds')$$,
                  'failure 3: pending again at now() + 240 s, error_count 3');
SELECT is(reactor.get_next_pending_job(), NULL, 'a job waiting for its retry is not handed out early');

SELECT reactor.start_job('test_fail', 'retry') AS exec4 \gset
SELECT is((SELECT attempt_number FROM reactor.job_executions WHERE id = :exec4), 4, 'then attempt 4');
SELECT reactor.fail_job('test_fail', :exec4, 'Test error 4') \gset
SELECT results_eq($$SELECT status, error_count, last_error, completed_at IS NOT NULL, scheduled_for
                      FROM reactor.scheduled_jobs WHERE id = 'test_fail'$$,
                  $$VALUES ('failed', 4, 'Test error 4', true, now() + interval '240 seconds')$$,
                  'failure 4: the job is failed for good (scheduled_for untouched)');
SELECT results_eq($$SELECT attempt_number, status, error_message FROM reactor.job_executions
                     WHERE job_id = 'test_fail' ORDER BY id$$,
                  $$VALUES (1, 'failed', 'Test error 1'), (2, 'failed', 'Test error 2'),
                           (3, 'failed', 'Test error 3'), (4, 'failed', 'Test error 4')$$,
                  'four executions, attempts 1 to 4, each with its error');
SELECT throws_ok($$SELECT reactor.start_job('test_fail', 'retry')$$, '55000', NULL,
                 'a failed job is not retried any more');

-- No retry
INSERT INTO reactor.scheduled_jobs (id, job_type, retry_on_failure) VALUES ('no_retry', 't', false);
SELECT reactor.start_job('no_retry') AS e \gset
SELECT reactor.fail_job('no_retry', :e, 'boom') \gset
SELECT results_eq($$SELECT status, error_count, last_error FROM reactor.scheduled_jobs WHERE id = 'no_retry'$$,
                  $$VALUES ('failed', 1, 'boom')$$, 'retry_on_failure = false: the first failure is final');

INSERT INTO reactor.scheduled_jobs (id, job_type, retry_max_attempts) VALUES ('zero', 't', 0);
SELECT reactor.start_job('zero') AS e \gset
SELECT reactor.fail_job('zero', :e, 'boom') \gset
SELECT is((SELECT status FROM reactor.scheduled_jobs WHERE id = 'zero'), 'failed',
          'retry_max_attempts = 0: the first failure is final');

-- Another base and limit: 10 s, one retry
INSERT INTO reactor.scheduled_jobs (id, job_type, retry_max_attempts, retry_backoff_seconds) VALUES ('one', 't', 1, 10);
SELECT reactor.start_job('one') AS e \gset
SELECT reactor.fail_job('one', :e, 'first') \gset
SELECT results_eq($$SELECT status, scheduled_for FROM reactor.scheduled_jobs WHERE id = 'one'$$,
                  $$VALUES ('pending', now() + interval '10 seconds')$$, 'backoff base 10 s: first retry after 10 s');
SELECT reactor.start_job('one') AS e \gset
SELECT reactor.fail_job('one', :e, 'second') \gset
SELECT is((SELECT status FROM reactor.scheduled_jobs WHERE id = 'one'), 'failed',
          'retry_max_attempts = 1: the second failure is final');

INSERT INTO reactor.scheduled_jobs (id, job_type, retry_backoff_seconds) VALUES ('nobackoff', 't', 0);
SELECT reactor.start_job('nobackoff') AS e \gset
SELECT reactor.fail_job('nobackoff', :e, 'x') \gset
SELECT results_eq($$SELECT status, scheduled_for FROM reactor.scheduled_jobs WHERE id = 'nobackoff'$$,
                  $$VALUES ('pending', now())$$, 'backoff 0: the retry is due at once');

-- The longest allowed backoff stays a valid time
INSERT INTO reactor.scheduled_jobs (id, job_type, retry_max_attempts, retry_backoff_seconds, error_count)
VALUES ('longest', 't', 20, 86400, 19);
SELECT reactor.start_job('longest') AS e \gset
SELECT reactor.fail_job('longest', :e, 'x') \gset
SELECT results_eq($$SELECT status, scheduled_for FROM reactor.scheduled_jobs WHERE id = 'longest'$$,
                  $$VALUES ('pending', now() + 524288 * interval '1 day')$$,
                  'the 20th failure of a 1-day backoff retries after 2^19 days');

-- A recurring job that runs out of retries is failed too (the seed's rule)
INSERT INTO reactor.scheduled_jobs (id, job_type, frequency_type, frequency_config, retry_max_attempts)
VALUES ('recurring', 't', 'daily', '{"hour": 1}', 0);
SELECT reactor.start_job('recurring') AS e \gset
SELECT reactor.fail_job('recurring', :e, 'x') \gset
SELECT is((SELECT status FROM reactor.scheduled_jobs WHERE id = 'recurring'), 'failed',
          'a recurring job without retries left is failed');

-- fail_job errors
INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('f', 't');
SELECT reactor.start_job('f') AS f_exec \gset
SELECT throws_ok(format($$SELECT reactor.fail_job('nope', %s, 'x')$$, :f_exec),
                 'P0002', 'unknown job id ''nope''', 'fail_job: unknown job id');
SELECT throws_ok($$SELECT reactor.fail_job('f', -5, 'x')$$,
                 'P0002', 'unknown execution id -5 (job ''f'')', 'fail_job: unknown execution id');
SELECT throws_ok(format($$SELECT reactor.fail_job('f', %s, 'x')$$, :exec1),
                 '22023', NULL, 'fail_job: the execution must belong to the job');
SELECT reactor.fail_job('f', :f_exec, 'x') \gset
SELECT throws_ok(format($$SELECT reactor.fail_job('f', %s, 'again')$$, :f_exec),
                 '55000', format('execution %s of job ''f'' is already failed', :f_exec),
                 'fail_job: an execution fails only once');

-- cancel_job
INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('c0_pending', 't'), ('c_running', 't'), ('c_done', 't');
SELECT is(reactor.cancel_job('c0_pending'), true, 'cancelling a pending job returns true');
SELECT results_eq($$SELECT status, completed_at IS NOT NULL FROM reactor.scheduled_jobs WHERE id = 'c0_pending'$$,
                  $$VALUES ('cancelled', true)$$, 'the pending job is cancelled');
SELECT is(reactor.get_next_pending_job(), 'c_done', 'a cancelled job is not handed out (c0_pending would come first)');

SELECT reactor.start_job('c_running') AS c_exec \gset
SELECT pg_sleep(0.02) \gset
SELECT is(reactor.cancel_job('c_running'), true, 'cancelling a running job returns true');
SELECT results_eq(format($$SELECT j.status, e.status, e.completed_at = j.completed_at, e.duration_ms >= 20
                             FROM reactor.scheduled_jobs j JOIN reactor.job_executions e ON e.job_id = j.id
                            WHERE e.id = %s$$, :c_exec),
                  $$VALUES ('cancelled', 'cancelled', true, true)$$,
                  'the running job and its execution are cancelled, with the execution''s duration');
SELECT throws_ok(format($$SELECT reactor.complete_job('c_running', %s, '{}')$$, :c_exec),
                 '55000', format('execution %s of job ''c_running'' is already cancelled', :c_exec),
                 'a worker finishing a cancelled job gets an error; the cancellation stands');
SELECT throws_ok(format($$SELECT reactor.fail_job('c_running', %s, 'x')$$, :c_exec),
                 '55000', NULL, 'failing a cancelled execution is an error too');
SELECT is(reactor.cancel_job('c_running'), false, 'cancelling a cancelled job returns false');

SELECT reactor.start_job('c_done') AS d_exec \gset
SELECT reactor.complete_job('c_done', :d_exec, NULL) \gset
SELECT is(reactor.cancel_job('c_done'), false, 'cancelling a completed job returns false');
SELECT is((SELECT status FROM reactor.scheduled_jobs WHERE id = 'c_done'), 'completed', 'and leaves it completed');
SELECT is(reactor.cancel_job('test_fail'), false, 'cancelling a failed job returns false');
SELECT throws_ok($$SELECT reactor.cancel_job('nope')$$, 'P0002', 'unknown job id ''nope''', 'cancel_job: unknown job id');

-- A cancelled job can be re-run by hand
SELECT lives_ok($$SELECT reactor.start_job('c0_pending', 'manual')$$, 'a cancelled job can be started manually');
SELECT is((SELECT status FROM reactor.scheduled_jobs WHERE id = 'c0_pending'), 'running', 'it is running again');

SELECT * FROM finish();
ROLLBACK;
