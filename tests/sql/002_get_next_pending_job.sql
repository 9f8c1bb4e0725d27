-- reactor.get_next_pending_job(): the seed's documented cases (priority ordering, future
-- jobs skipped) and the conditions under which it returns NULL.
BEGIN;
SELECT plan(17);

SELECT is(reactor.get_next_pending_job(), NULL, 'no jobs: NULL');

-- The seed's "priority ordering" test
INSERT INTO reactor.scheduled_jobs (id, job_type, frequency_type, frequency_config, priority, status, enabled)
VALUES ('test_job_1', 'weekly_generation', 'once', '{}', 'low', 'pending', true),
       ('test_job_2', 'auto_sync', 'once', '{}', 'high', 'pending', true),
       ('test_job_3', 'daily_advisor', 'once', '{}', 'critical', 'pending', true);
SELECT is(reactor.get_next_pending_job(), 'test_job_3', 'critical comes before high and low');
DELETE FROM reactor.scheduled_jobs WHERE id LIKE 'test_job_%';

-- The seed's "job queue processing" test: a future critical job is not ready
INSERT INTO reactor.scheduled_jobs (id, job_type, frequency_type, frequency_config, priority, status, scheduled_for)
VALUES ('job_low', 'auto_sync', 'once', '{}', 'low', 'pending', now()),
       ('job_medium', 'weekly_generation', 'once', '{}', 'medium', 'pending', now()),
       ('job_high', 'daily_advisor', 'once', '{}', 'high', 'pending', now()),
       ('job_future', 'weekly_trends', 'once', '{}', 'critical', 'pending', now() + interval '1 hour');
SELECT is(reactor.get_next_pending_job(), 'job_high', 'the highest priority that is due wins; a future job is skipped');

UPDATE reactor.scheduled_jobs SET status = 'completed' WHERE id = 'job_high';
SELECT is(reactor.get_next_pending_job(), 'job_medium', 'medium comes before low');
UPDATE reactor.scheduled_jobs SET status = 'completed' WHERE id = 'job_medium';
SELECT is(reactor.get_next_pending_job(), 'job_low', 'then low');
UPDATE reactor.scheduled_jobs SET status = 'completed' WHERE id = 'job_low';
SELECT is(reactor.get_next_pending_job(), NULL, 'only a future job left: NULL');
UPDATE reactor.scheduled_jobs SET scheduled_for = now() - interval '1 second' WHERE id = 'job_future';
SELECT is(reactor.get_next_pending_job(), 'job_future', 'once its time has come it is returned');
DELETE FROM reactor.scheduled_jobs;

-- Same priority: the longest waiting first
INSERT INTO reactor.scheduled_jobs (id, job_type, priority, scheduled_for)
VALUES ('newer', 't', 'high', now() - interval '1 minute'),
       ('older', 't', 'high', now() - interval '2 minutes'),
       ('low_but_oldest', 't', 'low', now() - interval '1 day');
SELECT is(reactor.get_next_pending_job(), 'older', 'within a priority, the earliest scheduled_for first');

-- Disabled jobs and jobs in other states are never returned
UPDATE reactor.scheduled_jobs SET enabled = false WHERE id IN ('older', 'newer');
SELECT is(reactor.get_next_pending_job(), 'low_but_oldest', 'disabled jobs are skipped');
UPDATE reactor.scheduled_jobs SET enabled = true, status = 'failed' WHERE id IN ('older', 'newer');
SELECT is(reactor.get_next_pending_job(), 'low_but_oldest', 'jobs that are not pending are skipped');

-- An expired job (past expires_at, or past the pending TTL) is not handed out
UPDATE reactor.scheduled_jobs SET expires_at = now() - interval '1 second' WHERE id = 'low_but_oldest';
SELECT is(reactor.get_next_pending_job(), NULL, 'a job past expires_at is skipped');
UPDATE reactor.scheduled_jobs SET expires_at = NULL WHERE id = 'low_but_oldest';
UPDATE reactor.scheduler_config SET pending_ttl_seconds = 3600;
SELECT is(reactor.get_next_pending_job(), NULL, 'a job pending longer than pending_ttl_seconds after its time is skipped');
UPDATE reactor.scheduler_config SET pending_ttl_seconds = 2 * 86400;
SELECT is(reactor.get_next_pending_job(), 'low_but_oldest', 'within pending_ttl_seconds it is returned');
UPDATE reactor.scheduler_config SET pending_ttl_seconds = NULL;

-- The scheduler's master switch
UPDATE reactor.scheduler_config SET enabled = false;
SELECT is(reactor.get_next_pending_job(), NULL, 'scheduler_config.enabled = false: NULL');
UPDATE reactor.scheduler_config SET enabled = true;

-- max_concurrent_jobs
INSERT INTO reactor.scheduled_jobs (id, job_type, status, started_at)
SELECT 'running_' || i, 't', 'running', now() FROM generate_series(1, 4) AS i;
SELECT is(reactor.get_next_pending_job(), 'low_but_oldest', '4 running of at most 5: a job is returned');
INSERT INTO reactor.scheduled_jobs (id, job_type, status, started_at) VALUES ('running_5', 't', 'running', now());
SELECT is(reactor.get_next_pending_job(), NULL, '5 running of at most 5: NULL');
UPDATE reactor.scheduler_config SET max_concurrent_jobs = 6;
SELECT is(reactor.get_next_pending_job(), 'low_but_oldest', 'raising max_concurrent_jobs frees a slot');

SELECT * FROM finish();
ROLLBACK;
