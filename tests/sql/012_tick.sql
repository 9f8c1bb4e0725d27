-- reactor.tick(): due events (once per job and scheduled_for, again after a retry or a
-- recurrence reschedules), timeouts through fail_job, expiry, the master switch, the
-- returned deadline, and that its scans are index scans. Times are explicit: in one
-- transaction now() stands still.
BEGIN;
SELECT plan(56);

CREATE FUNCTION pg_temp.due_count(job text) RETURNS integer LANGUAGE sql AS $$
  SELECT count(*)::integer FROM reactor.job_events WHERE job_id = job AND kind = 'due'
$$;

SELECT is(reactor.tick(), NULL, 'no jobs: nothing to do, no deadline');

-- Due: once per job and scheduled_for
INSERT INTO reactor.scheduled_jobs (id, job_type, user_id, scheduled_for)
VALUES ('arrived', 'auto_sync', 'u1', now() - interval '5 minutes'),
       ('future', 'auto_sync', 'u1', now() + interval '10 minutes');
SELECT is(reactor.tick(), now() + interval '10 minutes', 'tick returns the next scheduled_for');
SELECT is(pg_temp.due_count('arrived'), 1, 'a pending job whose time has come gets a due event');
SELECT is(pg_temp.due_count('future'), 0, 'a future job does not');
SELECT results_eq(
  $$SELECT kind, source, status, old_status, user_id, job_type, payload ->> 'scheduled_for', payload ->> 'deadline'
      FROM reactor.job_events WHERE job_id = 'arrived' AND kind = 'due'$$,
  $$VALUES ('due', 'scheduled_jobs', 'pending', 'pending', 'u1', 'auto_sync',
            reactor.iso_time(now() - interval '5 minutes'), reactor.iso_time(now() - interval '5 minutes'))$$,
  'the due event: kind due, status and old_status pending, the job''s fields');
SELECT is((SELECT (payload ->> 'id')::bigint FROM reactor.job_events WHERE job_id = 'arrived' AND kind = 'due'),
          (SELECT id FROM reactor.job_events WHERE job_id = 'arrived' AND kind = 'due'), 'its payload id is its row id');
SELECT is((SELECT status FROM reactor.scheduled_jobs WHERE id = 'arrived'), 'pending', 'announcing changes no status');
SELECT is(reactor.tick(), now() + interval '10 minutes', 'a second tick returns the same deadline');
SELECT is(pg_temp.due_count('arrived'), 1, 'and writes no second due event for the same scheduled_for');
SELECT results_eq($$SELECT job_id, scheduled_for FROM reactor.due_announcements$$,
                  $$VALUES ('arrived', now() - interval '5 minutes')$$, 'the announcement is recorded');

-- A new scheduled_for is due again
UPDATE reactor.scheduled_jobs SET scheduled_for = now() - interval '1 minute' WHERE id = 'arrived';
SELECT reactor.tick() \gset
SELECT is(pg_temp.due_count('arrived'), 2, 'moved to another past time: due again, once');
SELECT reactor.tick() \gset
SELECT is(pg_temp.due_count('arrived'), 2, 'and only once');

-- A retry rescheduled by fail_job comes due again
UPDATE reactor.scheduled_jobs SET retry_backoff_seconds = 0 WHERE id = 'arrived';
SELECT reactor.start_job('arrived') AS e \gset
SELECT is((SELECT count(*)::integer FROM reactor.due_announcements), 1, 'the announcement stays while the job is started but not committed elsewhere');
SELECT reactor.tick() \gset
SELECT is((SELECT count(*)::integer FROM reactor.due_announcements), 0, 'tick forgets announcements of jobs no longer pending');
SELECT reactor.fail_job('arrived', :e, 'flaky') \gset
SELECT is((SELECT scheduled_for FROM reactor.scheduled_jobs WHERE id = 'arrived'), now(), 'backoff 0: the retry is due now');
SELECT reactor.tick() \gset
SELECT is(pg_temp.due_count('arrived'), 3, 'the retry gets its due event');
UPDATE reactor.scheduled_jobs SET retry_backoff_seconds = 60 WHERE id = 'arrived';
SELECT reactor.start_job('arrived') AS e \gset
SELECT reactor.fail_job('arrived', :e, 'flaky again') \gset
SELECT is(reactor.tick(), now() + interval '2 minutes', 'a retry with backoff: tick returns the retry time (60 s * 2)');
SELECT is(pg_temp.due_count('arrived'), 3, 'and writes no due event before it');
UPDATE reactor.scheduled_jobs SET scheduled_for = scheduled_for - interval '1 hour' WHERE id = 'arrived';
SELECT reactor.tick() \gset
SELECT is(pg_temp.due_count('arrived'), 4, 'once the retry time has passed it is due');

-- A recurring job rescheduled by complete_job comes due again
INSERT INTO reactor.scheduled_jobs (id, job_type, frequency_type, frequency_config, scheduled_for)
VALUES ('hourly', 'auto_sync', 'every_n_hours', '{"hours": 1}', now() - interval '1 second');
SELECT reactor.tick() \gset
SELECT is(pg_temp.due_count('hourly'), 1, 'the recurring job is due');
SELECT reactor.start_job('hourly') AS e \gset
SELECT reactor.complete_job('hourly', :e, NULL) \gset
SELECT is(reactor.tick(), least(now() + interval '1 hour', now() + interval '10 minutes'),
          'after completing, the next occurrence is among the deadlines');
UPDATE reactor.scheduled_jobs SET scheduled_for = now() - interval '2 seconds' WHERE id = 'hourly';
SELECT reactor.tick() \gset
SELECT is(pg_temp.due_count('hourly'), 2, 'the next occurrence, once arrived, is due again');

-- Disabled jobs are frozen
INSERT INTO reactor.scheduled_jobs (id, job_type, enabled, scheduled_for, expires_at)
VALUES ('frozen', 't', false, now() - interval '1 hour', now() - interval '1 minute');
SELECT reactor.tick() \gset
SELECT results_eq($$SELECT status, (SELECT count(*)::integer FROM reactor.job_events WHERE job_id = 'frozen' AND kind = 'due')
                      FROM reactor.scheduled_jobs WHERE id = 'frozen'$$,
                  $$VALUES ('pending', 0)$$, 'a disabled job is neither due nor expired');

-- Timeouts
INSERT INTO reactor.scheduled_jobs (id, job_type, timeout_seconds, retry_max_attempts, scheduled_for)
VALUES ('slow', 't', 60, 3, now() + interval '1 day');
SELECT reactor.start_job('slow') AS slow_exec \gset
UPDATE reactor.scheduled_jobs SET started_at = now() - interval '61 seconds' WHERE id = 'slow';
UPDATE reactor.job_executions SET started_at = now() - interval '61 seconds' WHERE id = :slow_exec;
SELECT reactor.tick() \gset
SELECT results_eq($$SELECT status, error_count, last_error, scheduled_for FROM reactor.scheduled_jobs WHERE id = 'slow'$$,
                  $$VALUES ('pending', 1, 'timeout', now() + interval '60 seconds')$$,
                  'a running job past its timeout_seconds is failed with ''timeout'' and retried by the rules');
SELECT results_eq(format($$SELECT status, error_message FROM reactor.job_executions WHERE id = %s$$, :slow_exec),
                  $$VALUES ('failed', 'timeout')$$, 'its execution is failed with error timeout');
SELECT results_eq($$SELECT kind, status, old_status, payload ->> 'error' FROM reactor.job_events WHERE job_id = 'slow' ORDER BY id DESC LIMIT 1$$,
                  $$VALUES ('status', 'pending', 'running', 'timeout')$$, 'which is an ordinary status event');
SELECT reactor.tick() \gset
SELECT is((SELECT error_count FROM reactor.scheduled_jobs WHERE id = 'slow'), 1, 'a second tick does not fail it again');

INSERT INTO reactor.scheduled_jobs (id, job_type, retry_max_attempts, scheduled_for) VALUES ('hung', 't', 0, now() + interval '1 day'),
                                                                                           ('busy_ok', 't', 0, now() + interval '1 day');
SELECT reactor.start_job('hung') AS hung_exec \gset
SELECT reactor.start_job('busy_ok') AS ok_exec \gset
UPDATE reactor.scheduled_jobs SET started_at = now() - interval '31 minutes' WHERE id = 'hung';
UPDATE reactor.scheduled_jobs SET started_at = now() - interval '29 minutes' WHERE id = 'busy_ok';
SELECT is(reactor.tick(), least(now() + interval '1 minute', (SELECT started_at FROM reactor.scheduled_jobs WHERE id = 'busy_ok') + interval '1800 seconds'),
          'a running job''s timeout (default: stuck_timeout_seconds) is among the deadlines');
SELECT results_eq($$SELECT id, status, last_error FROM reactor.scheduled_jobs WHERE id IN ('hung', 'busy_ok') ORDER BY id$$,
                  $$VALUES ('busy_ok', 'running', NULL::text), ('hung', 'failed', 'timeout')$$,
                  'without timeout_seconds, stuck_timeout_seconds (1800 s) applies; no retries left: failed');
UPDATE reactor.scheduler_config SET stuck_timeout_seconds = 600;
SELECT reactor.tick() \gset
SELECT is((SELECT status FROM reactor.scheduled_jobs WHERE id = 'busy_ok'), 'failed', 'a shorter stuck_timeout_seconds applies at the next tick');
UPDATE reactor.scheduler_config SET stuck_timeout_seconds = 1800;

-- A job set running by hand, without start_job, still times out
INSERT INTO reactor.scheduled_jobs (id, job_type, status, started_at, timeout_seconds, retry_max_attempts)
VALUES ('manual_run', 't', 'running', now() - interval '2 hours', 60, 0);
SELECT reactor.tick() \gset
SELECT results_eq($$SELECT j.status, e.status, e.error_message, e.trigger_type, e.started_at = j.started_at
                      FROM reactor.scheduled_jobs j JOIN reactor.job_executions e ON e.job_id = j.id WHERE j.id = 'manual_run'$$,
                  $$VALUES ('failed', 'failed', 'timeout', 'manual', true)$$,
                  'a running job without execution gets one, failed with timeout');

-- Expiry
INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for, expires_at)
VALUES ('stale', 't', now() + interval '1 hour', now() - interval '1 second'),
       ('fresh', 't', now() + interval '2 days', now() + interval '3 days');
SELECT reactor.tick() \gset
SELECT results_eq($$SELECT status, completed_at IS NOT NULL FROM reactor.scheduled_jobs WHERE id = 'stale'$$,
                  $$VALUES ('expired', true)$$, 'a pending job past expires_at is expired');
SELECT results_eq($$SELECT kind, status, old_status FROM reactor.job_events WHERE job_id = 'stale' ORDER BY id DESC LIMIT 1$$,
                  $$VALUES ('status', 'expired', 'pending')$$, 'with a status event');
SELECT is((SELECT status FROM reactor.scheduled_jobs WHERE id = 'fresh'), 'pending', 'one before its expires_at is not');
SELECT is(pg_temp.due_count('stale'), 0, 'an expired job is not announced as due');
INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for, expires_at)
VALUES ('late_expiry', 't', now() - interval '1 minute', now() - interval '30 seconds');
SELECT reactor.tick() \gset
SELECT results_eq($$SELECT status, (SELECT count(*)::integer FROM reactor.job_events WHERE job_id = 'late_expiry' AND kind = 'due')
                      FROM reactor.scheduled_jobs WHERE id = 'late_expiry'$$,
                  $$VALUES ('expired', 0)$$, 'a job whose time and expiry both passed is expired, not announced');

-- The pending TTL (alone with the future job, for a clear deadline)
DELETE FROM reactor.scheduled_jobs WHERE id <> 'future';
UPDATE reactor.scheduler_config SET pending_ttl_seconds = 3600;
INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for)
VALUES ('ttl_old', 't', now() - interval '2 hours'), ('ttl_new', 't', now() - interval '30 minutes');
SELECT reactor.tick() AS next_deadline \gset
SELECT results_eq($$SELECT id, status FROM reactor.scheduled_jobs WHERE id LIKE 'ttl_%' ORDER BY id$$,
                  $$VALUES ('ttl_new', 'pending'), ('ttl_old', 'expired')$$,
                  'pending_ttl_seconds: pending an hour past scheduled_for expires it; 30 minutes does not');
SELECT is(pg_temp.due_count('ttl_new'), 1, 'the job within the TTL is due');
SELECT is(:'next_deadline'::timestamptz, now() + interval '10 minutes',
          'the earliest deadline wins (future job in 10 min; ttl_new expires in 30 min)');
DELETE FROM reactor.scheduled_jobs WHERE id = 'future';
SELECT is(reactor.tick(), now() + interval '30 minutes', 'the TTL expiry is a deadline: ttl_new in 30 minutes');
UPDATE reactor.scheduler_config SET pending_ttl_seconds = NULL;

-- The master switch
INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for, expires_at)
VALUES ('held', 't', now() - interval '1 minute', NULL), ('held_exp', 't', now() + interval '1 hour', now() - interval '1 minute');
INSERT INTO reactor.scheduled_jobs (id, job_type, status, started_at, timeout_seconds)
VALUES ('held_run', 't', 'running', now() - interval '1 hour', 60);
UPDATE reactor.scheduler_config SET enabled = false;
SELECT is(reactor.tick(), NULL, 'scheduler disabled: tick returns NULL');
SELECT results_eq($$SELECT id, status FROM reactor.scheduled_jobs WHERE id LIKE 'held%' ORDER BY id$$,
                  $$VALUES ('held', 'pending'), ('held_exp', 'pending'), ('held_run', 'running')$$,
                  'and changes nothing: no expiry, no timeout');
SELECT is(pg_temp.due_count('held'), 0, 'and announces nothing');
UPDATE reactor.scheduler_config SET enabled = true;
SELECT reactor.tick() \gset
SELECT results_eq($$SELECT id, status FROM reactor.scheduled_jobs WHERE id LIKE 'held%' ORDER BY id$$,
                  $$VALUES ('held', 'pending'), ('held_exp', 'expired'), ('held_run', 'pending')$$,
                  'enabled again: the next tick catches up');
SELECT is(pg_temp.due_count('held'), 1, 'including the due event');

-- The deadline: every kind, the earliest wins
DELETE FROM reactor.scheduled_jobs;
SELECT is(reactor.tick(), NULL, 'no jobs: NULL');
INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for) VALUES ('d1', 't', '2099-01-01 00:00+00');
SELECT is(reactor.tick(), '2099-01-01 00:00+00'::timestamptz, 'one future job: its scheduled_for');
INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for, expires_at) VALUES ('d2', 't', '2099-01-01 00:00+00', '2098-01-01 00:00+00');
SELECT is(reactor.tick(), '2098-01-01 00:00+00'::timestamptz, 'an earlier expires_at wins');
INSERT INTO reactor.scheduled_jobs (id, job_type, status, started_at, timeout_seconds) VALUES ('d3', 't', 'running', now(), 5);
SELECT is(reactor.tick(), now() + interval '5 seconds', 'a running job''s timeout wins when earlier');
INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for, enabled) VALUES ('d4', 't', now() + interval '1 second', false);
SELECT is(reactor.tick(), now() + interval '5 seconds', 'a disabled job is no deadline');

-- Who may tick: the reactor's role, not everybody
CREATE ROLE reactor_test_ticker;
CREATE ROLE reactor_test_other;
GRANT USAGE ON SCHEMA reactor TO reactor_test_ticker, reactor_test_other;
GRANT EXECUTE ON FUNCTION reactor.tick() TO reactor_test_ticker;
SET LOCAL ROLE reactor_test_other;
SELECT throws_ok($$SELECT reactor.tick()$$, '42501', NULL, 'EXECUTE on tick is not granted to PUBLIC');
RESET ROLE;
SET LOCAL ROLE reactor_test_ticker;
SELECT lives_ok($$SELECT reactor.tick()$$, 'a role granted EXECUTE ticks without any table privilege');
RESET ROLE;

-- The scans are index scans
CREATE FUNCTION pg_temp.plan_of(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  p json;
BEGIN
  EXECUTE 'EXPLAIN (FORMAT JSON) ' || query INTO p;
  RETURN p::text;
END
$$;
INSERT INTO reactor.scheduled_jobs (id, job_type, status, scheduled_for)
SELECT 'old_' || i, 't', 'completed', now() - i * interval '1 minute' FROM generate_series(1, 20000) AS i;
ANALYZE reactor.scheduled_jobs;
SELECT ok(NOT jsonb_path_exists(plan, '$.** ? (@."Node Type" == "Seq Scan" && @."Relation Name" == "scheduled_jobs")')
          AND jsonb_path_exists(plan, '$.** ? (@."Node Type" like_regex "Index" && @."Relation Name" == "scheduled_jobs")'),
          'the due scan is an index scan, not a read of the finished jobs')
  FROM (SELECT pg_temp.plan_of($$
          SELECT s.* FROM reactor.scheduled_jobs s
           WHERE s.status = 'pending' AND s.enabled AND s.scheduled_for <= now()
             AND NOT EXISTS (SELECT 1 FROM reactor.due_announcements d
                              WHERE d.job_id = s.id AND d.scheduled_for = s.scheduled_for)
           ORDER BY s.scheduled_for, s.id$$)::jsonb AS plan) p;
SELECT ok(pg_temp.plan_of($$SELECT min(s.scheduled_for) FROM reactor.scheduled_jobs s
                             WHERE s.status = 'pending' AND s.enabled AND s.scheduled_for > now()$$)
            LIKE '%"Index Name": "idx_scheduled_jobs_pending_due"%',
          'the next due time is read from the same index');
SELECT ok(pg_temp.plan_of($$SELECT min(s.expires_at) FROM reactor.scheduled_jobs s
                             WHERE s.status = 'pending' AND s.enabled AND s.expires_at > now()$$)
            LIKE '%"Index Name": "idx_scheduled_jobs_pending_expiry"%',
          'the next expiry is read from idx_scheduled_jobs_pending_expiry');
SELECT ok(pg_temp.plan_of($$SELECT s.* FROM reactor.scheduled_jobs s WHERE s.status = 'running'$$)
            LIKE '%"Index Name": "idx_scheduled_jobs_running"%',
          'running jobs are read from idx_scheduled_jobs_running');

SELECT * FROM finish();
ROLLBACK;
