-- The event trigger on reactor.scheduled_jobs: which changes make events, the rows of
-- reactor.job_events and the exact JSON of their payload (contract section 4 plus
-- "result" and "deadline").
BEGIN;
SELECT plan(48);

-- iso_time
SELECT is(reactor.iso_time('2025-01-06 10:00:00+00'), '2025-01-06T10:00:00Z', 'iso_time: whole seconds have no fraction');
SELECT is(reactor.iso_time('2025-01-06 10:00:00.012345+00'), '2025-01-06T10:00:00.012345Z', 'iso_time: microseconds');
SELECT is(reactor.iso_time('2025-01-06 10:00:00.5+00'), '2025-01-06T10:00:00.500000Z', 'iso_time: a fraction has six digits');
SELECT is(reactor.iso_time('2025-01-06 10:00:00-06'), '2025-01-06T16:00:00Z', 'iso_time: converted to UTC');
SET LOCAL TIME ZONE 'Pacific/Auckland';
SELECT is(reactor.iso_time('2025-01-06 10:00:00+00'), '2025-01-06T10:00:00Z', 'iso_time: whatever the session''s zone');
RESET TIME ZONE;
SELECT is(reactor.iso_time(NULL), NULL, 'iso_time: NULL stays NULL');

-- An insert is a 'status' event
INSERT INTO reactor.scheduled_jobs (id, job_type, user_id, scheduled_for, timeout_seconds)
VALUES ('job_42', 'auto_sync', 'u1', '2026-11-21 06:00:00+00', 600);
SELECT is((SELECT count(*)::integer FROM reactor.job_events), 1, 'one insert, one event');
SELECT results_eq(
  $$SELECT job_id, source, kind, status, old_status, user_id, job_type FROM reactor.job_events$$,
  $$VALUES ('job_42', 'scheduled_jobs', 'status', 'pending', NULL::text, 'u1', 'auto_sync')$$,
  'the row''s columns: job, source table, kind status, status pending, no old status, user, type');
SELECT is((SELECT payload - 'id' - 'at' FROM reactor.job_events),
          '{"kind": "status", "job_id": "job_42", "source": "scheduled_jobs", "status": "pending",
            "old_status": null, "user_id": "u1", "job_type": "auto_sync", "attempt": null,
            "progress": null, "message": null, "error": null, "result": null,
            "scheduled_for": "2026-11-21T06:00:00Z", "deadline": "2026-11-21T06:00:00Z",
            "cause": "sql", "actor": null, "action": null, "priority": "medium", "enabled": true}'::jsonb,
          'the payload of an insert, field by field');
SELECT is((SELECT array_agg(k ORDER BY k) FROM reactor.job_events, jsonb_object_keys(payload) AS k),
          ARRAY['action', 'actor', 'at', 'attempt', 'cause', 'deadline', 'enabled', 'error', 'id', 'job_id',
                'job_type', 'kind', 'message', 'old_status', 'priority', 'progress', 'result', 'scheduled_for',
                'source', 'status', 'user_id'],
          'the payload has exactly the contract''s fields plus result, deadline (001) and cause, actor, action, priority, enabled (006)');
SELECT is((SELECT (payload ->> 'id')::bigint FROM reactor.job_events), (SELECT id FROM reactor.job_events),
          'payload.id is the row''s id');
SELECT is((SELECT payload ->> 'at' FROM reactor.job_events), (SELECT reactor.iso_time(created_at) FROM reactor.job_events),
          'payload.at is the row''s created_at');
SELECT ok((SELECT payload ->> 'at' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$' FROM reactor.job_events),
          'payload.at is ISO-8601 UTC with a Z');
SELECT ok((SELECT created_at >= now() AND created_at <= clock_timestamp() FROM reactor.job_events),
          'created_at is the time of the event (clock_timestamp)');
SELECT is((SELECT txid FROM reactor.job_events), pg_current_xact_id(), 'txid is the writing transaction');
SELECT is((SELECT jsonb_typeof(payload -> 'id') FROM reactor.job_events), 'number', 'payload.id is a JSON number');

-- start_job: 'status' running, with the attempt and the running deadline
SELECT reactor.start_job('job_42', 'scheduled') AS exec_id \gset
SELECT results_eq(
  $$SELECT kind, status, old_status, payload ->> 'attempt', payload ->> 'deadline'
      FROM reactor.job_events ORDER BY id DESC LIMIT 1$$,
  $$SELECT 'status', 'running', 'pending', '1', reactor.iso_time(started_at + interval '600 seconds')
      FROM reactor.scheduled_jobs WHERE id = 'job_42'$$,
  'start_job makes one event: running, old_status pending, attempt 1, deadline started_at + timeout_seconds');
SELECT is((SELECT count(*)::integer FROM reactor.job_events), 2, 'start_job makes exactly one event');

-- Progress: a 'progress' event, old_status = status
SELECT reactor.update_job_progress('job_42', 30, 'fetching') \gset
SELECT results_eq(
  $$SELECT kind, status, old_status, payload -> 'progress', payload ->> 'message', payload ->> 'attempt'
      FROM reactor.job_events ORDER BY id DESC LIMIT 1$$,
  $$VALUES ('progress', 'running', 'running', '30'::jsonb, 'fetching', '1')$$,
  'update_job_progress makes a progress event with progress and message');
SELECT reactor.update_job_progress('job_42', 30, 'fetching') \gset
SELECT is((SELECT count(*)::integer FROM reactor.job_events), 3, 'reporting the same progress again makes no event');
UPDATE reactor.scheduled_jobs SET progress_message = 'parsing' WHERE id = 'job_42';
SELECT is((SELECT kind FROM reactor.job_events ORDER BY id DESC LIMIT 1), 'progress', 'a changed message alone is a progress event');
UPDATE reactor.scheduled_jobs SET result = '{"partial": true}' WHERE id = 'job_42';
SELECT results_eq($$SELECT kind, payload -> 'result' FROM reactor.job_events ORDER BY id DESC LIMIT 1$$,
                  $$VALUES ('progress', '{"partial": true}'::jsonb)$$, 'a changed result alone is a progress event carrying it');
SELECT is((SELECT count(*)::integer FROM reactor.job_events), 5, 'so far five events');

-- Changes to other columns make no event
UPDATE reactor.scheduled_jobs SET parameters = '{"a": 1}', priority = 'high', last_error = 'noise' WHERE id = 'job_42';
UPDATE reactor.scheduled_jobs SET status = 'running' WHERE id = 'job_42';
UPDATE reactor.scheduled_jobs SET result = '{"partial": true}' WHERE id = 'job_42';
SELECT is((SELECT count(*)::integer FROM reactor.job_events), 5,
          'updates of other columns, or that set a value it already had, make no event');

-- A status change together with progress is one 'status' event
UPDATE reactor.scheduled_jobs SET status = 'pending', progress_percent = 0 WHERE id = 'job_42';
SELECT results_eq($$SELECT kind, status, old_status, payload -> 'progress' FROM reactor.job_events ORDER BY id DESC LIMIT 1$$,
                  $$VALUES ('status', 'pending', 'running', '0'::jsonb)$$,
                  'status and progress changed together: one status event with the new progress');
SELECT is((SELECT count(*)::integer FROM reactor.job_events), 6, 'exactly one event for that update');
UPDATE reactor.scheduled_jobs SET status = 'running', started_at = now() WHERE id = 'job_42';

-- complete_job: result and the final status
SELECT reactor.complete_job('job_42', :exec_id, '{"synced": 12}') \gset
SELECT results_eq(
  $$SELECT kind, status, old_status, payload -> 'result', payload -> 'deadline', payload -> 'error'
      FROM reactor.job_events ORDER BY id DESC LIMIT 1$$,
  $$VALUES ('status', 'completed', 'running', '{"synced": 12}'::jsonb, 'null'::jsonb, 'null'::jsonb)$$,
  'complete_job: a completed event with the result and no deadline');

-- fail_job: the error, and the retry's deadline
INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('flaky', 'auto_sync');
SELECT reactor.start_job('flaky') AS flaky_exec \gset
SELECT reactor.fail_job('flaky', :flaky_exec, 'connection refused') \gset
SELECT results_eq(
  $$SELECT kind, status, old_status, payload ->> 'error', payload ->> 'deadline', payload ->> 'scheduled_for', payload -> 'attempt'
      FROM reactor.job_events WHERE job_id = 'flaky' ORDER BY id DESC LIMIT 1$$,
  $$VALUES ('status', 'pending', 'running', 'connection refused', reactor.iso_time(now() + interval '60 seconds'),
            reactor.iso_time(now() + interval '60 seconds'), '1'::jsonb)$$,
  'fail_job: pending again with the error, due (deadline) at the retry time');
SELECT reactor.start_job('flaky', 'retry') AS flaky_exec \gset
SELECT is((SELECT payload -> 'attempt' FROM reactor.job_events WHERE job_id = 'flaky' ORDER BY id DESC LIMIT 1),
          '2'::jsonb, 'the retry''s running event says attempt 2');
SELECT is((SELECT payload ->> 'deadline' FROM reactor.job_events WHERE job_id = 'flaky' ORDER BY id DESC LIMIT 1),
          (SELECT reactor.iso_time(started_at + interval '1800 seconds') FROM reactor.scheduled_jobs WHERE id = 'flaky'),
          'without timeout_seconds a running job''s deadline uses stuck_timeout_seconds (1800)');
UPDATE reactor.scheduler_config SET stuck_timeout_seconds = NULL;
UPDATE reactor.scheduled_jobs SET progress_percent = 1 WHERE id = 'flaky';
SELECT is((SELECT payload -> 'deadline' FROM reactor.job_events WHERE job_id = 'flaky' ORDER BY id DESC LIMIT 1),
          'null'::jsonb, 'no timeout at all: no deadline');
UPDATE reactor.scheduler_config SET stuck_timeout_seconds = 1800;

-- cancel_job
SELECT reactor.cancel_job('flaky') \gset
SELECT results_eq($$SELECT kind, status, old_status FROM reactor.job_events WHERE job_id = 'flaky' ORDER BY id DESC LIMIT 1$$,
                  $$VALUES ('status', 'cancelled', 'running')$$, 'cancel_job: a cancelled event');

-- deadline of pending jobs
INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for, expires_at)
VALUES ('expiring', 't', '2030-01-01 00:00+00', '2029-06-01 00:00+00'),
       ('later_expiry', 't', '2030-01-01 00:00+00', '2030-06-01 00:00+00');
SELECT results_eq($$SELECT job_id, payload ->> 'deadline' FROM reactor.job_events
                     WHERE job_id IN ('expiring', 'later_expiry') ORDER BY job_id$$,
                  $$VALUES ('expiring', '2029-06-01T00:00:00Z'), ('later_expiry', '2030-01-01T00:00:00Z')$$,
                  'a pending job''s deadline is the earlier of scheduled_for and expires_at');
UPDATE reactor.scheduled_jobs SET enabled = false, status = 'pending' WHERE id = 'expiring';
INSERT INTO reactor.scheduled_jobs (id, job_type, enabled) VALUES ('disabled', 't', false);
SELECT is((SELECT payload -> 'deadline' FROM reactor.job_events WHERE job_id = 'disabled'), 'null'::jsonb,
          'a disabled pending job has no deadline');

-- Several rows in one statement: one event each, ids increasing
INSERT INTO reactor.scheduled_jobs (id, job_type, user_id, priority)
SELECT 'bulk_' || i, 'bulk', 'u' || (i % 3), 'low' FROM generate_series(1, 50) AS i;
SELECT is((SELECT count(*)::integer FROM reactor.job_events WHERE job_type = 'bulk'), 50, '50 inserted rows, 50 events');
UPDATE reactor.scheduled_jobs SET status = 'cancelled' WHERE job_type = 'bulk';
SELECT is((SELECT count(*)::integer FROM reactor.job_events WHERE job_type = 'bulk' AND status = 'cancelled'), 50,
          'a 50-row status update, 50 events');
SELECT is((SELECT count(DISTINCT id)::integer FROM reactor.job_events), (SELECT count(*)::integer FROM reactor.job_events),
          'event ids are unique');
SELECT is((SELECT count(*)::integer FROM reactor.job_events WHERE (payload ->> 'id')::bigint <> id), 0,
          'every payload id equals its row id');
SELECT is((SELECT count(*)::integer FROM (SELECT id, created_at, lag(created_at) OVER (ORDER BY id) AS prev
                                            FROM reactor.job_events) s WHERE created_at < prev), 0,
          'within a transaction, a later id never has an earlier time');
SELECT is((SELECT count(DISTINCT txid)::integer FROM reactor.job_events), 1,
          'all events of this transaction carry its txid');
SELECT results_eq($$SELECT user_id, count(*)::integer FROM reactor.job_events WHERE job_type = 'bulk' AND kind = 'status'
                     AND old_status IS NULL GROUP BY user_id ORDER BY user_id$$,
                  $$VALUES ('u0', 16), ('u1', 17), ('u2', 17)$$, 'each event carries its row''s user_id');

-- Deleting a job makes no event; its events stay in the log
SELECT count(*)::integer AS before_delete FROM reactor.job_events \gset
DELETE FROM reactor.scheduled_jobs WHERE job_type = 'bulk';
SELECT is((SELECT count(*)::integer FROM reactor.job_events), :before_delete, 'a delete makes no event and keeps the log');

-- A job without user
INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('system', 'weekly_trends');
SELECT is((SELECT payload -> 'user_id' FROM reactor.job_events WHERE job_id = 'system'), 'null'::jsonb,
          'a system-wide job''s event has user_id null');

-- The event is written even when the writer may not write reactor.job_events
CREATE ROLE reactor_test_writer;
GRANT USAGE ON SCHEMA reactor TO reactor_test_writer;
GRANT SELECT, INSERT, UPDATE ON reactor.scheduled_jobs TO reactor_test_writer;
GRANT SELECT ON reactor.job_executions TO reactor_test_writer;
SET LOCAL ROLE reactor_test_writer;
SELECT throws_ok($$INSERT INTO reactor.job_events (job_id, source, kind, payload) VALUES ('x', 'y', 'status', '{}')$$,
                 '42501', NULL, 'the writer role cannot write the log directly');
SELECT throws_ok($$SELECT reactor.emit_event('reactor.scheduled_jobs', 'status', '{}', NULL, 'id', 'status', NULL, NULL)$$,
                 '42501', NULL, 'nor forge events through the internal emit_event');
SELECT lives_ok($$INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('by_writer', 't')$$,
                'the writer role inserts a job');
RESET ROLE;
SELECT is((SELECT count(*)::integer FROM reactor.job_events WHERE job_id = 'by_writer'), 1,
          'and its event is in the log');

-- The channel setting does not change the stored event
SET LOCAL reactor.channel = 'other_channel';
UPDATE reactor.scheduled_jobs SET status = 'cancelled' WHERE id = 'system';
SELECT is((SELECT kind FROM reactor.job_events WHERE job_id = 'system' ORDER BY id DESC LIMIT 1), 'status',
          'with reactor.channel set the event is still logged');

SELECT * FROM finish();
ROLLBACK;
