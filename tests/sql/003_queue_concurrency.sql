-- Two and three sessions calling reactor.get_next_pending_job() at once get different jobs
-- (FOR UPDATE SKIP LOCKED), without waiting for each other; and the queue index serves
-- the queue scan. The other sessions are dblink connections; the jobs are committed so
-- that they can see them.
SELECT plan(11);

CREATE EXTENSION IF NOT EXISTS dblink;
SELECT format('host=%s port=%s dbname=%s user=%s',
              split_part(current_setting('unix_socket_directories'), ',', 1),
              current_setting('port'), current_database(), current_user) AS conninfo \gset
SELECT dblink_connect('w1', :'conninfo') \gset
SELECT dblink_connect('w2', :'conninfo') \gset

INSERT INTO reactor.scheduled_jobs (id, job_type, priority, scheduled_for)
VALUES ('c1', 't', 'critical', now() - interval '3 minutes'),
       ('c2', 't', 'high', now() - interval '3 minutes'),
       ('c3', 't', 'medium', now() - interval '3 minutes');

-- Session w1 takes a job and keeps its transaction (and the row lock) open.
SELECT dblink_exec('w1', 'BEGIN') \gset
SELECT job AS w1_job FROM dblink('w1', 'SELECT reactor.get_next_pending_job()') AS t(job text) \gset
SELECT is(:'w1_job'::text, 'c1', 'the first session gets the critical job');

-- This session must not wait for w1's lock: a wait would hit the lock timeout.
SET lock_timeout = '2s';
BEGIN;
SELECT reactor.get_next_pending_job() AS local_job \gset
SELECT is(:'local_job'::text, 'c2', 'a second session at the same time skips the locked job and gets the next one');
SELECT isnt(:'local_job'::text, :'w1_job'::text, 'the two sessions got different jobs');

SELECT dblink_exec('w2', 'BEGIN') \gset
SELECT job AS w2_job FROM dblink('w2', 'SELECT reactor.get_next_pending_job()') AS t(job text) \gset
SELECT is(:'w2_job'::text, 'c3', 'a third session gets the third job');
SELECT dblink_connect('w3', :'conninfo') \gset
SELECT is((SELECT job FROM dblink('w3', 'SELECT reactor.get_next_pending_job()') AS t(job text)),
          NULL, 'with every ready job locked by another session, a fourth session gets NULL');
SELECT dblink_disconnect('w3') \gset

-- Taken jobs are started by their session; starting is what makes them leave the queue.
SELECT lives_ok(format('SELECT reactor.start_job(%L, %L)', :'local_job', 'scheduled'),
                'the second session starts its job');
COMMIT;
SELECT is((SELECT status FROM reactor.scheduled_jobs WHERE id = 'c2'), 'running',
          'the started job is running after commit');

-- w1 gives its job back without starting it: the lock goes with the transaction.
SELECT dblink_exec('w1', 'ROLLBACK') \gset
SELECT dblink_exec('w2', 'ROLLBACK') \gset
SELECT is(reactor.get_next_pending_job(), 'c1', 'a job taken but not started is handed out again');

-- While w1 holds c1 locked, a second worker may still start a different job.
SELECT dblink_exec('w1', 'BEGIN') \gset
SELECT is((SELECT job FROM dblink('w1', 'SELECT reactor.get_next_pending_job()') AS t(job text)),
          'c1', 'w1 takes c1 again');
SELECT is(reactor.get_next_pending_job(), 'c3', 'this session gets c3 (c2 is running, c1 is locked)');
SELECT dblink_exec('w1', 'COMMIT') \gset
RESET lock_timeout;

-- The queue scan uses the partial priority index (the seed's performance check).
INSERT INTO reactor.scheduled_jobs (id, job_type, priority, status, scheduled_for)
SELECT 'perf_job_' || i, 'auto_sync', (ARRAY['low', 'medium', 'high', 'critical'])[1 + i % 4],
       CASE WHEN i % 10 = 0 THEN 'pending' ELSE 'completed' END, now() + (i % 100) * interval '1 minute'
  FROM generate_series(1, 10000) AS i;
ANALYZE reactor.scheduled_jobs;
CREATE FUNCTION pg_temp.plan_of(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  p json;
BEGIN
  EXECUTE 'EXPLAIN (FORMAT JSON) ' || query INTO p;
  RETURN p::text;
END
$$;
SELECT ok(pg_temp.plan_of($$
            SELECT s.id FROM reactor.scheduled_jobs s
             WHERE s.status = 'pending' AND s.enabled AND s.scheduled_for <= now()
             ORDER BY reactor.priority_rank(s.priority), s.scheduled_for, s.id
             LIMIT 1 FOR UPDATE OF s SKIP LOCKED$$) LIKE '%"Index Name": "idx_scheduled_jobs_status_priority"%',
          'the queue scan of get_next_pending_job uses idx_scheduled_jobs_status_priority');
SELECT * FROM finish();
SELECT dblink_disconnect('w1') \gset
SELECT dblink_disconnect('w2') \gset
