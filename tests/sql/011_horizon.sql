-- job_events.horizon: an event that commits after another, though it took a lower id,
-- always has txid >= the other's horizon. A subscriber resuming after event X is served
-- `txid >= X.horizon`, which must include every event committed after X.
SELECT plan(4);

CREATE EXTENSION IF NOT EXISTS dblink;
SELECT format('host=%s port=%s dbname=%s user=%s',
              split_part(current_setting('unix_socket_directories'), ',', 1),
              current_setting('port'), current_database(), current_user) AS conninfo \gset
SELECT dblink_connect('early', :'conninfo') \gset

INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('a', 't'), ('b', 't');
SELECT is((SELECT bool_and(horizon <= txid) FROM reactor.job_events), true,
          'a row''s horizon is never above its own transaction');

-- The other session takes an event id first and stays open...
SELECT dblink_exec('early', 'BEGIN') \gset
SELECT dblink_exec('early', $$UPDATE reactor.scheduled_jobs SET status = 'running' WHERE id = 'a'$$) \gset
-- ...this one takes a higher id and commits first.
UPDATE reactor.scheduled_jobs SET status = 'running' WHERE id = 'b';
SELECT dblink_exec('early', 'COMMIT') \gset

SELECT id AS early_id, txid AS early_txid FROM reactor.job_events
 WHERE job_id = 'a' AND status = 'running' \gset
SELECT id AS late_id, horizon AS late_horizon FROM reactor.job_events
 WHERE job_id = 'b' AND status = 'running' \gset

SELECT ok(:early_id < :late_id, 'the event that committed last took the lower id');
SELECT ok(:'early_txid'::xid8 >= :'late_horizon'::xid8,
          'its txid is at or above the horizon of the event that committed before it');
SELECT is((SELECT count(*)::int FROM reactor.job_events
            WHERE txid >= :'late_horizon'::xid8 AND id = :early_id), 1,
          'resuming after the later-id event finds the lower-id one');

SELECT dblink_disconnect('early') \gset
SELECT * FROM finish();
