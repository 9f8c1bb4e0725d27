-- Migration 006: reactor.job_action(job_id, action, actor, only_user, arg). Each action's
-- effect and its one event (kind, cause user, actor, action; the returned id is the
-- event's), each refusal's SQLSTATE with nothing changed and nothing written, another
-- user's job, the due queue and the config doorbell, and an action racing a worker in
-- other sessions. Committed statement by statement (no BEGIN) so that dblink sessions
-- see the jobs; where now() must stand still, a short BEGIN ... COMMIT.
SELECT plan(81);

CREATE EXTENSION IF NOT EXISTS dblink;
SELECT format('host=%s port=%s dbname=%s user=%s',
              split_part(current_setting('unix_socket_directories'), ',', 1),
              current_setting('port'), current_database(), current_user) AS conninfo \gset
SELECT dblink_connect('listener', :'conninfo') \gset
SELECT dblink_exec('listener', 'LISTEN job_status_changed') \gset
CREATE TABLE notes (n serial PRIMARY KEY, payload text);
CREATE FUNCTION collect_for(seconds float8) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  until timestamptz := clock_timestamp() + make_interval(secs => seconds);
BEGIN
  LOOP
    INSERT INTO notes (payload)
      SELECT regexp_replace(extra, '^\{"mac":"[0-9a-f]{64}","txid":"[0-9]+",("horizon":"[0-9]+",)?', '{')
        FROM dblink_get_notify('listener');
    EXIT WHEN clock_timestamp() > until;
    PERFORM pg_sleep(0.01);
  END LOOP;
  RETURN (SELECT count(*)::integer FROM notes);
END
$$;

-- The event `ev`: kind, status, old_status, cause, actor, action
CREATE FUNCTION ev(ev_id bigint) RETURNS TABLE (kind text, status text, old_status text, cause text, actor text, action text)
LANGUAGE sql AS $$
  SELECT e.kind, e.status, e.old_status, e.cause, e.actor, e.payload ->> 'action'
    FROM reactor.job_events e WHERE e.id = ev_id
$$;
CREATE FUNCTION n_events(job text) RETURNS integer LANGUAGE sql AS $$
  SELECT count(*)::integer FROM reactor.job_events WHERE job_id = job
$$;
CREATE FUNCTION latest(job text) RETURNS bigint LANGUAGE sql AS $$
  SELECT max(id) FROM reactor.job_events WHERE job_id = job
$$;

INSERT INTO reactor.scheduled_jobs (id, job_type, user_id, scheduled_for, retry_max_attempts, expires_at)
VALUES ('p', 't', 'u1', now() + interval '1 hour', 3, NULL),          -- pending, not yet due
       ('due', 't', 'u1', now() - interval '1 minute', 3, NULL),      -- pending, due
       ('r', 't', 'u1', now() - interval '1 minute', 0, NULL),        -- will run, then fail
       ('done', 't', 'u1', now() - interval '1 minute', 3, NULL),     -- will complete
       ('gone', 't', 'u1', now() - interval '1 hour', 3, now() - interval '1 second'),  -- will expire
       ('sys', 't', NULL, now() + interval '1 hour', 3, NULL),         -- a system job
       ('other', 't', 'u2', now() + interval '1 hour', 3, NULL);      -- another user's
SELECT reactor.start_job('r') AS r_exec \gset
SELECT reactor.start_job('done') AS done_exec \gset
SELECT reactor.complete_job('done', :done_exec) \gset
SELECT reactor.tick() \gset

-- cancel
SELECT reactor.job_action('p', 'cancel', 'alice') AS id \gset
SELECT results_eq(format('SELECT * FROM ev(%s)', :id),
                  $$VALUES ('status', 'cancelled', 'pending', 'user', 'alice', 'cancel')$$,
                  'cancel of a pending job: one status event pending -> cancelled, cause user, actor, action');
SELECT is(latest('p'), :id::bigint, 'the returned id is that event''s id, the job''s latest');
SELECT ok((SELECT status = 'cancelled' AND completed_at IS NOT NULL FROM reactor.scheduled_jobs WHERE id = 'p'),
          'the job is cancelled, with completed_at');
SELECT reactor.job_action('r', 'cancel', 'alice', 'u1') AS id \gset
SELECT results_eq(format('SELECT * FROM ev(%s)', :id),
                  $$VALUES ('status', 'cancelled', 'running', 'user', 'alice', 'cancel')$$,
                  'cancel of a running job (only_user = its user): running -> cancelled');
SELECT is((SELECT status FROM reactor.job_executions WHERE id = :r_exec), 'cancelled', 'its running execution is cancelled, as cancel_job does');
SELECT throws_ok($$SELECT reactor.job_action('done', 'cancel', 'alice')$$, '55000',
                 'job ''done'' is completed; cancel needs pending or running', 'cancel of a completed job: 55000');

-- retry_now
INSERT INTO reactor.scheduled_jobs (id, job_type, user_id, retry_max_attempts) VALUES ('f', 't', 'u1', 0);
SELECT reactor.start_job('f') AS e \gset
SELECT reactor.fail_job('f', :e, 'boom') \gset
SELECT n_events('f') AS before \gset
BEGIN;
SELECT reactor.job_action('f', 'retry_now', 'alice') AS id \gset
SELECT results_eq($$SELECT status, scheduled_for = now(), completed_at, error_count, last_error FROM reactor.scheduled_jobs WHERE id = 'f'$$,
                  $$VALUES ('pending', true, NULL::timestamptz, 1, 'boom')$$,
                  'retry_now of a failed job: pending at now(), completed_at NULL, error_count and last_error kept');
COMMIT;
SELECT results_eq(format('SELECT * FROM ev(%s)', :id),
                  $$VALUES ('status', 'pending', 'failed', 'user', 'alice', 'retry_now')$$, 'its event: failed -> pending');
SELECT is(n_events('f'), :before + 1, 'exactly one event');
SELECT is(latest('f'), :id::bigint, 'and the returned id is its id');
SELECT reactor.start_job('f') AS e \gset
SELECT is((SELECT attempt_number FROM reactor.job_executions WHERE id = :e), 2, 'the next start is attempt 2: one more attempt');
SELECT reactor.fail_job('f', :e, 'boom again') \gset
SELECT is((SELECT status FROM reactor.scheduled_jobs WHERE id = 'f'), 'failed', 'and its failure is final again (no attempts left)');
SELECT reactor.job_action('p', 'retry_now', 'alice') AS id \gset
SELECT results_eq(format('SELECT * FROM ev(%s)', :id),
                  $$VALUES ('status', 'pending', 'cancelled', 'user', 'alice', 'retry_now')$$, 'retry_now of a cancelled job: cancelled -> pending');
SELECT is((SELECT status FROM reactor.scheduled_jobs WHERE id = 'gone'), 'expired', 'the job with a past expires_at has expired');
SELECT reactor.job_action('gone', 'retry_now', 'alice') AS id \gset
SELECT results_eq($$SELECT status, expires_at FROM reactor.scheduled_jobs WHERE id = 'gone'$$,
                  $$VALUES ('pending', NULL::timestamptz)$$, 'retry_now of an expired job: pending, its passed expires_at cleared');
SELECT results_eq(format('SELECT * FROM ev(%s)', :id),
                  $$VALUES ('status', 'pending', 'expired', 'user', 'alice', 'retry_now')$$, 'its event: expired -> pending');
-- a pending job waiting for its backoff: scheduled_for = now(), an event of kind action
INSERT INTO reactor.scheduled_jobs (id, job_type, user_id, retry_backoff_seconds) VALUES ('backoff', 't', 'u1', 600);
SELECT reactor.start_job('backoff') AS e \gset
SELECT reactor.fail_job('backoff', :e, 'wait') \gset
BEGIN;
SELECT reactor.job_action('backoff', 'retry_now', 'alice') AS id \gset
SELECT is((SELECT scheduled_for FROM reactor.scheduled_jobs WHERE id = 'backoff'), now(), 'retry_now of a pending job in backoff: scheduled_for = now()');
SELECT is((SELECT payload ->> 'deadline' FROM reactor.job_events WHERE id = :id), reactor.iso_time(now()), 'its event''s deadline is now()');
COMMIT;
SELECT results_eq(format('SELECT * FROM ev(%s)', :id),
                  $$VALUES ('action', 'pending', 'pending', 'user', 'alice', 'retry_now')$$,
                  'its event is of kind action, status = old_status = pending');
SELECT is(latest('backoff'), :id::bigint, 'the returned id is that event''s id');
SELECT throws_ok($$SELECT reactor.job_action('backoff', 'retry_now', 'alice')$$, '55000',
                 'job ''backoff'' is pending and already due; retry_now would change nothing', 'retry_now of a due pending job: 55000');
SELECT throws_ok($$SELECT reactor.job_action('done', 'retry_now', 'alice')$$, '55000',
                 'job ''done'' is completed; retry_now needs failed, cancelled, expired or pending', 'retry_now of a completed job: 55000');
SELECT reactor.start_job('due') AS due_exec \gset
SELECT throws_ok($$SELECT reactor.job_action('due', 'retry_now', 'alice')$$, '55000', NULL, 'retry_now of a running job: 55000');
SELECT reactor.complete_job('due', :due_exec) \gset

-- run_now
SELECT n_events('sys') AS before \gset
BEGIN;
SELECT reactor.job_action('sys', 'run_now', 'alice') AS id \gset
SELECT is((SELECT scheduled_for FROM reactor.scheduled_jobs WHERE id = 'sys'), now(), 'run_now of a future pending job: scheduled_for = now()');
SELECT is((SELECT scheduled_for FROM reactor.due_queue WHERE job_id = 'sys'), now(), 'the due queue has it at now()');
COMMIT;
SELECT results_eq(format('SELECT * FROM ev(%s)', :id),
                  $$VALUES ('action', 'pending', 'pending', 'user', 'alice', 'run_now')$$, 'its event: kind action, pending');
SELECT is(n_events('sys'), :before + 1, 'exactly one event');
SELECT is(latest('sys'), :id::bigint, 'the returned id is its id');
SELECT reactor.tick() \gset
SELECT results_eq($$SELECT kind, cause FROM reactor.job_events WHERE job_id = 'sys' ORDER BY id DESC LIMIT 1$$,
                  $$VALUES ('due', 'schedule')$$, 'the next tick() announces it due');
SELECT is(collect_for(0.3) > 0, true, 'notifications arrived');
SELECT ok(EXISTS (SELECT 1 FROM notes WHERE payload = '{"kind": "config", "job_id": "sys", "source": "scheduled_jobs"}'),
          'run_now rang the config doorbell for the job (the reactor ticks again)');
SELECT ok(EXISTS (SELECT 1 FROM notes n JOIN reactor.job_events e ON e.id = :id WHERE n.payload = e.payload::text),
          'the action event was notified as its payload''s text');
TRUNCATE notes;
SELECT throws_ok($$SELECT reactor.job_action('sys', 'run_now', 'alice')$$, '55000',
                 'job ''sys'' is already due; run_now would change nothing', 'run_now of a due job: 55000');
SELECT throws_ok($$SELECT reactor.job_action('done', 'run_now', 'alice')$$, '55000', NULL, 'run_now of a completed job: 55000');

-- enable, disable
SELECT reactor.job_action('other', 'disable', 'alice') AS id \gset
SELECT results_eq(format('SELECT * FROM ev(%s)', :id),
                  $$VALUES ('action', 'pending', 'pending', 'user', 'alice', 'disable')$$, 'disable: an event of kind action');
SELECT results_eq(format($$SELECT enabled, payload -> 'enabled', payload -> 'deadline' FROM reactor.scheduled_jobs, reactor.job_events e
                            WHERE scheduled_jobs.id = 'other' AND e.id = %s$$, :id),
                  $$VALUES (false, 'false'::jsonb, 'null'::jsonb)$$, 'the job is disabled; its event says enabled false, no deadline');
SELECT throws_ok($$SELECT reactor.job_action('other', 'disable', 'alice')$$, '55000', 'job ''other'' is already disabled',
                 'disable of a disabled job: 55000');
SELECT throws_ok($$SELECT reactor.job_action('other', 'run_now', 'alice')$$, '55000', 'job ''other'' is disabled; enable it first',
                 'run_now of a disabled job: 55000');
UPDATE reactor.scheduled_jobs SET scheduled_for = now() - interval '1 minute' WHERE id = 'other';
SELECT is((SELECT count(*)::integer FROM reactor.due_queue WHERE job_id = 'other'), 0, 'a disabled due job is not in the due queue');
SELECT reactor.job_action('other', 'enable', 'alice') AS id \gset
SELECT results_eq(format('SELECT * FROM ev(%s)', :id),
                  $$VALUES ('action', 'pending', 'pending', 'user', 'alice', 'enable')$$, 'enable: an event of kind action');
SELECT is((SELECT count(*)::integer FROM reactor.due_queue WHERE job_id = 'other'), 1, 'enabled, it is back in the due queue');
SELECT throws_ok($$SELECT reactor.job_action('other', 'enable', 'alice')$$, '55000', 'job ''other'' is already enabled',
                 'enable of an enabled job: 55000');
SELECT is(collect_for(0.3) > 0, true, 'notifications arrived');
SELECT ok(EXISTS (SELECT 1 FROM notes WHERE payload = '{"kind": "config", "job_id": "other", "source": "scheduled_jobs"}'),
          'enable rang the config doorbell');
TRUNCATE notes;

-- set_priority
SELECT reactor.job_action('other', 'set_priority', 'alice', NULL, 'critical') AS id \gset
SELECT results_eq(format('SELECT * FROM ev(%s)', :id),
                  $$VALUES ('action', 'pending', 'pending', 'user', 'alice', 'set_priority')$$, 'set_priority: an event of kind action');
SELECT results_eq(format($$SELECT priority, payload ->> 'priority' FROM reactor.scheduled_jobs, reactor.job_events e
                            WHERE scheduled_jobs.id = 'other' AND e.id = %s$$, :id),
                  $$VALUES ('critical', 'critical')$$, 'the job and its event say critical');
SELECT throws_ok($$SELECT reactor.job_action('other', 'set_priority', 'alice', NULL, 'critical')$$, '55000',
                 'job ''other'' already has priority critical', 'the same priority again: 55000');
SELECT throws_ok($$SELECT reactor.job_action('other', 'set_priority', 'alice', NULL, 'urgent')$$, '22023',
                 'set_priority needs arg critical, high, medium or low, got ''urgent''', 'an unknown priority: 22023');
SELECT throws_ok($$SELECT reactor.job_action('other', 'set_priority', 'alice')$$, '22023', NULL, 'set_priority without arg: 22023');

-- Refusals change nothing and write nothing
SELECT count(*)::integer AS events_before FROM reactor.job_events \gset
SELECT md5(string_agg(to_jsonb(s)::text, ',' ORDER BY id)) AS jobs_before FROM reactor.scheduled_jobs s \gset
SELECT throws_ok($$SELECT reactor.job_action('other', 'explode', 'alice')$$, '22023',
                 'unknown action ''explode''; expected cancel, retry_now, run_now, enable, disable or set_priority', 'an unknown action: 22023');
SELECT throws_ok($$SELECT reactor.job_action('other', NULL, 'alice')$$, '22023', NULL, 'a NULL action: 22023');
SELECT throws_ok($$SELECT reactor.job_action('other', 'disable', '')$$, '22023',
                 'job_action: actor must be a non-empty text (the acting user)', 'an empty actor: 22023');
SELECT throws_ok($$SELECT reactor.job_action('other', 'disable', NULL)$$, '22023', NULL, 'a NULL actor: 22023');
SELECT throws_ok($$SELECT reactor.job_action('other', 'cancel', 'alice', NULL, 'now')$$, '22023',
                 'cancel takes no arg, got ''now''', 'an arg to an action that takes none: 22023');
SELECT throws_ok($$SELECT reactor.job_action('nosuch', 'cancel', 'alice')$$, 'P0002', 'unknown job id ''nosuch''', 'an unknown job: P0002');
SELECT throws_ok($$SELECT reactor.job_action('nosuch', 'cancel', 'alice', 'u1')$$, 'P0002', NULL, 'also with only_user');
SELECT throws_ok($$SELECT reactor.job_action('other', 'disable', 'mallory', 'u1')$$, '42501',
                 'job ''other'' is not a job of user ''u1''', 'another user''s job: 42501');
SELECT throws_ok($$SELECT reactor.job_action('other', 'enable', 'mallory', 'u1')$$, '42501', NULL,
                 'also where the action would be refused anyway (42501 comes before 55000: no state is told)');
SELECT throws_ok($$SELECT reactor.job_action('sys', 'cancel', 'mallory', 'u1')$$, '42501', NULL,
                 'a system job (no user) is no user''s: 42501');
SELECT throws_ok($$SELECT reactor.job_action('done', 'cancel', 'mallory', 'u2')$$, '42501', NULL,
                 'a completed job of u1 for u2: 42501, not 55000');
SELECT is((SELECT count(*)::integer FROM reactor.job_events), :events_before, 'no refusal wrote an event');
SELECT is((SELECT md5(string_agg(to_jsonb(s)::text, ',' ORDER BY id)) FROM reactor.scheduled_jobs s), :'jobs_before',
          'and none changed a job');
SELECT reactor.job_action('other', 'set_priority', 'bob', 'u2', 'low') AS id \gset
SELECT results_eq(format('SELECT * FROM ev(%s)', :id),
                  $$VALUES ('action', 'pending', 'pending', 'user', 'bob', 'set_priority')$$, 'u2 may act on u2''s job');

-- Detached scheduled_jobs: no events, so no actions
BEGIN;
SELECT reactor.detach('reactor.scheduled_jobs') \gset
SELECT throws_ok($$SELECT reactor.job_action('other', 'disable', 'alice')$$, '55000',
                 'reactor.scheduled_jobs is detached; actions need its events', 'while scheduled_jobs is detached: 55000');
ROLLBACK;
-- Triggers bypassed (session_replication_role = replica): a status change would go unlogged
BEGIN;
SET LOCAL session_replication_role = replica;
SELECT throws_ok($$SELECT reactor.job_action('other', 'cancel', 'alice')$$, 'XX000', NULL,
                 'an action whose event the triggers did not write is refused (XX000) and undone');
ROLLBACK;

-- Rights: EXECUTE is revoked from PUBLIC
CREATE ROLE action_nobody NOLOGIN;
SELECT ok(NOT has_function_privilege('action_nobody', 'reactor.job_action(text, text, text, text, text)', 'EXECUTE'),
          'a role without a grant may not call job_action');
SELECT ok((SELECT prosecdef FROM pg_proc WHERE oid = 'reactor.job_action(text, text, text, text, text)'::regprocedure),
          'it runs as its owner');
DROP ROLE action_nobody;

-- Racing a worker, in two other sessions
INSERT INTO reactor.scheduled_jobs (id, job_type, user_id, scheduled_for) VALUES ('race', 't', 'u1', now() - interval '1 second');
SELECT dblink_connect('worker', :'conninfo') \gset
SELECT dblink_connect('actor', :'conninfo') \gset
SELECT dblink_exec('worker', 'BEGIN') \gset
SELECT e AS race_exec FROM dblink('worker', $$SELECT reactor.start_job('race')$$) AS t(e integer) \gset
SELECT dblink_send_query('actor', $$SELECT reactor.job_action('race', 'cancel', 'alice', 'u1')$$) \gset
SELECT pg_sleep(0.3) \gset
SELECT is(dblink_is_busy('actor'), 1, 'an action on a job a worker is starting waits for the worker''s transaction');
SELECT dblink_exec('worker', 'COMMIT') \gset
SELECT id AS race_id FROM dblink_get_result('actor') AS t(id bigint) \gset
SELECT is((SELECT count(*)::integer FROM dblink_get_result('actor') AS t(id bigint)), 0, 'one result') ;
SELECT results_eq($$SELECT kind, status, old_status, cause FROM reactor.job_events WHERE job_id = 'race' ORDER BY id$$,
                  $$VALUES ('status', 'pending', NULL::text, 'sql'), ('status', 'running', 'pending', 'worker'),
                           ('status', 'cancelled', 'running', 'user')$$,
                  'then it sees the running job and cancels it: its event follows the worker''s');
SELECT is(latest('race'), :race_id::bigint, 'the returned id is the cancel''s event');
SELECT is((SELECT status FROM reactor.job_executions WHERE id = :race_exec), 'cancelled', 'and the worker''s execution is cancelled');
INSERT INTO reactor.scheduled_jobs (id, job_type, user_id, scheduled_for) VALUES ('race2', 't', 'u1', now() - interval '1 second');
SELECT dblink_exec('actor', 'BEGIN') \gset
SELECT id AS race2_id FROM dblink('actor', $$SELECT reactor.job_action('race2', 'cancel', 'alice')$$) AS t(id bigint) \gset
SELECT dblink_send_query('worker', $$SELECT reactor.start_job('race2')$$) \gset
SELECT pg_sleep(0.3) \gset
SELECT is(dblink_is_busy('worker'), 1, 'a worker starting a job an action holds waits for it');
SELECT dblink_exec('actor', 'COMMIT') \gset
SET client_min_messages = warning;
SELECT is((SELECT count(*)::integer FROM dblink_get_result('worker', false) AS t(e integer)), 0, 'then its start_job fails');
RESET client_min_messages;
SELECT ok(dblink_error_message('worker') ~ 'job ''race2'' is cancelled; only a pending job can be started',
          'because the job is cancelled');
SELECT count(*) FROM dblink_get_result('worker', false) AS t(e integer) \gset
SELECT results_eq($$SELECT kind, status, cause, id FROM reactor.job_events WHERE job_id = 'race2' ORDER BY id$$,
                  format($$VALUES ('status', 'pending', 'sql', %s::bigint), ('status', 'cancelled', 'user', %s)$$,
                         (SELECT min(id) FROM reactor.job_events WHERE job_id = 'race2'), :race2_id),
                  'the job has its insert and the cancel, no running event');
-- A decision made on the state the worker leaves: run_now of a job a worker is starting
INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for) VALUES ('race3', 't', now() + interval '1 hour');
SELECT dblink_exec('worker', 'BEGIN') \gset
SELECT e AS race3_exec FROM dblink('worker', $$SELECT reactor.start_job('race3')$$) AS t(e integer) \gset
SELECT dblink_send_query('actor', $$SELECT reactor.job_action('race3', 'run_now', 'alice')$$) \gset
SELECT pg_sleep(0.3) \gset
SELECT is(dblink_is_busy('actor'), 1, 'run_now of a job a worker is starting waits');
SELECT dblink_exec('worker', 'COMMIT') \gset
SET client_min_messages = warning;
SELECT is((SELECT count(*)::integer FROM dblink_get_result('actor', false) AS t(id bigint)), 0, 'then fails');
RESET client_min_messages;
SELECT ok(dblink_error_message('actor') ~ 'job ''race3'' is running; run_now needs pending',
          'because it sees the job running (the state after the worker''s commit, not before)');
SELECT count(*) FROM dblink_get_result('actor', false) AS t(id bigint) \gset
SELECT results_eq($$SELECT kind, status FROM reactor.job_events WHERE job_id = 'race3' ORDER BY id$$,
                  $$VALUES ('status', 'pending'), ('status', 'running')$$, 'and writes no event');
SELECT dblink_disconnect('worker') \gset
SELECT dblink_disconnect('actor') \gset

-- Every action event: the payload's cause, actor, action equal the columns
SELECT is((SELECT count(*)::integer FROM reactor.job_events
            WHERE payload ->> 'action' IS NOT NULL
              AND (cause <> 'user' OR actor IS DISTINCT FROM payload ->> 'actor' OR payload ->> 'cause' <> 'user')), 0,
          'every event with an action says cause user and its actor, in the row and the payload');

SELECT * FROM finish();
SELECT dblink_disconnect('listener') \gset
