-- reactor.attach / reactor.detach on users' own job tables: a Supabase-style job_queue, an
-- audit database's jobs with a `state` column, a background service's tasks keyed by
-- uuid, an integer-keyed table with the alternative column names, a partitioned table and
-- a table whose names need quoting.
BEGIN;
SELECT plan(63);
SET LOCAL TIME ZONE 'UTC';

-- 1. Supabase-style job_queue (seed 002)
CREATE SCHEMA supa;
CREATE TABLE supa.job_queue (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL,
  job_type text NOT NULL,
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
  params jsonb NOT NULL DEFAULT '{}',
  result jsonb,
  progress_percent integer DEFAULT 0 CHECK (progress_percent BETWEEN 0 AND 100),
  progress_message text,
  error_message text,
  error_code text,
  attempts integer NOT NULL DEFAULT 0,
  max_attempts integer NOT NULL DEFAULT 3,
  worker_id text,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  completed_at timestamptz,
  expires_at timestamptz DEFAULT now() + interval '24 hours'
);
SELECT lives_ok($$SELECT reactor.attach('supa.job_queue', 'id', 'status', 'user_id', 'job_type')$$,
                'attach a Supabase-style job_queue');
SELECT has_trigger('supa'::name, 'job_queue'::name, 'reactor_job_event_insert'::name, 'job_queue has the insert trigger');
SELECT has_trigger('supa'::name, 'job_queue'::name, 'reactor_job_event_update'::name, 'job_queue has the update trigger');
SELECT results_eq($$SELECT id_column, status_column, user_column, type_column FROM reactor.watched_tables
                     WHERE tbl = 'supa.job_queue'::regclass$$,
                  $$VALUES ('id', 'status', 'user_id', 'job_type')$$, 'job_queue is recorded in watched_tables');

INSERT INTO supa.job_queue (id, user_id, job_type)
VALUES ('6f1c2d3e-0000-4000-8000-000000000001', '11111111-2222-4333-8444-555555555555', 'sync_youtube');
SELECT results_eq(
  $$SELECT job_id, source, kind, status, old_status, user_id, job_type FROM reactor.job_events
     WHERE source = 'job_queue' ORDER BY id$$,
  $$VALUES ('6f1c2d3e-0000-4000-8000-000000000001', 'job_queue', 'status', 'pending', NULL::text,
            '11111111-2222-4333-8444-555555555555', 'sync_youtube')$$,
  'an insert into job_queue is a status event: uuid id and user as text, source = table name');
SELECT is((SELECT payload - 'id' - 'at' FROM reactor.job_events WHERE source = 'job_queue' ORDER BY id DESC LIMIT 1),
          '{"kind": "status", "job_id": "6f1c2d3e-0000-4000-8000-000000000001", "source": "job_queue",
            "status": "pending", "old_status": null, "user_id": "11111111-2222-4333-8444-555555555555",
            "job_type": "sync_youtube", "attempt": 0, "progress": 0, "message": null, "error": null,
            "result": null, "scheduled_for": null, "deadline": null, "cause": "sql", "actor": null,
            "action": null, "priority": null, "enabled": null}'::jsonb,
          'its payload: attempt from attempts, progress from progress_percent, no schedule, no deadline, cause sql, no priority or enabled column');
UPDATE supa.job_queue SET status = 'processing', attempts = 1, worker_id = 'w1', started_at = now();
SELECT results_eq($$SELECT kind, status, old_status, payload -> 'attempt' FROM reactor.job_events
                     WHERE source = 'job_queue' ORDER BY id DESC LIMIT 1$$,
                  $$VALUES ('status', 'processing', 'pending', '1'::jsonb)$$,
                  'a status change of job_queue is a status event');
UPDATE supa.job_queue SET progress_percent = 40, progress_message = 'downloading';
SELECT results_eq($$SELECT kind, payload -> 'progress', payload ->> 'message' FROM reactor.job_events
                     WHERE source = 'job_queue' ORDER BY id DESC LIMIT 1$$,
                  $$VALUES ('progress', '40'::jsonb, 'downloading')$$,
                  'progress_percent and progress_message make a progress event');
UPDATE supa.job_queue SET worker_id = 'w2', params = '{"x": 1}';
SELECT is((SELECT count(*)::integer FROM reactor.job_events WHERE source = 'job_queue'), 3,
          'other columns of job_queue make no event');
UPDATE supa.job_queue SET status = 'failed', error_message = 'quota exceeded', error_code = 'QUOTA';
SELECT results_eq($$SELECT kind, status, payload ->> 'error' FROM reactor.job_events
                     WHERE source = 'job_queue' ORDER BY id DESC LIMIT 1$$,
                  $$VALUES ('status', 'failed', 'quota exceeded')$$, 'error comes from error_message');
UPDATE supa.job_queue SET result = '{"videos": 3}';
SELECT results_eq($$SELECT kind, payload -> 'result' FROM reactor.job_events WHERE source = 'job_queue' ORDER BY id DESC LIMIT 1$$,
                  $$VALUES ('progress', '{"videos": 3}'::jsonb)$$, 'a result change is a progress event with the result');

-- 2. An audit database's jobs, whose status column is `state` (seed 004)
CREATE SCHEMA audit;
CREATE TABLE audit.jobs (
  job_id uuid PRIMARY KEY,
  bot_id varchar(64) NOT NULL,
  state varchar(16) NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
  accepted_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz,
  meta jsonb,
  result jsonb,
  created_by jsonb,
  error_message text,
  duration_ms integer
);
SELECT lives_ok($$SELECT reactor.attach('audit.jobs', id_column => 'job_id', status_column => 'state', type_column => 'bot_id')$$,
                'attach jobs(job_id, state) with bot_id as the job type and no user column');
INSERT INTO audit.jobs (job_id, bot_id, state, created_by)
VALUES ('0b7a6a4e-1111-4a00-9000-00000000000a', 'form-bot', 'queued', '{"name": "ops", "role": "admin"}');
UPDATE audit.jobs SET state = 'running', started_at = now();
UPDATE audit.jobs SET meta = '{"step": "login"}';
UPDATE audit.jobs SET state = 'succeeded', finished_at = now(), result = '{"filled": 7}', duration_ms = 1200;
SELECT results_eq(
  $$SELECT kind, job_id, status, old_status, user_id, job_type, payload -> 'result' FROM reactor.job_events
     WHERE source = 'jobs' ORDER BY id$$,
  $$VALUES ('status', '0b7a6a4e-1111-4a00-9000-00000000000a', 'queued', NULL::text, NULL::text, 'form-bot', 'null'::jsonb),
           ('status', '0b7a6a4e-1111-4a00-9000-00000000000a', 'running', 'queued', NULL, 'form-bot', 'null'),
           ('status', '0b7a6a4e-1111-4a00-9000-00000000000a', 'succeeded', 'running', NULL, 'form-bot', '{"filled": 7}')$$,
  'state changes of audit.jobs are status events (queued, running, succeeded); meta changes are not');
SELECT is((SELECT payload -> 'progress' FROM reactor.job_events WHERE source = 'jobs' ORDER BY id DESC LIMIT 1),
          'null'::jsonb, 'a table without progress columns has progress null');
UPDATE audit.jobs SET state = 'failed', error_message = 'captcha';
SELECT is((SELECT payload ->> 'error' FROM reactor.job_events WHERE source = 'jobs' ORDER BY id DESC LIMIT 1),
          'captcha', 'the error of audit.jobs comes from error_message');

-- 3. A background service's tasks keyed by uuid (seed 003), attached with the defaults
CREATE SCHEMA bg;
CREATE TABLE bg.jobs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL,
  status varchar(20) NOT NULL DEFAULT 'created',
  payload jsonb,
  job_type varchar(100) NOT NULL,
  is_deleted boolean NOT NULL DEFAULT false,
  version bigint NOT NULL DEFAULT 1
);
CREATE TABLE bg.tasks (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  job_id uuid NOT NULL REFERENCES bg.jobs (id),
  status varchar(20) NOT NULL DEFAULT 'created'
    CHECK (status IN ('created', 'processing', 'completed', 'failed', 'cancelled')),
  payload jsonb,
  result text,
  is_deleted boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  version bigint NOT NULL DEFAULT 1
);
SELECT lives_ok($$SELECT reactor.attach('bg.tasks')$$, 'attach tasks with the default columns id and status');
INSERT INTO bg.jobs (id, user_id, job_type) VALUES ('aaaaaaaa-0000-4000-8000-000000000001', 'bbbbbbbb-0000-4000-8000-000000000002', 'render');
INSERT INTO bg.tasks (id, job_id) VALUES ('cccccccc-0000-4000-8000-000000000003', 'aaaaaaaa-0000-4000-8000-000000000001');
SELECT results_eq($$SELECT job_id, source, status, user_id, job_type FROM reactor.job_events WHERE source = 'tasks'$$,
                  $$VALUES ('cccccccc-0000-4000-8000-000000000003', 'tasks', 'created', NULL::text, NULL::text)$$,
                  'a task''s event: its own uuid as job_id (not its job_id column), no user, no type');
SELECT is((SELECT count(*)::integer FROM reactor.job_events WHERE source = 'jobs' AND job_id = 'aaaaaaaa-0000-4000-8000-000000000001'),
          0, 'bg.jobs is not attached: no events');
UPDATE bg.tasks SET status = 'completed', result = 'frame 1-240 rendered', version = version + 1;
SELECT results_eq($$SELECT kind, status, old_status, payload -> 'result' FROM reactor.job_events WHERE source = 'tasks' ORDER BY id DESC LIMIT 1$$,
                  $$VALUES ('status', 'completed', 'created', '"frame 1-240 rendered"'::jsonb)$$,
                  'a text result is carried as a JSON string');
UPDATE bg.tasks SET is_deleted = true, version = version + 1;
SELECT is((SELECT count(*)::integer FROM reactor.job_events WHERE source = 'tasks'), 2, 'a soft delete makes no event');

-- 4. Integer ids, an enum status and the alternative names progress, message, error,
--    attempt and a timestamp scheduled_for
CREATE TYPE public.work_state AS ENUM ('new', 'busy', 'done');
CREATE TABLE public.work_items (
  id bigserial PRIMARY KEY,
  state public.work_state NOT NULL DEFAULT 'new',
  owner integer,
  kind text,
  progress numeric(5, 2),
  message text,
  error jsonb,
  attempt integer,
  scheduled_for timestamp
);
SELECT reactor.attach('work_items', 'id', 'state', 'owner', 'kind') \gset
INSERT INTO public.work_items (id, owner, kind, scheduled_for) VALUES (7, 42, 'resize', '2026-01-02 03:04:05.5');
SELECT is((SELECT payload - 'id' - 'at' FROM reactor.job_events WHERE source = 'work_items'),
          '{"kind": "status", "job_id": "7", "source": "work_items", "status": "new", "old_status": null,
            "user_id": "42", "job_type": "resize", "attempt": null, "progress": null, "message": null,
            "error": null, "result": null, "scheduled_for": "2026-01-02T03:04:05.500000Z", "deadline": null,
            "cause": "sql", "actor": null, "action": null, "priority": null, "enabled": null}'::jsonb,
          'integer id and user as text, enum status as text, scheduled_for as ISO time');
UPDATE public.work_items SET progress = 12.50, message = 'tile 3/24', attempt = 2;
SELECT results_eq($$SELECT kind, payload -> 'progress', payload ->> 'message', payload -> 'attempt'
                     FROM reactor.job_events WHERE source = 'work_items' ORDER BY id DESC LIMIT 1$$,
                  $$VALUES ('progress', '12.50'::jsonb, 'tile 3/24', '2'::jsonb)$$,
                  'progress, message and attempt are read from the alternative column names');
UPDATE public.work_items SET progress = 12.5;
SELECT is((SELECT count(*)::integer FROM reactor.job_events WHERE source = 'work_items'), 2,
          'a numerically equal progress (12.50 -> 12.5) makes no event');
UPDATE public.work_items SET state = 'done', error = '{"code": 7}';
SELECT results_eq($$SELECT status, old_status, payload -> 'error' FROM reactor.job_events WHERE source = 'work_items' ORDER BY id DESC LIMIT 1$$,
                  $$VALUES ('done', 'new', '{"code": 7}'::jsonb)$$, 'an error column of type jsonb is carried as is');

-- 5. A partitioned table: its partitions' rows are events of the attached table
CREATE TABLE public.part_jobs (id integer NOT NULL, status text, region text NOT NULL, PRIMARY KEY (id, region))
  PARTITION BY LIST (region);
CREATE TABLE public.part_jobs_eu PARTITION OF public.part_jobs FOR VALUES IN ('eu');
CREATE TABLE public.part_jobs_us PARTITION OF public.part_jobs FOR VALUES IN ('us');
SELECT lives_ok($$SELECT reactor.attach('part_jobs')$$, 'attach a partitioned table');
INSERT INTO public.part_jobs VALUES (1, 'queued', 'eu'), (2, 'queued', 'us');
UPDATE public.part_jobs SET status = 'running' WHERE id = 2;
SELECT results_eq($$SELECT job_id, source, status FROM reactor.job_events WHERE source LIKE 'part_jobs%' ORDER BY id$$,
                  $$VALUES ('1', 'part_jobs', 'queued'), ('2', 'part_jobs', 'queued'), ('2', 'part_jobs', 'running')$$,
                  'rows of every partition make events with source part_jobs');

-- 6. Names that need quoting
CREATE TABLE public."Weird Jobs" ("Job Id" text PRIMARY KEY, "Status!" text, "User" text);
SELECT lives_ok($$SELECT reactor.attach('public."Weird Jobs"', 'Job Id', 'Status!', 'User')$$,
                'attach a table whose table and column names need quoting');
INSERT INTO public."Weird Jobs" VALUES ('w-1', 'new', 'ann');
UPDATE public."Weird Jobs" SET "Status!" = 'old';
SELECT results_eq($$SELECT job_id, source, status, old_status, user_id FROM reactor.job_events WHERE source = 'Weird Jobs' ORDER BY id$$,
                  $$VALUES ('w-1', 'Weird Jobs', 'new', NULL::text, 'ann'), ('w-1', 'Weird Jobs', 'old', 'new', 'ann')$$,
                  'its events carry the unquoted names');

-- Validation
SELECT throws_ok($$SELECT reactor.attach('supa.job_queue', 'uuid', 'status')$$,
                 '42703', 'reactor.attach: table supa.job_queue has no column uuid (given as id_column)',
                 'a missing id column is named in the error');
SELECT throws_ok($$SELECT reactor.attach('supa.job_queue', 'id', 'state')$$,
                 '42703', 'reactor.attach: table supa.job_queue has no column state (given as status_column)',
                 'a missing status column');
SELECT throws_ok($$SELECT reactor.attach('supa.job_queue', 'id', 'status', 'owner_id')$$,
                 '42703', 'reactor.attach: table supa.job_queue has no column owner_id (given as user_column)',
                 'a missing user column');
SELECT throws_ok($$SELECT reactor.attach('supa.job_queue', 'id', 'status', 'user_id', 'type')$$,
                 '42703', 'reactor.attach: table supa.job_queue has no column type (given as type_column)',
                 'a missing type column');
SELECT throws_ok($$SELECT reactor.attach('supa.job_queue', 'id', NULL)$$,
                 '22023', 'reactor.attach: status_column must name a column of supa.job_queue',
                 'the status column is required');
SELECT throws_ok($$SELECT reactor.attach('supa.job_queue', NULL)$$,
                 '22023', 'reactor.attach: id_column must name a column of supa.job_queue',
                 'the id column is required');
SELECT throws_ok($$SELECT reactor.attach('supa.no_such_table')$$,
                 '42P01', NULL, 'an unknown table');
CREATE VIEW supa.queue_view AS SELECT * FROM supa.job_queue;
SELECT throws_ok($$SELECT reactor.attach('supa.queue_view')$$,
                 '42809', 'reactor.attach: supa.queue_view is not a table', 'a view cannot be attached');
SELECT throws_ok($$SELECT reactor.attach('reactor.job_events', 'id', 'kind')$$,
                 '22023', 'reactor.attach: reactor.job_events is part of the reactor and cannot be attached',
                 'the event log cannot be attached to itself');
SELECT is((SELECT count(*)::integer FROM reactor.watched_tables WHERE tbl = 'supa.job_queue'::regclass), 1,
          'failed attach attempts leave the existing attachment as it was');
SELECT results_eq($$SELECT user_column, type_column FROM reactor.watched_tables WHERE tbl = 'supa.job_queue'::regclass$$,
                  $$VALUES ('user_id', 'job_type')$$, 'with its settings');

-- Attaching again replaces the settings; the triggers are not doubled
UPDATE reactor.watched_tables SET attached_at = '2000-01-01' WHERE tbl = 'supa.job_queue'::regclass;
SELECT lives_ok($$SELECT reactor.attach('supa.job_queue', 'id', 'status', 'user_id')$$, 'attach job_queue again, without type');
SELECT is((SELECT count(*)::integer FROM pg_trigger WHERE tgrelid = 'supa.job_queue'::regclass AND tgname LIKE 'reactor_%'), 2,
          'still exactly two reactor triggers on job_queue');
SELECT results_eq($$SELECT type_column, attached_at FROM reactor.watched_tables WHERE tbl = 'supa.job_queue'::regclass$$,
                  $$VALUES (NULL::text, now())$$, 'watched_tables has the new settings and time');
SELECT count(*)::integer AS q_before FROM reactor.job_events WHERE source = 'job_queue' \gset
UPDATE supa.job_queue SET status = 'pending';
SELECT is((SELECT count(*)::integer FROM reactor.job_events WHERE source = 'job_queue'), :q_before + 1,
          'one update, one event after re-attaching');
SELECT is((SELECT job_type FROM reactor.job_events WHERE source = 'job_queue' ORDER BY id DESC LIMIT 1), NULL,
          'the new settings apply: no job type');

-- A column renamed under an attached table: writes fail with a clear message, nothing is lost silently
ALTER TABLE bg.tasks RENAME COLUMN status TO task_status;
SELECT throws_ok($$INSERT INTO bg.tasks (job_id) VALUES ('aaaaaaaa-0000-4000-8000-000000000001')$$,
                 '42703', 'reactor: table bg.tasks is attached with id column id and status column status, but it has no column status',
                 'a write to a table whose attached column was renamed fails, naming the column');
SELECT lives_ok($$SELECT reactor.attach('bg.tasks', 'id', 'task_status')$$, 're-attaching with the new name fixes it');
SELECT lives_ok($$INSERT INTO bg.tasks (job_id) VALUES ('aaaaaaaa-0000-4000-8000-000000000001')$$,
                'writes succeed again');
SELECT is((SELECT status FROM reactor.job_events WHERE source = 'tasks' ORDER BY id DESC LIMIT 1), 'created',
          'and are events again');

-- The trigger function cannot be used by roles that may not attach
CREATE ROLE reactor_test_app;
CREATE TABLE public.app_jobs (id text PRIMARY KEY, status text);
ALTER TABLE public.app_jobs OWNER TO reactor_test_app;
GRANT USAGE ON SCHEMA reactor TO reactor_test_app;
SET LOCAL ROLE reactor_test_app;
SELECT throws_ok($$CREATE TRIGGER forged AFTER INSERT ON public.app_jobs FOR EACH ROW
                   EXECUTE FUNCTION reactor.job_event_trigger('id', 'status', '', '')$$,
                 '42501', NULL, 'a role without EXECUTE on reactor.job_event_trigger cannot create the trigger by hand');
RESET ROLE;

-- detach
SELECT is(reactor.detach('supa.job_queue'), true, 'detach an attached table: true');
SELECT is((SELECT count(*)::integer FROM pg_trigger WHERE tgrelid = 'supa.job_queue'::regclass AND tgname LIKE 'reactor_%'), 0,
          'its triggers are gone');
SELECT is((SELECT count(*)::integer FROM reactor.watched_tables WHERE tbl = 'supa.job_queue'::regclass), 0,
          'its watched_tables row is gone');
SELECT count(*)::integer AS q_before FROM reactor.job_events WHERE source = 'job_queue' \gset
INSERT INTO supa.job_queue (user_id, job_type) VALUES (gen_random_uuid(), 'sync_tiktok');
UPDATE supa.job_queue SET status = 'cancelled';
SELECT is((SELECT count(*)::integer FROM reactor.job_events WHERE source = 'job_queue'), :q_before,
          'a detached table makes no more events');
SELECT is(reactor.detach('supa.job_queue'), false, 'detaching it again: false (and a notice), no error');
SELECT is(reactor.detach('bg.jobs'), false, 'detaching a table that was never attached: false');
SELECT throws_ok($$SELECT reactor.detach(NULL)$$, '22023', 'reactor.detach: tbl must not be NULL', 'detach(NULL) is an error');
SELECT lives_ok($$SELECT reactor.attach('supa.job_queue', 'id', 'status', 'user_id', 'job_type')$$, 'it can be attached again');
UPDATE supa.job_queue SET status = 'pending' WHERE job_type = 'sync_tiktok';
SELECT is((SELECT count(*)::integer FROM reactor.job_events WHERE source = 'job_queue'), :q_before + 1,
          'and makes events again');

-- Other tables are unaffected by detaching one; scheduled_jobs is still watched
SELECT reactor.detach('audit.jobs') \gset
INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('still_watched', 't');
UPDATE public.work_items SET state = 'busy';
SELECT results_eq($$SELECT source FROM reactor.job_events ORDER BY id DESC LIMIT 2$$,
                  $$VALUES ('work_items'), ('scheduled_jobs')$$,
                  'detaching audit.jobs leaves scheduled_jobs and work_items watched');
SELECT set_eq($$SELECT tbl::text FROM reactor.watched_tables$$,
              $$VALUES ('reactor.scheduled_jobs'), ('supa.job_queue'), ('bg.tasks'), ('work_items'), ('part_jobs'),
                       ('"Weird Jobs"')$$,
              'watched_tables lists exactly the attached tables');
SELECT is(reactor.detach('reactor.scheduled_jobs'), true, 'even scheduled_jobs can be detached');
INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('unwatched', 't');
SELECT is((SELECT count(*)::integer FROM reactor.job_events WHERE job_id = 'unwatched'), 0, 'and is then silent');
SELECT lives_ok($$SELECT reactor.attach('reactor.scheduled_jobs', 'id', 'status', 'user_id', 'job_type')$$,
                'and re-attached like any table');

SELECT * FROM finish();
ROLLBACK;
