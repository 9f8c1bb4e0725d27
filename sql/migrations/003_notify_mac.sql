-- 003_notify_mac: notifications carry a MAC. Anyone who can connect to the database may
-- pg_notify on the reactor's channel; a notification is now trusted only if it carries
-- an HMAC-SHA256, under a key only the reactor's functions (and the reactor) can read,
-- over the channel, the writing transaction's id and the exact event text:
--
--   {"mac":"<64 hex>","txid":"<txid>",<the event JSON after its opening brace>
--   mac = HMAC-SHA256(key, channel || ':' || txid || ':' || event JSON text)   (UTF-8)
--
-- The event JSON (reactor.job_events.payload::text) is the notification with the two
-- fields taken out and "{" put back. The truncated form and the "config" doorbell are
-- signed the same way. Why, and what the reactor does with it: docs/security.md.
--
-- Runs inside one transaction opened by `reactor migrate`. Rollback: 003_notify_mac.down.sql.
-- Semantics: docs/events.md ("The signature") and docs/sql.md.

-- 32 random bytes: four v4 UUIDs (pg_strong_random, 488 random bits) through sha256.
-- Builtin only: no extension needed.
CREATE FUNCTION reactor.new_notify_key() RETURNS bytea
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
  SELECT sha256(decode(replace(gen_random_uuid()::text || gen_random_uuid()::text ||
                               gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'))
$$;

-- An HMAC pad block: `key` (at most 64 bytes) zero-filled to SHA-256's 64-byte block,
-- each byte XOR `fill` (0x36 inner, 0x5c outer; RFC 2104).
CREATE FUNCTION reactor.hmac_pad(key bytea, fill integer) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  block bytea := decode(repeat(lpad(to_hex(fill), 2, '0'), 64), 'hex');
BEGIN
  IF octet_length(key) > 64 THEN
    RAISE EXCEPTION 'reactor.hmac_pad: a key of % bytes must be hashed first', octet_length(key)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR i IN 0 .. octet_length(key) - 1 LOOP
    block := set_byte(block, i, get_byte(key, i) # fill);
  END LOOP;
  RETURN block;
END
$$;

-- HMAC-SHA256 (RFC 2104) of `msg` under `key`, any key length. The reference the signing
-- path below is tested against (tests/sql/014_notify_mac.sql: RFC 4231's vectors).
CREATE FUNCTION reactor.hmac_sha256(key bytea, msg bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
  SELECT sha256(reactor.hmac_pad(k, 92) || sha256(reactor.hmac_pad(k, 54) || msg))
    FROM (SELECT CASE WHEN octet_length(key) > 64 THEN sha256(key) ELSE key END AS k) s
$$;

-- The key, one row. Its pads are precomputed (trigger below) so that signing costs two
-- sha256() calls. Nobody but the owner may read it (REVOKE below); a reactor connecting
-- as another role needs GRANT SELECT ON reactor.notify_key.
-- Rotation: UPDATE reactor.notify_key SET key = reactor.new_notify_key(); then make the
-- reactors reconnect (docs/security.md).
CREATE TABLE reactor.notify_key (
  id integer PRIMARY KEY DEFAULT 1
    CONSTRAINT notify_key_singleton CHECK (id = 1),
  key bytea NOT NULL DEFAULT reactor.new_notify_key()
    CONSTRAINT notify_key_length CHECK (octet_length(key) = 32),
  inner_pad bytea NOT NULL,
  outer_pad bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE reactor.notify_key IS
  'The key of the notifications'' MAC: exactly one row. Secret: readable by its owner and the reactor only.';

REVOKE ALL ON reactor.notify_key FROM PUBLIC;

CREATE FUNCTION reactor.notify_key_pads() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
    RAISE EXCEPTION 'reactor.notify_key must keep its row; update it to rotate the key'
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  NEW.inner_pad := reactor.hmac_pad(NEW.key, 54);
  NEW.outer_pad := reactor.hmac_pad(NEW.key, 92);
  RETURN NEW;
END
$$;

CREATE TRIGGER notify_key_pads
  BEFORE INSERT OR UPDATE OR DELETE ON reactor.notify_key
  FOR EACH ROW EXECUTE FUNCTION reactor.notify_key_pads();
CREATE TRIGGER notify_key_keep_truncate
  BEFORE TRUNCATE ON reactor.notify_key
  FOR EACH STATEMENT EXECUTE FUNCTION reactor.notify_key_pads();

INSERT INTO reactor.notify_key (id) VALUES (1);

-- The signed notification of `payload` (a JSON object's text) for `channel`, written by
-- transaction `txid`. A signing oracle: EXECUTE is revoked from PUBLIC, and the functions
-- that call it run as their owner.
CREATE FUNCTION reactor.sign_notification(channel text, txid xid8, payload text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
  k reactor.notify_key;
BEGIN
  IF left(payload, 1) <> '{' OR octet_length(payload) < 3 THEN
    RAISE EXCEPTION 'reactor.sign_notification: not a non-empty JSON object: %', left(payload, 40)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO k FROM reactor.notify_key WHERE id = 1;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'reactor.notify_key has no row'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'INSERT INTO reactor.notify_key (id) VALUES (1)';
  END IF;
  RETURN '{"mac":"' ||
         encode(sha256(k.outer_pad || sha256(k.inner_pad ||
                convert_to(channel || ':' || txid::text || ':' || payload, 'UTF8'))), 'hex') ||
         '","txid":"' || txid::text || '",' || substr(payload, 2);
END
$$;

REVOKE EXECUTE ON FUNCTION reactor.sign_notification(text, xid8, text) FROM PUBLIC;

-- emit_event as in 001, its notification signed (the end of the function).
CREATE OR REPLACE FUNCTION reactor.emit_event(src regclass, kind text, row_data jsonb, old_status text,
                                   id_column text, status_column text,
                                   user_column text, type_column text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  ev_id bigint;
  event_at timestamptz := clock_timestamp();
  source text;
  v_job_id text;
  v_status text;
  v_user text;
  v_type text;
  attempt jsonb;
  sched jsonb;
  sched_type regtype;
  deadline timestamptz;
  job reactor.scheduled_jobs;
  stuck integer;
  payload jsonb;
  note text;
  channel text;
BEGIN
  -- A partition's rows are events of the partitioned table that was attached.
  SELECT c.relname INTO source FROM pg_class c WHERE c.oid = coalesce(pg_partition_root(src), src);
  IF NOT (row_data ? id_column) OR NOT (row_data ? status_column) THEN
    RAISE EXCEPTION 'reactor: table % is attached with id column % and status column %, but it has no column %',
                    src, quote_ident(id_column), quote_ident(status_column),
                    quote_ident(CASE WHEN row_data ? id_column THEN status_column ELSE id_column END)
      USING ERRCODE = 'undefined_column',
            HINT = format('run SELECT reactor.attach(%L, ...) with the current column names, or reactor.detach(%L)',
                          src::text, src::text);
  END IF;
  v_job_id := row_data ->> id_column;
  IF v_job_id IS NULL THEN
    RAISE EXCEPTION 'reactor: a row of % has a NULL id (column %); its event cannot be logged',
                    src, quote_ident(id_column)
      USING ERRCODE = 'not_null_violation';
  END IF;
  v_status := row_data ->> status_column;
  v_user := CASE WHEN user_column IS NOT NULL THEN row_data ->> user_column END;
  v_type := CASE WHEN type_column IS NOT NULL THEN row_data ->> type_column END;

  IF src = 'reactor.scheduled_jobs'::regclass THEN
    job := jsonb_populate_record(NULL::reactor.scheduled_jobs, row_data);
    attempt := (SELECT to_jsonb(e.attempt_number) FROM reactor.job_executions e
                 WHERE e.job_id = job.id ORDER BY e.id DESC LIMIT 1);
    sched := to_jsonb(reactor.iso_time(job.scheduled_for));
    IF job.status = 'pending' AND job.enabled THEN
      deadline := least(job.scheduled_for, job.expires_at);
    ELSIF job.status = 'running' THEN
      stuck := coalesce(job.timeout_seconds, (reactor.config()).stuck_timeout_seconds);
      deadline := job.started_at + make_interval(secs => stuck);
    END IF;
  ELSE
    attempt := reactor.first_field(row_data, 'attempt', 'attempts', 'attempt_number');
    sched := row_data -> 'scheduled_for';
    IF sched IS NOT NULL AND sched <> 'null'::jsonb THEN
      SELECT a.atttypid::regtype INTO sched_type FROM pg_attribute a
       WHERE a.attrelid = src AND a.attname = 'scheduled_for';
      IF sched_type IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN
        sched := to_jsonb(reactor.iso_time((sched #>> '{}')::timestamptz));
      END IF;
    END IF;
  END IF;

  ev_id := nextval('reactor.job_events_id_seq');
  payload := jsonb_build_object(
    'id', ev_id,
    'kind', kind,
    'job_id', v_job_id,
    'source', source,
    'status', v_status,
    'old_status', old_status,
    'user_id', v_user,
    'job_type', v_type,
    'attempt', attempt,
    'progress', reactor.first_field(row_data, 'progress_percent', 'progress'),
    'message', reactor.first_field(row_data, 'progress_message', 'message'),
    'error', reactor.first_field(row_data, 'last_error', 'error_message', 'error'),
    'result', row_data -> 'result',
    'scheduled_for', sched,
    'deadline', reactor.iso_time(deadline),
    'at', reactor.iso_time(event_at));
  INSERT INTO reactor.job_events (id, job_id, source, kind, status, old_status, user_id,
                                  job_type, payload, created_at)
  VALUES (ev_id, v_job_id, source, kind, v_status, old_status, v_user, v_type, payload, event_at);

  -- Signed (reactor.sign_notification); the truncated form when the signed event is
  -- over 7900 bytes. txid is the row's txid column: the same pg_current_xact_id().
  channel := coalesce(nullif(current_setting('reactor.channel', true), ''), 'job_status_changed');
  note := reactor.sign_notification(channel, pg_current_xact_id(), payload::text);
  IF octet_length(note) > 7900 THEN
    note := reactor.sign_notification(channel, pg_current_xact_id(),
              jsonb_build_object('id', ev_id, 'kind', kind, 'job_id', v_job_id,
                                 'status', v_status, 'truncated', true)::text);
  END IF;
  PERFORM pg_notify(channel, note);
  RETURN ev_id;
END
$$;

-- The "config" doorbell of 002, signed.
CREATE OR REPLACE FUNCTION reactor.notify_config() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  note jsonb := jsonb_build_object('kind', 'config', 'source', TG_TABLE_NAME);
  channel text := coalesce(nullif(current_setting('reactor.channel', true), ''), 'job_status_changed');
BEGIN
  IF TG_TABLE_NAME = 'scheduled_jobs' THEN
    note := note || jsonb_build_object('job_id', NEW.id);
  END IF;
  PERFORM pg_notify(channel, reactor.sign_notification(channel, pg_current_xact_id(), note::text));
  RETURN NULL;
END
$$;
