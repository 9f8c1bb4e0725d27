-- Migration 006: the cause of every event (worker, retry, schedule, timeout, expiry, user,
-- sql), its actor and action, and the row's priority and enabled, in the payload and in
-- the log's columns; a cause never outlives the function that set it; the notification is
-- still payload::text byte for byte, and the truncated form carries the cause.
-- Committed statement by statement (no BEGIN): a dblink session listens.
SELECT plan(41);

CREATE EXTENSION IF NOT EXISTS dblink;
SELECT format('host=%s port=%s dbname=%s user=%s',
              split_part(current_setting('unix_socket_directories'), ',', 1),
              current_setting('port'), current_database(), current_user) AS conninfo \gset
SELECT dblink_connect('listener', :'conninfo') \gset
SELECT dblink_exec('listener', 'LISTEN job_status_changed') \gset

-- As in 008: `payload` is the event JSON of a notification (mac, txid, horizon taken out).
CREATE TABLE notes (n serial PRIMARY KEY, payload text, raw text);
CREATE FUNCTION unsigned_text(note text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT regexp_replace(note, '^\{"mac":"[0-9a-f]{64}","txid":"[0-9]+",("horizon":"[0-9]+",)?', '{')
$$;
-- Moves the listener's notifications into `notes` until `want` of them are events (have an
-- id; the config doorbells have none), or two seconds pass with none arriving.
CREATE FUNCTION collect(want integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  got integer;
  idle_until timestamptz := clock_timestamp() + interval '2 seconds';
  fresh integer;
BEGIN
  LOOP
    INSERT INTO notes (payload, raw)
      SELECT unsigned_text(extra), extra FROM dblink_get_notify('listener');
    GET DIAGNOSTICS fresh = ROW_COUNT;
    IF fresh > 0 THEN
      idle_until := clock_timestamp() + interval '2 seconds';
    END IF;
    SELECT count(*) INTO got FROM notes WHERE payload::jsonb ? 'id';
    EXIT WHEN got >= want OR clock_timestamp() > idle_until;
    PERFORM pg_sleep(0.01);
  END LOOP;
  RETURN got;
END
$$;

-- The latest event of a job: kind, status, cause (column and payload), actor, action.
CREATE FUNCTION last_event(job text) RETURNS TABLE (kind text, status text, cause text, payload_cause text,
                                                     actor text, payload_actor jsonb, payload_action jsonb)
LANGUAGE sql AS $$
  SELECT e.kind, e.status, e.cause, e.payload ->> 'cause', e.actor, e.payload -> 'actor', e.payload -> 'action'
    FROM reactor.job_events e WHERE e.job_id = job ORDER BY e.id DESC LIMIT 1
$$;
SELECT coalesce(max(id), 0) AS first_id FROM reactor.job_events \gset

-- An insert and the worker's functions
INSERT INTO reactor.scheduled_jobs (id, job_type, user_id) VALUES ('w', 't', 'u1');
SELECT results_eq($$SELECT * FROM last_event('w')$$,
                  $$VALUES ('status', 'pending', 'sql', 'sql', NULL::text, 'null'::jsonb, 'null'::jsonb)$$,
                  'a direct insert: cause sql, no actor, no action');
SELECT reactor.start_job('w') AS e \gset
SELECT results_eq($$SELECT kind, status, cause, payload_cause FROM last_event('w')$$,
                  $$VALUES ('status', 'running', 'worker', 'worker')$$, 'start_job: worker');
SELECT reactor.update_job_progress('w', 40, 'reading') \gset
SELECT results_eq($$SELECT kind, status, cause, payload_cause FROM last_event('w')$$,
                  $$VALUES ('progress', 'running', 'worker', 'worker')$$, 'update_job_progress: worker');
SELECT reactor.complete_job('w', :e, '{"n": 1}') \gset
SELECT results_eq($$SELECT kind, status, cause, payload_cause FROM last_event('w')$$,
                  $$VALUES ('status', 'completed', 'worker', 'worker')$$, 'complete_job of a one-time job: worker');

-- A recurring job rescheduled by complete_job
INSERT INTO reactor.scheduled_jobs (id, job_type, frequency_type, frequency_config)
VALUES ('daily', 't', 'daily', '{"hour": 3}');
SELECT reactor.start_job('daily') AS e \gset
SELECT reactor.complete_job('daily', :e) \gset
SELECT results_eq($$SELECT kind, status, cause, payload_cause FROM last_event('daily')$$,
                  $$VALUES ('status', 'pending', 'schedule', 'schedule')$$,
                  'complete_job of a recurring job (pending again at its next occurrence): schedule');

-- fail_job: another attempt, then the last
INSERT INTO reactor.scheduled_jobs (id, job_type, retry_max_attempts, retry_backoff_seconds) VALUES ('f', 't', 1, 0);
SELECT reactor.start_job('f') AS e \gset
SELECT reactor.fail_job('f', :e, 'flaky') \gset
SELECT results_eq($$SELECT kind, status, cause, payload_cause FROM last_event('f')$$,
                  $$VALUES ('status', 'pending', 'retry', 'retry')$$, 'fail_job with attempts left: retry');
SELECT reactor.start_job('f') AS e \gset
SELECT reactor.fail_job('f', :e, 'flaky again') \gset
SELECT results_eq($$SELECT kind, status, cause, payload_cause FROM last_event('f')$$,
                  $$VALUES ('status', 'failed', 'worker', 'worker')$$, 'fail_job, no attempt left: worker');

-- tick(): due, timeout (with and without an attempt left), expiry
INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for) VALUES ('due', 't', now() - interval '1 minute');
INSERT INTO reactor.scheduled_jobs (id, job_type, timeout_seconds, retry_backoff_seconds) VALUES ('slow', 't', 5, 0);
INSERT INTO reactor.scheduled_jobs (id, job_type, timeout_seconds, retry_max_attempts) VALUES ('stuck', 't', 5, 0);
SELECT reactor.start_job('slow') \gset
SELECT reactor.start_job('stuck') \gset
UPDATE reactor.scheduled_jobs SET started_at = now() - interval '1 hour' WHERE id IN ('slow', 'stuck');
INSERT INTO reactor.scheduled_jobs (id, job_type, expires_at) VALUES ('late', 't', now() - interval '1 second');
SELECT reactor.tick() \gset
SELECT results_eq($$SELECT kind, status, cause, payload_cause FROM last_event('due')$$,
                  $$VALUES ('due', 'pending', 'schedule', 'schedule')$$, 'a due event of tick(): schedule');
SELECT results_eq($$SELECT kind, status, cause, payload ->> 'error' FROM reactor.job_events WHERE job_id = 'slow' AND kind = 'status' ORDER BY id DESC LIMIT 1$$,
                  $$VALUES ('status', 'pending', 'timeout', 'timeout')$$, 'a timeout with an attempt left (pending again): timeout');
SELECT results_eq($$SELECT kind, status, cause, payload_cause FROM last_event('stuck')$$,
                  $$VALUES ('status', 'failed', 'timeout', 'timeout')$$, 'a timeout without one (failed): timeout');
SELECT results_eq($$SELECT kind, status, cause, payload_cause FROM last_event('late')$$,
                  $$VALUES ('status', 'expired', 'expiry', 'expiry')$$, 'an expiry: expiry');
SELECT is(coalesce(current_setting('reactor.cause', true), ''), '', 'after tick() the session has no cause set');

-- Direct writes, cancel_job
UPDATE reactor.scheduled_jobs SET status = 'cancelled' WHERE id = 'due';
SELECT results_eq($$SELECT kind, status, cause FROM last_event('due')$$, $$VALUES ('status', 'cancelled', 'sql')$$,
                  'a direct update: sql');
INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('c', 't');
SELECT reactor.cancel_job('c') \gset
SELECT results_eq($$SELECT kind, status, cause FROM last_event('c')$$, $$VALUES ('status', 'cancelled', 'sql')$$,
                  'cancel_job called directly: the caller''s cause, sql by default');

-- A cause never outlives its function, within one transaction
INSERT INTO reactor.scheduled_jobs (id, job_type, retry_backoff_seconds) VALUES ('tx', 't', 0);
BEGIN;
SELECT reactor.start_job('tx') AS e \gset
UPDATE reactor.scheduled_jobs SET progress_message = 'by hand' WHERE id = 'tx';
SELECT is(coalesce(current_setting('reactor.cause', true), ''), '', 'in the transaction after start_job no cause is set');
SELECT reactor.fail_job('tx', :e, 'x') \gset
UPDATE reactor.scheduled_jobs SET progress_message = 'by hand again' WHERE id = 'tx';
SELECT reactor.job_action('tx', 'disable', 'alice') \gset
UPDATE reactor.scheduled_jobs SET progress_message = 'and again' WHERE id = 'tx';
SELECT is(coalesce(current_setting('reactor.actor', true), ''), '', 'nor an actor after job_action');
COMMIT;
SELECT results_eq($$SELECT kind, status, cause, actor, payload -> 'action' FROM reactor.job_events WHERE job_id = 'tx' ORDER BY id$$,
                  $$VALUES ('status', 'pending', 'sql', NULL::text, 'null'::jsonb),
                           ('status', 'running', 'worker', NULL, 'null'),
                           ('progress', 'running', 'sql', NULL, 'null'),
                           ('status', 'pending', 'retry', NULL, 'null'),
                           ('progress', 'pending', 'sql', NULL, 'null'),
                           ('action', 'pending', 'user', 'alice', '"disable"'),
                           ('progress', 'pending', 'sql', NULL, 'null')$$,
                  'one transaction: start_job, UPDATE, fail_job (retry), UPDATE, job_action, UPDATE: each UPDATE says sql');

-- A session's own cause: an application's worker on an attached table, claims, unknown values
CREATE TABLE public.app_jobs (id integer PRIMARY KEY, status text, priority integer, enabled boolean, progress integer);
SELECT reactor.attach('public.app_jobs') \gset
BEGIN;
SET LOCAL reactor.cause = 'worker';
SET LOCAL reactor.actor = 'ignored';
INSERT INTO public.app_jobs VALUES (1, 'queued', 7, false, NULL);
COMMIT;
SELECT results_eq($$SELECT * FROM last_event('1')$$,
                  $$VALUES ('status', 'queued', 'worker', 'worker', NULL::text, 'null'::jsonb, 'null'::jsonb)$$,
                  'SET LOCAL reactor.cause = worker on an attached table: worker; an actor only counts with user');
SELECT results_eq($$SELECT payload -> 'priority', payload -> 'enabled' FROM reactor.job_events WHERE source = 'app_jobs'$$,
                  $$VALUES ('7'::jsonb, 'false'::jsonb)$$, 'an attached table''s own priority and enabled columns, as JSON');
UPDATE public.app_jobs SET status = 'done' WHERE id = 1;
SELECT is((SELECT cause FROM last_event('1')), 'sql', 'SET LOCAL ends with its transaction');
BEGIN;
SET LOCAL reactor.cause = 'user';
SET LOCAL reactor.actor = 'bob';
SET LOCAL reactor.action = 'poke';
UPDATE public.app_jobs SET progress = 1 WHERE id = 1;
SET LOCAL reactor.cause = 'bogus';
UPDATE public.app_jobs SET progress = 2 WHERE id = 1;
SET LOCAL reactor.cause = '';
UPDATE public.app_jobs SET progress = 3 WHERE id = 1;
SET LOCAL reactor.cause = 'USER';
UPDATE public.app_jobs SET progress = 4 WHERE id = 1;
COMMIT;
SELECT results_eq($$SELECT cause, actor, payload ->> 'action' FROM reactor.job_events WHERE source = 'app_jobs' AND kind = 'progress' ORDER BY id$$,
                  $$VALUES ('user', 'bob', 'poke'), ('sql', NULL, NULL), ('sql', NULL, NULL), ('sql', NULL, NULL)$$,
                  'a session may claim user with an actor and action; an unknown, empty or differently spelt cause is sql');
CREATE TABLE public.plain_jobs (id text PRIMARY KEY, status text);
SELECT reactor.attach('public.plain_jobs') \gset
INSERT INTO public.plain_jobs VALUES ('p', 'new');
SELECT results_eq($$SELECT payload -> 'priority', payload -> 'enabled' FROM reactor.job_events WHERE source = 'plain_jobs'$$,
                  $$VALUES ('null'::jsonb, 'null'::jsonb)$$, 'a table without priority and enabled columns: both null');
SET reactor.cause = 'user';
SET reactor.actor = 'carol';
INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('sess', 't');
SELECT reactor.start_job('sess') \gset
UPDATE reactor.scheduled_jobs SET progress_percent = 1 WHERE id = 'sess';
RESET reactor.cause;
RESET reactor.actor;
SELECT results_eq($$SELECT cause, actor FROM reactor.job_events WHERE job_id = 'sess' ORDER BY id$$,
                  $$VALUES ('user', 'carol'), ('worker', NULL), ('user', 'carol')$$,
                  'a session-level cause is overridden by start_job for its call only, then in force again');

-- Priority and enabled are the row's
UPDATE reactor.scheduled_jobs SET priority = 'critical', enabled = false, status = 'cancelled' WHERE id = 'sess';
SELECT results_eq($$SELECT payload -> 'priority', payload -> 'enabled' FROM reactor.job_events WHERE job_id = 'sess' ORDER BY id DESC LIMIT 1$$,
                  $$VALUES ('"critical"'::jsonb, 'false'::jsonb)$$, 'priority and enabled of scheduled_jobs as they are after the change');
SELECT is((SELECT count(*)::integer FROM reactor.job_events e
            WHERE e.source = 'scheduled_jobs' AND e.job_id IN ('w', 'daily', 'f', 'slow', 'stuck', 'late')
              AND (e.payload -> 'priority' <> '"medium"' OR e.payload -> 'enabled' <> 'true')),
          0, 'the events of jobs whose priority and enabled never changed say medium and true');
SELECT results_eq($$SELECT kind, payload -> 'enabled' FROM reactor.job_events WHERE job_id = 'tx' ORDER BY id DESC LIMIT 2$$,
                  $$VALUES ('progress', 'false'::jsonb), ('action', 'false'::jsonb)$$,
                  'after the job is disabled its events say enabled false');

-- Every event, columns and payload agree
SELECT is((SELECT count(*)::integer FROM reactor.job_events e WHERE e.id > :first_id
            AND NOT (e.payload ?& ARRAY['cause', 'actor', 'action', 'priority', 'enabled'])), 0,
          'every event has cause, actor, action, priority and enabled');
SELECT is((SELECT count(*)::integer FROM reactor.job_events e WHERE e.id > :first_id
            AND (e.cause IS DISTINCT FROM e.payload ->> 'cause' OR e.actor IS DISTINCT FROM e.payload ->> 'actor')), 0,
          'the cause and actor columns equal the payload''s');
SELECT is((SELECT count(*)::integer FROM reactor.job_events e WHERE e.id > :first_id
            AND e.cause <> 'user' AND (e.payload -> 'actor' <> 'null' OR e.payload -> 'action' <> 'null')), 0,
          'actor and action are null unless the cause is user');
SELECT is(ARRAY(SELECT DISTINCT cause FROM reactor.job_events WHERE id > :first_id ORDER BY cause),
          ARRAY['expiry', 'retry', 'schedule', 'sql', 'timeout', 'user', 'worker'], 'all seven causes were written');
SELECT throws_ok($$INSERT INTO reactor.job_events (job_id, source, kind, payload, cause) VALUES ('x', 'x', 'status', '{}', 'magic')$$,
                 '23514', NULL, 'the log refuses a cause outside the list');

-- Notifications: payload::text byte for byte
SELECT count(*)::integer AS n_events FROM reactor.job_events WHERE id > :first_id \gset
SELECT is(collect(:n_events), :n_events, 'one notification per event');
SELECT is((SELECT count(*)::integer FROM notes n JOIN reactor.job_events e ON (n.payload::jsonb ->> 'id')::bigint = e.id
            WHERE n.payload = e.payload::text), :n_events,
          'each is its logged payload''s text, byte for byte, cause and actor included');
SELECT is((SELECT count(*)::integer FROM notes WHERE payload::jsonb ->> 'cause' = 'user' AND payload::jsonb ->> 'actor' IN ('alice', 'bob', 'carol')), 4,
          'the user events carry their actor in the notification');
TRUNCATE notes;

-- The truncated form carries the cause; the boundary with the new fields: an actor of
-- growing length makes signed notifications of 7880 to 7920 bytes
INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('big', 't');
SELECT reactor.start_job('big') AS big_exec \gset
SELECT reactor.complete_job('big', :big_exec, jsonb_build_object('blob', repeat('x', 9000))) \gset
SELECT is(collect(3), 3, 'three notifications for the big job');
SELECT is((SELECT payload FROM notes ORDER BY n DESC LIMIT 1),
          (SELECT jsonb_build_object('id', id, 'kind', 'status', 'job_id', 'big', 'status', 'completed',
                                     'cause', 'worker', 'truncated', true)::text
             FROM reactor.job_events WHERE job_id = 'big' ORDER BY id DESC LIMIT 1),
          'the truncated form is {id, kind, job_id, status, cause, truncated}');
TRUNCATE notes;
INSERT INTO reactor.scheduled_jobs (id, job_type, result) VALUES ('edge', 't', to_jsonb(''::text));
BEGIN;
SET LOCAL reactor.cause = 'user';
SET LOCAL reactor.actor = 'a';
UPDATE reactor.scheduled_jobs SET progress_percent = 0 WHERE id = 'edge';
COMMIT;
SELECT set_config('test.base_len', (octet_length(payload::text) + 83 + octet_length(txid::text)
                                    + 13 + octet_length(horizon::text))::text, false)
  FROM reactor.job_events WHERE job_id = 'edge' ORDER BY id DESC LIMIT 1 \gset
BEGIN;
DO $$
DECLARE
  base integer := current_setting('test.base_len')::integer;
BEGIN
  PERFORM set_config('reactor.cause', 'user', true);
  PERFORM set_config('reactor.actor', 'a', true);
  UPDATE reactor.scheduled_jobs SET result = to_jsonb(repeat('r', 7870 - base)) WHERE id = 'edge';
  -- Each update is a progress event of about 7870 + (k - 1) bytes signed.
  FOR k IN 11 .. 51 LOOP
    PERFORM set_config('reactor.actor', repeat('a', k), true);
    UPDATE reactor.scheduled_jobs SET progress_percent = 1 + k % 2 WHERE id = 'edge';
  END LOOP;
END
$$;
COMMIT;
SELECT is(collect(44), 44, 'insert, the measured event, the big result and 41 boundary events');
CREATE TEMP VIEW edge AS
  SELECT e.id, octet_length(e.payload::text) + 83 + octet_length(e.txid::text)
               + 13 + octet_length(e.horizon::text) AS len, n.payload AS note, n.raw
    FROM reactor.job_events e JOIN notes n ON (n.payload::jsonb ->> 'id')::bigint = e.id
   WHERE e.job_id = 'edge' AND e.kind = 'progress' AND e.actor <> 'a';
SELECT is((SELECT count(*)::integer FROM edge WHERE (note::jsonb ? 'truncated') <> (len > 7900)), 0,
          'each is truncated if and only if its signed form is above 7900 bytes');
SELECT ok(EXISTS (SELECT 1 FROM edge WHERE len = 7900 AND note = (SELECT payload::text FROM reactor.job_events WHERE id = edge.id)
                  AND octet_length(raw) = 7900),
          'a signed notification of exactly 7900 bytes is sent whole');
SELECT ok(EXISTS (SELECT 1 FROM edge WHERE len = 7901 AND note::jsonb ? 'truncated'), 'one of 7901 bytes is truncated');
SELECT is((SELECT count(*)::integer FROM edge WHERE note::jsonb ? 'truncated' AND note::jsonb ->> 'cause' <> 'user'), 0,
          'the truncated ones say cause user');

SELECT * FROM finish();
SELECT dblink_disconnect('listener') \gset
