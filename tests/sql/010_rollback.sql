-- The rollback 001_schema.down.sql applied with psql removes every object of 001 (also the
-- triggers on attached user tables, not the tables), forgets the migration, can run
-- twice, and the real `reactor migrate` then applies 001 again.
-- Paths are relative to the repository root, where tools/test runs pg_prove.
SELECT plan(26);
\set down_sql `cat sql/migrations/001_schema.down.sql`

CREATE TABLE public.user_jobs (id integer PRIMARY KEY, status text);
SELECT reactor.attach('public.user_jobs') \gset
INSERT INTO public.user_jobs VALUES (1, 'new');
INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('doomed', 't');
SELECT is((SELECT count(*)::integer FROM reactor.schema_migrations WHERE version = 1), 1, 'before: 001 is recorded');

-- A later migration still applied: the rollback refuses and changes nothing
INSERT INTO reactor.schema_migrations (version, name, checksum) VALUES (99, '099_future.sql', 'x');
SELECT throws_ok(:'down_sql', '2BP01', 'roll back the later migrations first: 099_future.sql',
                 'the rollback of 001 refuses while a later migration is applied');
SELECT has_table('reactor', 'scheduled_jobs', 'and leaves everything in place');
DELETE FROM reactor.schema_migrations WHERE version = 99;

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
SELECT is((SELECT count(*)::integer FROM reactor.schema_migrations WHERE version = 1), 0,
          '001 is no longer recorded in reactor.schema_migrations');
SELECT is((SELECT count(*)::integer FROM pg_trigger WHERE tgrelid = 'public.user_jobs'::regclass AND NOT tgisinternal), 0,
          'the event triggers on the attached user table are gone');
SELECT results_eq($$SELECT id, status FROM public.user_jobs$$, $$VALUES (1, 'new')$$,
                  'the user table itself and its rows stay');
SELECT lives_ok($$UPDATE public.user_jobs SET status = 'done'$$, 'and it can be written without the reactor');

SET client_min_messages = warning;
SELECT lives_ok(:'down_sql', 'running the rollback a second time is harmless');
RESET client_min_messages;

-- Apply 001 again with the real migrate command
\set migrate_out `build/src/reactor migrate --database-url "host=:HOST port=:PORT dbname=:DBNAME user=:USER" 2>&1; echo "exit=$?"`
SELECT ok(:'migrate_out' ~ 'exit=0$', 'reactor migrate exits 0 after the rollback');
SELECT ok(:'migrate_out' ~ 'applied migration 001_schema.sql', 'and says it applied 001_schema.sql');
SELECT has_table('reactor', t, 'reactor.' || t || ' is back')
  FROM unnest(ARRAY['scheduled_jobs', 'job_executions', 'scheduler_config', 'job_events', 'watched_tables']) AS t;
SELECT is((SELECT count(*)::integer FROM reactor.schema_migrations WHERE version = 1 AND name = '001_schema.sql'), 1,
          '001 is recorded again');
SELECT results_eq($$SELECT tbl::text FROM reactor.watched_tables$$, $$VALUES ('reactor.scheduled_jobs')$$,
                  'scheduled_jobs is watched again; the user table must be attached anew');

SELECT * FROM finish();
