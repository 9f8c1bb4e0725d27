-- What a listener hears from the scheduler's side: due events written by tick(), and the
-- "config" doorbells (no log row) when scheduler_config or a job's scheduling columns
-- change without an event. A dblink session LISTENs while this session commits.
SELECT plan(15);

CREATE EXTENSION IF NOT EXISTS dblink;
SELECT format('host=%s port=%s dbname=%s user=%s',
              split_part(current_setting('unix_socket_directories'), ',', 1),
              current_setting('port'), current_database(), current_user) AS conninfo \gset
SELECT dblink_connect('listener', :'conninfo') \gset
SELECT dblink_exec('listener', 'LISTEN job_status_changed') \gset

-- `raw` is the notification as sent, signed (migration 003); `payload` the event JSON in
-- it, the mac, txid and horizon (migration 005) fields taken out.
CREATE TABLE notes (n serial PRIMARY KEY, channel text, payload text, raw text);
CREATE FUNCTION unsigned_text(note text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT regexp_replace(note, '^\{"mac":"[0-9a-f]{64}","txid":"[0-9]+",("horizon":"[0-9]+",)?', '{')
$$;
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

-- A due event is notified like any event
INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for) VALUES ('due_me', 't', now() - interval '1 minute');
SELECT is(collect(1), 1, 'the insert is notified');
TRUNCATE notes;
SELECT reactor.tick() \gset
SELECT is(collect(1), 1, 'tick''s due event sends one notification');
SELECT is((SELECT payload FROM notes), (SELECT payload::text FROM reactor.job_events WHERE job_id = 'due_me' AND kind = 'due'),
          'the same bytes as the logged due event');
SELECT reactor.tick() \gset
SELECT is(collect(2), 1, 'a second tick sends nothing');
TRUNCATE notes;

-- scheduler_config changes ring the doorbell, without a log row
SELECT count(*)::integer AS events_before FROM reactor.job_events \gset
UPDATE reactor.scheduler_config SET enabled = false;
SELECT is(collect(1), 1, 'disabling the scheduler sends one notification');
SELECT is((SELECT payload FROM notes), '{"kind": "config", "source": "scheduler_config"}',
          'it is {"kind": "config", "source": "scheduler_config"}');
SELECT is((SELECT count(*)::integer FROM reactor.job_events), :events_before, 'and writes no event row');
TRUNCATE notes;
UPDATE reactor.scheduler_config SET enabled = true, stuck_timeout_seconds = 900;
SELECT is(collect(1), 1, 'enabling it (and changing the timeout) sends one more');
TRUNCATE notes;

-- A job's scheduling columns changed without a status change
UPDATE reactor.scheduled_jobs SET scheduled_for = now() + interval '1 hour' WHERE id = 'due_me';
SELECT is(collect(1), 1, 'moving scheduled_for sends one notification');
SELECT is((SELECT payload FROM notes), '{"kind": "config", "job_id": "due_me", "source": "scheduled_jobs"}',
          'a config doorbell naming the job');
SELECT is((SELECT count(*)::integer FROM reactor.job_events), :events_before, 'and no event row');
TRUNCATE notes;
UPDATE reactor.scheduled_jobs SET enabled = false WHERE id = 'due_me';
UPDATE reactor.scheduled_jobs SET expires_at = now() + interval '1 day' WHERE id = 'due_me';
UPDATE reactor.scheduled_jobs SET timeout_seconds = 30 WHERE id = 'due_me';
SELECT is(collect(3), 3, 'enabled, expires_at and timeout_seconds changes each ring it');
TRUNCATE notes;
UPDATE reactor.scheduled_jobs SET parameters = '{"x": 1}', priority = 'high' WHERE id = 'due_me';
SELECT is(collect(1), 0, 'other columns do not');
UPDATE reactor.scheduled_jobs SET status = 'cancelled', scheduled_for = now() WHERE id = 'due_me';
SELECT is(collect(1), 1, 'a status change with a new scheduled_for sends only its event');
SELECT is((SELECT payload::jsonb ->> 'kind' FROM notes), 'status', 'the status event');

SELECT * FROM finish();
SELECT dblink_disconnect('listener') \gset
