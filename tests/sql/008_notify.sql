-- The NOTIFY of each event, as a listener sees it: a dblink session LISTENs while this
-- session commits, then its notifications are read with dblink_get_notify. Also the
-- truncated form above 7900 bytes, the channel setting, and what a reader of the log
-- needs to tell "not yet committed" from "never".
SELECT plan(37);

CREATE EXTENSION IF NOT EXISTS dblink;
SELECT format('host=%s port=%s dbname=%s user=%s',
              split_part(current_setting('unix_socket_directories'), ',', 1),
              current_setting('port'), current_database(), current_user) AS conninfo \gset
SELECT dblink_connect('listener', :'conninfo') \gset
SELECT dblink_exec('listener', 'LISTEN job_status_changed') \gset
SELECT dblink_exec('listener', 'LISTEN other_channel') \gset
SELECT dblink_exec('listener', 'LISTEN db_channel') \gset

-- `raw` is the notification as sent, signed (migration 003); `payload` the event JSON in
-- it, the mac, txid and horizon (migration 005) fields taken out.
CREATE TABLE notes (n serial PRIMARY KEY, channel text, payload text, raw text);
CREATE FUNCTION unsigned_text(note text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT regexp_replace(note, '^\{"mac":"[0-9a-f]{64}","txid":"[0-9]+",("horizon":"[0-9]+",)?', '{')
$$;
-- Moves the listener's notifications into `notes` until there are `want` in all, or two
-- seconds pass with none arriving (delivery to the listener is asynchronous).
CREATE FUNCTION collect(want integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  got integer;
  idle_until timestamptz := clock_timestamp() + interval '2 seconds';
  fresh integer;
BEGIN
  LOOP
    INSERT INTO notes (channel, payload, raw)
      SELECT notify_name, unsigned_text(extra), extra FROM dblink_get_notify('listener');
    GET DIAGNOSTICS fresh = ROW_COUNT;
    IF fresh > 0 THEN
      idle_until := clock_timestamp() + interval '2 seconds';
    END IF;
    SELECT count(*) INTO got FROM notes;
    EXIT WHEN got >= want OR clock_timestamp() > idle_until;
    PERFORM pg_sleep(0.01);
  END LOOP;
  RETURN got;
END
$$;

-- One committed insert: one notification, the same bytes as the logged payload
INSERT INTO reactor.scheduled_jobs (id, job_type, user_id) VALUES ('n1', 'auto_sync', 'u1');
SELECT is(collect(1), 1, 'a committed insert sends one notification');
SELECT is((SELECT channel FROM notes), 'job_status_changed', 'on the channel job_status_changed');
SELECT is((SELECT payload FROM notes), (SELECT payload::text FROM reactor.job_events WHERE job_id = 'n1'),
          'the notification is byte for byte the logged payload''s text');
SELECT is((SELECT payload::jsonb ->> 'kind' FROM notes), 'status', 'its kind is status');
SELECT is((SELECT (payload::jsonb ->> 'id')::bigint FROM notes), (SELECT id FROM reactor.job_events WHERE job_id = 'n1'),
          'its id is the event row''s id');
TRUNCATE notes;

-- A transaction with several events: all delivered at commit, in id order
BEGIN;
SELECT reactor.start_job('n1') AS n1_exec \gset
SELECT reactor.update_job_progress('n1', 50, 'half') \gset
SELECT reactor.complete_job('n1', :n1_exec, '{"ok": true}') \gset
SELECT is(collect(1), 0, 'nothing is delivered before commit');
COMMIT;
SELECT is(collect(3), 3, 'start, progress and complete: three notifications at commit');
SELECT is(ARRAY(SELECT payload::jsonb ->> 'kind' FROM notes ORDER BY n), ARRAY['status', 'progress', 'status'],
          'kinds status, progress, status');
SELECT is(ARRAY(SELECT payload::jsonb ->> 'status' FROM notes ORDER BY n), ARRAY['running', 'running', 'completed'],
          'statuses running, running, completed');
SELECT is(ARRAY(SELECT (payload::jsonb ->> 'id')::bigint FROM notes ORDER BY n),
          ARRAY(SELECT id FROM reactor.job_events WHERE job_id = 'n1' ORDER BY id OFFSET 1),
          'delivered in id order, the ids of the logged events');
SELECT is((SELECT count(*)::integer FROM notes n JOIN reactor.job_events e ON e.payload::text = n.payload), 3,
          'each notification equals its logged payload');
TRUNCATE notes;

-- An attached table of the user's notifies the same way
CREATE TABLE public.job_queue (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), status text NOT NULL,
                               user_id text, job_type text, progress_percent integer);
SELECT reactor.attach('public.job_queue', 'id', 'status', 'user_id', 'job_type') \gset
INSERT INTO public.job_queue (status, user_id, job_type) VALUES ('pending', 'u9', 'sync');
SELECT is(collect(1), 1, 'an insert into an attached table sends one notification');
SELECT is((SELECT payload FROM notes), (SELECT payload::text FROM reactor.job_events WHERE source = 'job_queue'),
          'the same bytes as its logged event');
TRUNCATE notes;

-- A rolled back transaction: no notification, no event row
SELECT count(*)::integer AS events_before FROM reactor.job_events \gset
BEGIN;
INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('ghost', 't');
ROLLBACK;
SELECT is(collect(1), 0, 'a rolled back insert sends nothing');
SELECT is((SELECT count(*)::integer FROM reactor.job_events), :events_before, 'and logs nothing');

-- A signed notification (migration 003) over 7900 bytes: the truncated form, signed; the
-- log keeps the full event
INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('big', 't');
SELECT reactor.start_job('big') AS big_exec \gset
SELECT reactor.complete_job('big', :big_exec, jsonb_build_object('blob', repeat('x', 9000))) \gset
SELECT is(collect(3), 3, 'three notifications for the big job');
SELECT is((SELECT payload FROM notes ORDER BY n DESC LIMIT 1),
          (SELECT jsonb_build_object('id', id, 'kind', 'status', 'job_id', 'big', 'status', 'completed',
                                     'cause', 'worker', 'truncated', true)::text
             FROM reactor.job_events WHERE job_id = 'big' ORDER BY id DESC LIMIT 1),
          'the oversized event is notified as {id, kind, job_id, status, cause, truncated: true}');
SELECT is((SELECT payload -> 'result' ->> 'blob' FROM reactor.job_events WHERE job_id = 'big' ORDER BY id DESC LIMIT 1),
          repeat('x', 9000), 'the logged event keeps the full result');
SELECT ok((SELECT octet_length(raw) < 300 FROM notes ORDER BY n DESC LIMIT 1), 'the truncated notification is small');
TRUNCATE notes;

-- Bytes, not characters: 4000 two-byte characters are 8000 bytes
INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('wide', 't');
SELECT reactor.start_job('wide') AS wide_exec \gset
UPDATE reactor.scheduled_jobs SET progress_message = repeat('é', 4000) WHERE id = 'wide';
SELECT is(collect(3), 3, 'three notifications for the wide job');
SELECT is((SELECT payload::jsonb ->> 'truncated' FROM notes ORDER BY n DESC LIMIT 1), 'true',
          'a payload of fewer than 7900 characters but more than 7900 bytes is truncated');
TRUNCATE notes;

-- The boundary: signed notifications of 7880 to 7920 bytes; truncated exactly when above
-- 7900. The signature adds 83 bytes and the txid's digits to the event JSON, the row's
-- horizon (migration 005) 13 bytes and its digits.
INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('edge', 't');
SELECT reactor.start_job('edge') AS edge_exec \gset
UPDATE reactor.scheduled_jobs SET result = to_jsonb(''::text) WHERE id = 'edge';
SELECT set_config('test.base_len', octet_length(payload::text)::text, false)
  FROM reactor.job_events WHERE job_id = 'edge' ORDER BY id DESC LIMIT 1 \gset
BEGIN;
DO $$
DECLARE
  k integer;
  base integer := current_setting('test.base_len')::integer + 83 + octet_length(pg_current_xact_id()::text)
                  + 13 + octet_length(pg_snapshot_xmin(pg_current_snapshot())::text);
BEGIN
  -- Each update of the result is a progress event whose signed form is about base + k bytes.
  FOR k IN (7880 - base) .. (7920 - base) LOOP
    UPDATE reactor.scheduled_jobs SET result = to_jsonb(repeat('y', k)) WHERE id = 'edge';
  END LOOP;
END
$$;
COMMIT;
SELECT is(collect(44), 44, 'start, result "", and 41 more progress notifications');
CREATE TEMP VIEW edge AS
  SELECT e.id, octet_length(e.payload::text) + 83 + octet_length(e.txid::text)
               + 13 + octet_length(e.horizon::text) AS len, n.payload AS note, n.raw
    FROM reactor.job_events e JOIN notes n ON (n.payload::jsonb ->> 'id')::bigint = e.id
   WHERE e.job_id = 'edge' AND e.kind = 'progress' AND e.payload -> 'result' <> '""'::jsonb;
SELECT is((SELECT count(*)::integer FROM edge), 41, '41 boundary events matched to their notifications');
SELECT is((SELECT count(*)::integer FROM edge WHERE (note::jsonb ? 'truncated') <> (len > 7900)), 0,
          'every one is truncated if and only if its signed form is above 7900 bytes');
SELECT is((SELECT count(*)::integer FROM edge WHERE len <= 7900 AND note <> (SELECT payload::text FROM reactor.job_events WHERE id = edge.id)), 0,
          'the ones at or below 7900 bytes are sent whole');
SELECT is((SELECT count(*)::integer FROM edge WHERE len <= 7900 AND octet_length(raw) <> len), 0,
          'and those are exactly as long as computed (event + 83 + txid digits + 13 + horizon digits)');
SELECT ok(EXISTS (SELECT 1 FROM edge WHERE len = 7900 AND NOT note::jsonb ? 'truncated'),
          'a signed notification of exactly 7900 bytes is sent whole');
SELECT ok(EXISTS (SELECT 1 FROM edge WHERE len = 7901 AND note::jsonb ? 'truncated'),
          'one of 7901 bytes is truncated');
SELECT is((SELECT max(octet_length(raw)) FROM notes) <= 7900, true, 'no notification is over 7900 bytes');
TRUNCATE notes;

-- The channel: the session setting reactor.channel ...
SET reactor.channel = 'other_channel';
INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('rerouted', 't');
RESET reactor.channel;
SELECT is(collect(1), 1, 'one notification');
SELECT is((SELECT channel FROM notes), 'other_channel', 'SET reactor.channel moves the notifications to that channel');
TRUNCATE notes;
-- ... and the per-database default an operator sets with ALTER DATABASE
SELECT format('ALTER DATABASE %I SET reactor.channel = %L', current_database(), 'db_channel') AS alter_db \gset
:alter_db;
SELECT dblink_connect('writer', :'conninfo') \gset
SELECT dblink_exec('writer', $$INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('per_db', 't')$$) \gset
SELECT is(collect(1), 1, 'a new session writes a job: one notification');
SELECT is((SELECT channel FROM notes), 'db_channel', 'ALTER DATABASE ... SET reactor.channel applies to new sessions');
SELECT dblink_disconnect('writer') \gset
TRUNCATE notes;

-- Ids are taken before commit: a reader can see a higher id before a lower one commits.
-- The txid column and the reader's snapshot tell it which events may still appear.
SELECT dblink_connect('slow', :'conninfo') \gset
SELECT dblink_exec('slow', 'BEGIN') \gset
SELECT dblink_exec('slow', $$INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('slow', 't')$$) \gset
SELECT slow_txid FROM dblink('slow', 'SELECT pg_current_xact_id()::text') AS t(slow_txid text) \gset
INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('fast', 't');
SELECT ok((SELECT max(id) FROM reactor.job_events WHERE job_id = 'fast') IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM reactor.job_events WHERE job_id = 'slow'),
          'the later transaction''s event is visible while the earlier one''s is not');
SELECT ok(:'slow_txid'::xid8 IN (SELECT pg_snapshot_xip(pg_current_snapshot()))
          AND pg_snapshot_xmin(pg_current_snapshot()) <= :'slow_txid'::xid8,
          'the reader''s snapshot lists the open writer: events with txid >= its xmin are not settled');
-- A read now (docs/delivery.md): its horizon is the oldest running transaction
SELECT max(id) AS last_id, pg_snapshot_xmin(pg_current_snapshot()) AS read_horizon FROM reactor.job_events \gset
SELECT dblink_exec('slow', 'COMMIT') \gset
SELECT results_eq(format($$SELECT job_id FROM reactor.job_events WHERE txid >= %L::xid8 AND id <= %s ORDER BY id$$,
                         :'read_horizon', :last_id),
                  $$VALUES ('slow'), ('fast')$$,
                  'the next read (txid >= the last read''s horizon) returns the late event (and the one already seen, dropped by id)');
SELECT ok((SELECT id FROM reactor.job_events WHERE job_id = 'slow') < (SELECT id FROM reactor.job_events WHERE job_id = 'fast')
          AND (SELECT txid FROM reactor.job_events WHERE job_id = 'slow') = :'slow_txid'::xid8,
          'after its commit the lower id appears, with the txid of its transaction');
SELECT dblink_disconnect('slow') \gset

SELECT * FROM finish();
SELECT dblink_disconnect('listener') \gset
