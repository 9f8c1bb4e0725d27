-- Migration 004: tick() reads what is due (reactor.due_queue, kept by a trigger) and what
-- changed (announcements flagged when their job leaves 'pending'); a backlog is announced
-- in time-bounded slices, each answered with a past deadline ("more is due"); due events
-- are written under the job's row lock (FOR SHARE), so a worker's change of the job waits
-- for them and a job a worker holds is skipped. Not in one transaction: a dblink session
-- plays the worker, and each tick has its own now().
SELECT plan(29);

CREATE EXTENSION IF NOT EXISTS dblink;
SELECT format('host=%s port=%s dbname=%s user=%s',
              split_part(current_setting('unix_socket_directories'), ',', 1),
              current_setting('port'), current_database(), current_user) AS conninfo \gset
SELECT dblink_connect('worker', :'conninfo') \gset

CREATE FUNCTION due_count(job text) RETURNS integer LANGUAGE sql AS $$
  SELECT count(*)::integer FROM reactor.job_events WHERE job_id = job AND kind = 'due'
$$;

-- The queue
INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for)
VALUES ('q_past', 't', now() - interval '1 minute'), ('q_future', 't', now() + interval '1 hour');
INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for, enabled)
VALUES ('q_off', 't', now() - interval '1 minute', false);
SELECT results_eq($$SELECT job_id FROM reactor.due_queue ORDER BY scheduled_for$$,
                  $$VALUES ('q_past'), ('q_future')$$, 'pending enabled jobs are queued on insert, a disabled one is not');
SELECT reactor.tick() \gset
SELECT results_eq($$SELECT job_id FROM reactor.due_queue$$, $$VALUES ('q_future')$$,
                  'an announced job leaves the queue; a future one stays');
SELECT is(due_count('q_past'), 1, 'and it was announced');
UPDATE reactor.scheduled_jobs SET enabled = false WHERE id = 'q_past';
UPDATE reactor.scheduled_jobs SET enabled = true WHERE id = 'q_past';
SELECT reactor.tick() \gset
SELECT is(due_count('q_past'), 1, 'disabled and enabled again with the same scheduled_for: not announced again');
UPDATE reactor.scheduled_jobs SET enabled = true WHERE id = 'q_off';
SELECT reactor.tick() \gset
SELECT is(due_count('q_off'), 1, 'a job enabled after its time is announced');

-- Clean-up driven by the status change
SELECT reactor.start_job('q_past') AS e \gset
SELECT results_eq($$SELECT job_id, left_pending FROM reactor.due_announcements WHERE job_id = 'q_past'$$,
                  $$VALUES ('q_past', true)$$, 'starting an announced job flags its announcement');
SELECT reactor.tick() \gset
SELECT is((SELECT count(*)::integer FROM reactor.due_announcements WHERE job_id = 'q_past'), 0,
          'the next tick deletes the flagged announcement');
UPDATE reactor.scheduled_jobs SET retry_backoff_seconds = 0 WHERE id = 'q_past';
SELECT reactor.fail_job('q_past', :e, 'flaky') \gset
SELECT is((SELECT count(*)::integer FROM reactor.due_queue WHERE job_id = 'q_past'), 1, 'a retry is queued again');
SELECT reactor.tick() \gset
SELECT is(due_count('q_past'), 2, 'and announced');
DELETE FROM reactor.scheduled_jobs WHERE id IN ('q_past', 'q_off');
SELECT is((SELECT count(*)::integer FROM reactor.due_announcements WHERE job_id IN ('q_past', 'q_off'))
          + (SELECT count(*)::integer FROM reactor.due_queue WHERE job_id IN ('q_past', 'q_off')), 0,
          'deleting jobs deletes their queue and announcement rows');

-- Slices
SELECT is(reactor.tick_budget_ms(), 40, 'the budget is 40 ms unless reactor.tick_budget_ms is set');
SET reactor.tick_budget_ms = 'soon';
SELECT throws_ok($$SELECT reactor.tick()$$, '22023', NULL, 'a budget that is not a number of milliseconds is an error');
RESET reactor.tick_budget_ms;
SELECT dblink_exec('worker', 'SET reactor.tick_budget_ms = 1') \gset
INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for)
SELECT 'slice_' || g, 't', now() - interval '1 minute' + g * interval '1 ms' FROM generate_series(1, 400) g;
-- Each tick in the worker session: a transaction of its own, with its own now().
CREATE TABLE answers (n serial, answer timestamptz, at timestamptz);
CREATE FUNCTION tick_in_worker() RETURNS void LANGUAGE sql AS $$
  INSERT INTO answers (answer, at)
  SELECT t.answer, t.at FROM dblink('worker', 'SELECT reactor.tick(), now()') AS t(answer timestamptz, at timestamptz)
$$;
SELECT tick_in_worker() \gset
SELECT ok((SELECT answer <= at FROM answers WHERE n = 1), 'a backlog bigger than the budget: the answer is in the past');
SELECT ok((SELECT count(*) FROM reactor.job_events WHERE kind = 'due' AND job_id LIKE 'slice\_%') BETWEEN 1 AND 399,
          'after announcing part of it');
DO $$
BEGIN
  FOR i IN 1 .. 1000 LOOP
    EXIT WHEN (SELECT answer > at FROM answers ORDER BY n DESC LIMIT 1);
    PERFORM tick_in_worker();
  END LOOP;
END
$$;
SELECT dblink_exec('worker', 'RESET reactor.tick_budget_ms') \gset
SELECT is((SELECT count(*)::integer FROM reactor.job_events WHERE kind = 'due' AND job_id LIKE 'slice\_%'), 400,
          'ticking again until the answer is ahead announces every job of the backlog');
SELECT is((SELECT count(DISTINCT job_id)::integer FROM reactor.job_events WHERE kind = 'due' AND job_id LIKE 'slice\_%'), 400,
          'each once');
SELECT ok((SELECT count(*) FROM answers) > 2, 'in several slices');
SELECT ok((SELECT bool_and(a.id < b.id) FROM reactor.job_events a JOIN reactor.job_events b
            ON a.kind = 'due' AND b.kind = 'due' AND a.job_id LIKE 'slice\_%' AND b.job_id LIKE 'slice\_%'
           AND (a.payload ->> 'scheduled_for')::timestamptz < (b.payload ->> 'scheduled_for')::timestamptz),
          'in scheduled_for order');
SELECT ok(reactor.tick() > now(), 'then the answer is the next deadline ahead');

-- A job a worker holds is skipped, and retried a second later
INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for) VALUES ('held', 't', now() - interval '1 second');
SELECT dblink_exec('worker', 'BEGIN') \gset
SELECT is((SELECT id FROM dblink('worker', $q$SELECT id FROM reactor.scheduled_jobs WHERE id = 'held' FOR UPDATE$q$) AS t(id text)),
          'held', 'the worker locks the due job (as get_next_pending_job does)');
SELECT ok(reactor.tick() BETWEEN clock_timestamp() + interval '500 ms' AND clock_timestamp() + interval '1500 ms',
          'tick skips it and answers a second from now');
SELECT is(due_count('held'), 0, 'without a due event');
SELECT * FROM dblink('worker', $q$SELECT reactor.start_job('held')$q$) AS t(e integer) \gset
SELECT dblink_exec('worker', 'COMMIT') \gset
SELECT reactor.tick() \gset
SELECT is(due_count('held'), 0, 'once the worker has started it, it needs none');

-- A worker's change waits for the due event of the tick that holds the job
INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for) VALUES ('order_me', 't', now() - interval '1 second');
BEGIN;
SELECT reactor.tick() \gset
SELECT dblink_send_query('worker', $q$SELECT reactor.start_job('order_me')$q$) \gset
SELECT pg_sleep(0.3) \gset
SELECT is(dblink_is_busy('worker'), 1, 'start_job waits while the tick that announced the job is open');
COMMIT;
SELECT count(*) AS started FROM dblink_get_result('worker') AS t(e integer) \gset
SELECT count(*) AS rest FROM dblink_get_result('worker') AS t(e integer) \gset
SELECT ok((SELECT max(id) FILTER (WHERE kind = 'due') < max(id) FILTER (WHERE status = 'running')
             FROM reactor.job_events WHERE job_id = 'order_me'),
          'and its running event comes after the due event (id order = commit order)');

-- The index behind each question
CREATE FUNCTION plan_of(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  p json;
BEGIN
  EXECUTE 'EXPLAIN (FORMAT JSON) ' || query INTO p;
  RETURN p::text;
END
$$;
SELECT ok(plan_of($$SELECT x.* FROM reactor.due_queue x WHERE x.scheduled_for <= now()
                     ORDER BY x.scheduled_for, x.job_id LIMIT 2000$$) LIKE '%"Index Name": "idx_due_queue_scheduled_for"%',
          'due now: idx_due_queue_scheduled_for');
SELECT ok(plan_of($$SELECT min(reactor.timeout_at(s.started_at, s.timeout_seconds)) FROM reactor.scheduled_jobs s
                     WHERE s.status = 'running' AND s.timeout_seconds IS NOT NULL
                       AND reactor.timeout_at(s.started_at, s.timeout_seconds) > now()$$)
            LIKE '%"Index Name": "idx_scheduled_jobs_running_timeout"%',
          'next timeout: idx_scheduled_jobs_running_timeout');
SELECT ok(plan_of($$SELECT min(s.started_at) FROM reactor.scheduled_jobs s
                     WHERE s.status = 'running' AND s.timeout_seconds IS NULL AND s.started_at > now() - interval '30 minutes'$$)
            LIKE '%"Index Name": "idx_scheduled_jobs_running_stuck"%',
          'next stuck timeout: idx_scheduled_jobs_running_stuck');

-- TRUNCATE empties both
TRUNCATE reactor.scheduled_jobs, reactor.job_executions;
SELECT is((SELECT count(*)::integer FROM reactor.due_queue) + (SELECT count(*)::integer FROM reactor.due_announcements), 0,
          'TRUNCATE of scheduled_jobs empties the queue and the announcements');

SELECT dblink_disconnect('worker') \gset
SELECT * FROM finish();
