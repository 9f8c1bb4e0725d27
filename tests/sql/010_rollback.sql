-- The rollbacks applied with psql, newest first: 006_console.down.sql takes the cause out
-- of the events (005's emit_event, 001's complete_job and fail_job, 004's tick and
-- time_out), drops job_action and the log's cause and actor columns, keeps the events of
-- kind 'action'; re-applied by `reactor migrate`, the events written meanwhile read cause
-- 'sql'. 005_notify_horizon.down.sql gives
-- emit_event back its 003 form (no horizon sent); 004_tick_scale.down.sql puts 002's tick()
-- back and drops the due queue, its trigger and the leader table; 003_notify_mac.down.sql makes the
-- notifications unsigned again and drops the key; 002_tick.down.sql removes 002's objects
-- and leaves 001 working; 001_schema.down.sql removes every object of 001 (also the
-- triggers on attached user tables, not the tables), refuses while 002 is applied; both
-- forget their migration and can run twice; the real `reactor migrate` then applies
-- them again. Paths are relative to the repository root, where tools/test runs pg_prove.
SELECT plan(95);
\set down1_sql `cat sql/migrations/001_schema.down.sql`
\set down2_sql `cat sql/migrations/002_tick.down.sql`
\set down3_sql `cat sql/migrations/003_notify_mac.down.sql`
\set down4_sql `cat sql/migrations/004_tick_scale.down.sql`
\set down5_sql `cat sql/migrations/005_notify_horizon.down.sql`
\set down6_sql `cat sql/migrations/006_console.down.sql`

CREATE TABLE public.user_jobs (id integer PRIMARY KEY, status text);
SELECT reactor.attach('public.user_jobs') \gset
INSERT INTO public.user_jobs VALUES (1, 'new');
INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for) VALUES ('doomed', 't', now() - interval '1 minute');
SELECT reactor.tick() \gset
INSERT INTO reactor.scheduled_jobs (id, job_type, user_id) VALUES ('acted', 't', 'u1');
SELECT reactor.job_action('acted', 'disable', 'alice') \gset
SELECT results_eq($$SELECT version, name FROM reactor.schema_migrations ORDER BY version$$,
                  $$VALUES (1, '001_schema.sql'), (2, '002_tick.sql'), (3, '003_notify_mac.sql'), (4, '004_tick_scale.sql'),
                           (5, '005_notify_horizon.sql'), (6, '006_console.sql')$$,
                  'before: 001 to 006 are recorded');

-- 001 to 004 cannot go first
SELECT throws_ok(:'down1_sql', '2BP01', 'roll back the later migrations first: 006_console.sql, 005_notify_horizon.sql, 004_tick_scale.sql, 003_notify_mac.sql, 002_tick.sql',
                 'the rollback of 001 refuses while 002 to 006 are applied');
SELECT throws_ok(:'down2_sql', '2BP01', 'roll back the later migrations first: 006_console.sql, 005_notify_horizon.sql, 004_tick_scale.sql, 003_notify_mac.sql',
                 'the rollback of 002 refuses while 003 to 006 are applied');
SELECT throws_ok(:'down3_sql', '2BP01', 'roll back the later migrations first: 006_console.sql, 005_notify_horizon.sql, 004_tick_scale.sql',
                 'the rollback of 003 refuses while 004 to 006 are applied');
SELECT throws_ok(:'down4_sql', '2BP01', 'roll back the later migrations first: 006_console.sql, 005_notify_horizon.sql',
                 'the rollback of 004 refuses while 005 and 006 are applied');
SELECT throws_ok(:'down5_sql', '2BP01', 'roll back the later migrations first: 006_console.sql',
                 'the rollback of 005 refuses while 006 is applied');

-- 006
SELECT ok(pg_get_functiondef('reactor.emit_event'::regproc) ~ 'reactor.cause', 'before: emit_event writes the cause');
SELECT is((SELECT count(*)::integer FROM reactor.job_events WHERE kind = 'action'), 1, 'before: one event of kind action');
\ir ../../sql/migrations/006_console.down.sql
SELECT ok(pg_get_functiondef('reactor.emit_event'::regproc) !~ 'reactor.cause'
          AND pg_get_functiondef('reactor.emit_event'::regproc) ~ 'ev_horizon',
          'the rollback of 006 gives emit_event back its 005 form (horizon, no cause)');
SELECT hasnt_function('reactor', f, 'and drops reactor.' || f) FROM unnest(ARRAY['job_action', 'fail_job_as']) AS f;
SELECT hasnt_column('reactor', 'job_events', c, 'and job_events.' || c) FROM unnest(ARRAY['cause', 'actor']) AS c;
SELECT is((SELECT count(*)::integer FROM pg_proc WHERE pronamespace = 'reactor'::regnamespace
             AND (prosrc ~ 'reactor.cause|fail_job_as' OR array_to_string(proconfig, ',') ~ 'reactor.cause')), 0,
          'no function sets or reads a cause any more (complete_job, fail_job, start_job, update_job_progress, time_out, tick)');
SELECT ok(pg_get_functiondef('reactor.tick'::regproc) ~ 'due_queue', 'tick() is 004''s');
SELECT is((SELECT count(*)::integer FROM reactor.job_events WHERE kind = 'action'), 1, 'the event of kind action stays in the log');
SELECT is((SELECT pg_get_constraintdef(oid) FROM pg_constraint
            WHERE conrelid = 'reactor.job_events'::regclass AND conname = 'job_events_kind_check'),
          'CHECK ((kind = ANY (ARRAY[''status''::text, ''progress''::text, ''due''::text]))) NOT VALID',
          'the kind CHECK of 001 is back, NOT VALID while such a row exists');
SELECT results_eq($$SELECT version FROM reactor.schema_migrations ORDER BY version$$, $$VALUES (1), (2), (3), (4), (5)$$,
                  '006 is forgotten, 001 to 005 are not');
-- Written without 006: a retry, a timeout and a recurrence through the restored functions
INSERT INTO reactor.scheduled_jobs (id, job_type, retry_backoff_seconds) VALUES ('after_006', 't', 0);
SELECT reactor.start_job('after_006') AS e \gset
SELECT reactor.fail_job('after_006', :e, 'flaky') \gset
SELECT reactor.start_job('after_006') AS e \gset
UPDATE reactor.scheduled_jobs SET timeout_seconds = 1, started_at = now() - interval '1 hour' WHERE id = 'after_006';
SELECT reactor.tick() \gset
SELECT results_eq($$SELECT status, error_count, last_error FROM reactor.scheduled_jobs WHERE id = 'after_006'$$,
                  $$VALUES ('pending', 2, 'timeout')$$, 'fail_job and a timeout through tick() work as before');
SELECT is((SELECT count(*)::integer FROM reactor.job_events WHERE job_id = 'after_006' AND payload ? 'cause'), 0,
          'and their events have no cause');
SELECT throws_ok($$INSERT INTO reactor.job_events (job_id, source, kind, payload) VALUES ('x', 'x', 'action', '{}')$$,
                 '23514', NULL, 'a new event of kind action is refused');
SET client_min_messages = warning;
SELECT lives_ok(:'down6_sql', 'running the rollback of 006 a second time is harmless');
RESET client_min_messages;
SELECT ok(pg_get_functiondef('reactor.emit_event'::regproc) ~ 'ev_horizon', 'and leaves 005''s emit_event');
-- 006 again, with the real migrate command: the events written meanwhile read 'sql'
\set migrate6_out `build/src/reactor migrate --database-url "host=:HOST port=:PORT dbname=:DBNAME user=:USER" 2>&1; echo "exit=$?"`
SELECT ok(:'migrate6_out' ~ 'applied migration 006_console.sql' AND :'migrate6_out' ~ 'exit=0$'
          AND :'migrate6_out' !~ 'applied migration 005', 'reactor migrate applies 006 alone again');
SELECT results_eq($$SELECT DISTINCT cause, actor FROM reactor.job_events WHERE job_id = 'after_006'$$,
                  $$VALUES ('sql', NULL::text)$$, 'the events written without 006 have cause sql and no actor');
SELECT is((SELECT pg_get_constraintdef(oid) FROM pg_constraint
            WHERE conrelid = 'reactor.job_events'::regclass AND conname = 'job_events_kind_check'),
          'CHECK ((kind = ANY (ARRAY[''status''::text, ''progress''::text, ''due''::text, ''action''::text])))',
          'the kind CHECK admits action again, validated');
SELECT ok(reactor.job_action('acted', 'enable', 'alice') > 0, 'and actions work again');
SELECT results_eq($$SELECT cause, actor FROM reactor.job_events WHERE job_id = 'acted' ORDER BY id DESC LIMIT 1$$,
                  $$VALUES ('user', 'alice')$$, 'with their cause and actor');
\ir ../../sql/migrations/006_console.down.sql
SELECT results_eq($$SELECT version FROM reactor.schema_migrations ORDER BY version$$, $$VALUES (1), (2), (3), (4), (5)$$,
                  'rolled back once more');

-- 005
SELECT ok(pg_get_functiondef('reactor.emit_event'::regproc) ~ 'ev_horizon', 'before: emit_event sends the horizon');
\ir ../../sql/migrations/005_notify_horizon.down.sql
SELECT ok(pg_get_functiondef('reactor.emit_event'::regproc) !~ 'ev_horizon'
          AND pg_get_functiondef('reactor.emit_event'::regproc) ~ 'sign_notification',
          'the rollback of 005 gives emit_event back its 003 form (signed, no horizon)');
SELECT results_eq($$SELECT version FROM reactor.schema_migrations ORDER BY version$$, $$VALUES (1), (2), (3), (4)$$,
                  '005 is forgotten, 001 to 004 are not');
SELECT lives_ok(:'down5_sql', 'running the rollback of 005 a second time is harmless');
SELECT has_function('reactor', 'tick', ARRAY[]::text[], 'and leaves everything in place');
SELECT has_table('reactor', 'notify_key', 'the key too');

-- 004
SELECT ok(pg_get_functiondef('reactor.tick'::regproc) ~ 'due_queue', 'before: tick() reads the due queue');
\ir ../../sql/migrations/004_tick_scale.down.sql
SELECT hasnt_table('reactor', t, 'the rollback of 004 drops reactor.' || t)
  FROM unnest(ARRAY['due_queue', 'scheduler_leader']) AS t;
SELECT is((SELECT count(*)::integer FROM pg_proc WHERE pronamespace = 'reactor'::regnamespace
             AND proname IN ('timeout_at', 'due_queue_sync', 'track_due', 'time_out', 'tick_budget_ms')), 0,
          'and its functions');
SELECT hasnt_index('reactor', 'scheduled_jobs', i, 'and index ' || i)
  FROM unnest(ARRAY['idx_scheduled_jobs_running_timeout', 'idx_scheduled_jobs_running_stuck']) AS i;
SELECT hasnt_column('reactor', 'due_announcements', 'left_pending', 'and due_announcements.left_pending');
SELECT is((SELECT count(*)::integer FROM pg_trigger WHERE tgrelid = 'reactor.scheduled_jobs'::regclass
             AND tgname LIKE 'scheduled_jobs_track_due%'), 0, 'and its triggers');
SELECT ok(pg_get_functiondef('reactor.tick'::regproc) !~ 'due_queue'
          AND pg_get_functiondef('reactor.tick'::regproc) ~ 'NOT EXISTS \(SELECT 1 FROM reactor.due_announcements',
          'tick() is 002''s again');
SELECT results_eq($$SELECT version FROM reactor.schema_migrations ORDER BY version$$, $$VALUES (1), (2), (3)$$,
                  '004 is forgotten, 001 to 003 are not');
INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for) VALUES ('due_after_004', 't', now() - interval '1 second');
SELECT reactor.tick() \gset
SELECT reactor.tick() \gset
SELECT is((SELECT count(*)::integer FROM reactor.job_events WHERE job_id = 'due_after_004' AND kind = 'due'), 1,
          '002''s tick() announces a due job once');
SET client_min_messages = warning;
SELECT lives_ok(:'down4_sql', 'running the rollback of 004 a second time is harmless');
RESET client_min_messages;

-- 003
SELECT ok(pg_get_functiondef('reactor.emit_event'::regproc) ~ 'sign_notification'
          AND pg_get_functiondef('reactor.notify_config'::regproc) ~ 'sign_notification',
          'before: emit_event and notify_config sign');
\ir ../../sql/migrations/003_notify_mac.down.sql
SELECT hasnt_table('reactor', 'notify_key', 'the rollback of 003 drops reactor.notify_key');
SELECT is((SELECT count(*)::integer FROM pg_proc WHERE pronamespace = 'reactor'::regnamespace
             AND proname IN ('sign_notification', 'new_notify_key', 'hmac_pad', 'hmac_sha256', 'notify_key_pads')), 0,
          'and its functions');
SELECT ok(pg_get_functiondef('reactor.emit_event'::regproc) !~ 'sign_notification'
          AND pg_get_functiondef('reactor.emit_event'::regproc) ~ 'PERFORM pg_notify\(coalesce',
          'emit_event is 001''s again');
SELECT ok(pg_get_functiondef('reactor.notify_config'::regproc) !~ 'sign_notification',
          'notify_config is 002''s again');
SELECT results_eq($$SELECT version FROM reactor.schema_migrations ORDER BY version$$, $$VALUES (1), (2)$$,
                  '003 is forgotten, 001 and 002 are not');
INSERT INTO public.user_jobs VALUES (2, 'new');
SELECT is((SELECT count(*)::integer FROM reactor.job_events WHERE job_id = '2'), 1, 'events are still written without 003');
SET client_min_messages = warning;
SELECT lives_ok(:'down3_sql', 'running the rollback of 003 a second time is harmless');
RESET client_min_messages;

-- 002
\ir ../../sql/migrations/002_tick.down.sql
SELECT hasnt_function('reactor', 'tick', ARRAY[]::text[], 'the rollback of 002 drops reactor.tick()');
SELECT hasnt_function('reactor', 'notify_config', ARRAY[]::text[], 'and reactor.notify_config()');
SELECT hasnt_table('reactor', 'due_announcements', 'and reactor.due_announcements');
SELECT hasnt_index('reactor', 'scheduled_jobs', i, 'and index ' || i)
  FROM unnest(ARRAY['idx_scheduled_jobs_pending_due', 'idx_scheduled_jobs_pending_expiry']) AS i;
SELECT hasnt_trigger('reactor', 'scheduled_jobs', 'scheduled_jobs_notify_schedule', 'and the schedule doorbell');
SELECT hasnt_trigger('reactor', 'scheduler_config', 'scheduler_config_notify', 'and the config doorbell');
SELECT results_eq($$SELECT version FROM reactor.schema_migrations$$, $$VALUES (1)$$, '002 is forgotten, 001 is not');
SELECT lives_ok($$SELECT reactor.start_job('doomed')$$, '001 still works without 002');
SELECT is((SELECT status FROM reactor.job_events ORDER BY id DESC LIMIT 1), 'running', 'and still makes events');
SET client_min_messages = warning;
SELECT lives_ok(:'down2_sql', 'running the rollback of 002 a second time is harmless');
RESET client_min_messages;

-- 001
\ir ../../sql/migrations/001_schema.down.sql
SELECT hasnt_table('reactor', t, 'the rollback drops reactor.' || t)
  FROM unnest(ARRAY['scheduled_jobs', 'job_executions', 'scheduler_config', 'job_events', 'watched_tables']) AS t;
SELECT is((SELECT count(*)::integer FROM pg_proc WHERE pronamespace = 'reactor'::regnamespace), 0,
          'no function is left in schema reactor');
SELECT set_eq($$SELECT relname::text FROM pg_class WHERE relnamespace = 'reactor'::regnamespace$$,
              $$VALUES ('schema_migrations'), ('schema_migrations_pkey')$$,
              'only reactor.schema_migrations (and its key) is left in schema reactor');
SELECT set_eq($$SELECT typname::text FROM pg_type WHERE typnamespace = 'reactor'::regnamespace$$,
              $$VALUES ('schema_migrations'), ('_schema_migrations')$$,
              'no type of 001 is left');
SELECT has_schema('reactor', 'schema reactor stays (it belongs to reactor migrate)');
SELECT is((SELECT count(*)::integer FROM reactor.schema_migrations), 0,
          'reactor.schema_migrations no longer records 001 to 004');
SET client_min_messages = warning;
SELECT lives_ok(:'down3_sql', 'the rollback of 003 after 001''s is harmless too (restores nothing)');
SELECT lives_ok(:'down4_sql', 'and so is the rollback of 004 (restores nothing)');
SELECT lives_ok(:'down6_sql', 'and the rollback of 006 (restores nothing)');
RESET client_min_messages;
SELECT is((SELECT count(*)::integer FROM pg_proc WHERE pronamespace = 'reactor'::regnamespace), 0,
          'still no function in schema reactor');
SELECT is((SELECT count(*)::integer FROM pg_trigger WHERE tgrelid = 'public.user_jobs'::regclass AND NOT tgisinternal), 0,
          'the event triggers on the attached user table are gone');
SELECT results_eq($$SELECT id, status FROM public.user_jobs ORDER BY id$$, $$VALUES (1, 'new'), (2, 'new')$$,
                  'the user table itself and its rows stay');
SELECT lives_ok($$UPDATE public.user_jobs SET status = 'done'$$, 'and it can be written without the reactor');
SET client_min_messages = warning;
SELECT lives_ok(:'down1_sql', 'running the rollback of 001 a second time is harmless');
RESET client_min_messages;

-- Apply both again with the real migrate command
\set migrate_out `build/src/reactor migrate --database-url "host=:HOST port=:PORT dbname=:DBNAME user=:USER" 2>&1; echo "exit=$?"`
SELECT ok(:'migrate_out' ~ 'exit=0$', 'reactor migrate exits 0 after the rollbacks');
SELECT ok(:'migrate_out' ~ 'applied migration 001_schema.sql' AND :'migrate_out' ~ 'applied migration 002_tick.sql'
          AND :'migrate_out' ~ 'applied migration 003_notify_mac.sql' AND :'migrate_out' ~ 'applied migration 004_tick_scale.sql'
          AND :'migrate_out' ~ 'applied migration 005_notify_horizon.sql'
          AND :'migrate_out' ~ 'applied migration 006_console.sql',
          'and says it applied 001_schema.sql to 006_console.sql');
SELECT has_table('reactor', t, 'reactor.' || t || ' is back')
  FROM unnest(ARRAY['scheduled_jobs', 'due_announcements', 'notify_key', 'due_queue', 'scheduler_leader']) AS t;
SELECT results_eq($$SELECT version, name FROM reactor.schema_migrations ORDER BY version$$,
                  $$VALUES (1, '001_schema.sql'), (2, '002_tick.sql'), (3, '003_notify_mac.sql'), (4, '004_tick_scale.sql'),
                           (5, '005_notify_horizon.sql'), (6, '006_console.sql')$$, 'all six are recorded again');
SELECT ok(pg_get_functiondef('reactor.emit_event'::regproc) ~ 'sign_notification'
          AND pg_get_functiondef('reactor.emit_event'::regproc) ~ 'ev_horizon'
          AND pg_get_functiondef('reactor.emit_event'::regproc) ~ 'reactor.cause',
          'and events are signed again, with their horizon and cause');
SELECT has_function('reactor', 'job_action', ARRAY['text', 'text', 'text', 'text', 'text'], 'reactor.job_action is back');
SELECT results_eq($$SELECT tbl::text FROM reactor.watched_tables$$, $$VALUES ('reactor.scheduled_jobs')$$,
                  'scheduled_jobs is watched again; the user table must be attached anew');

SELECT * FROM finish();
