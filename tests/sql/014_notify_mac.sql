-- Migration 003: notifications carry an HMAC-SHA256 under reactor.notify_key. The SQL
-- HMAC against RFC 4231 and pgcrypto (OpenSSL); each notification's mac and txid; the
-- truncated form and the doorbell signed; the key unreadable, and the signer not callable,
-- by a role without rights; writers without rights still send signed events; rotation.
SELECT plan(37);

CREATE EXTENSION IF NOT EXISTS dblink;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
SELECT format('host=%s port=%s dbname=%s user=%s',
              split_part(current_setting('unix_socket_directories'), ',', 1),
              current_setting('port'), current_database(), current_user) AS conninfo \gset
SELECT dblink_connect('listener', :'conninfo') \gset
SELECT dblink_exec('listener', 'LISTEN job_status_changed') \gset

CREATE TABLE notes (n serial PRIMARY KEY, channel text, raw text);
CREATE FUNCTION collect(want integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  got integer;
  idle_until timestamptz := clock_timestamp() + interval '2 seconds';
  fresh integer;
BEGIN
  LOOP
    INSERT INTO notes (channel, raw) SELECT notify_name, extra FROM dblink_get_notify('listener');
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
-- A notification taken apart, and its MAC checked with pgcrypto's hmac() (OpenSSL):
-- independent of the migration's own HMAC code.
-- `signed`: what the MAC covers; `payload`: the event, the row's horizon (migration 005)
-- taken out of its front.
CREATE VIEW parsed AS
  SELECT n, channel, raw, m[1] AS mac, m[2] AS txid, '{' || m[3] AS signed,
         h[1] AS horizon, '{' || coalesce(h[2], m[3]) AS payload
    FROM notes, regexp_match(raw, '^\{"mac":"([0-9a-f]{64})","txid":"([0-9]+)",(.*)$', 's') AS m
         LEFT JOIN LATERAL regexp_match(m[3], '^"horizon":"([0-9]+)",(.*)$', 's') AS h ON true;
CREATE VIEW verified AS
  SELECT p.*, p.mac = encode(hmac(convert_to(p.channel || ':' || p.txid || ':' || p.signed, 'UTF8'),
                                  (SELECT key FROM reactor.notify_key), 'sha256'), 'hex') AS mac_ok
    FROM parsed p;

-- The key
SELECT is((SELECT count(*)::integer FROM reactor.notify_key), 1, 'reactor.notify_key has one row');
SELECT is((SELECT octet_length(key) FROM reactor.notify_key), 32, 'a 32-byte key');
SELECT ok((SELECT key <> decode(repeat('00', 32), 'hex') FROM reactor.notify_key), 'not all zero');
SELECT isnt((SELECT reactor.new_notify_key()), (SELECT reactor.new_notify_key()), 'new_notify_key() is random');
SELECT ok((SELECT inner_pad = reactor.hmac_pad(key, 54) AND outer_pad = reactor.hmac_pad(key, 92)
                  AND octet_length(inner_pad) = 64 FROM reactor.notify_key),
          'the pads are the key XOR 0x36 and 0x5c, 64 bytes');

-- HMAC-SHA256 in SQL: RFC 4231 test cases 1, 2, 6 (a 131-byte key) and 7
SELECT is(encode(reactor.hmac_sha256(decode(repeat('0b', 20), 'hex'), convert_to('Hi There', 'UTF8')), 'hex'),
          'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7', 'RFC 4231 case 1');
SELECT is(encode(reactor.hmac_sha256(convert_to('Jefe', 'UTF8'), convert_to('what do ya want for nothing?', 'UTF8')), 'hex'),
          '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843', 'RFC 4231 case 2');
SELECT is(encode(reactor.hmac_sha256(decode(repeat('aa', 131), 'hex'),
                                     convert_to('Test Using Larger Than Block-Size Key - Hash Key First', 'UTF8')), 'hex'),
          '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54', 'RFC 4231 case 6');
SELECT is(encode(reactor.hmac_sha256(decode(repeat('aa', 131), 'hex'),
                                     convert_to('This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.', 'UTF8')), 'hex'),
          '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2', 'RFC 4231 case 7');
SELECT is(reactor.hmac_sha256(k, m), hmac(m, k, 'sha256'), 'equal to pgcrypto''s hmac() for a 32-byte key and ' || octet_length(m) || ' bytes')
  FROM (SELECT reactor.new_notify_key() AS k, convert_to(repeat('m', n), 'UTF8') AS m
          FROM unnest(ARRAY[0, 63, 8000]) AS n) x;

-- sign_notification: the form
SELECT is(reactor.sign_notification('job_status_changed', '1234'::xid8, '{"id": 1}'),
          '{"mac":"' || encode(reactor.hmac_sha256((SELECT key FROM reactor.notify_key),
                                                   convert_to('job_status_changed:1234:{"id": 1}', 'UTF8')), 'hex') ||
          '","txid":"1234","id": 1}',
          'sign_notification: {"mac":HMAC(key, channel:txid:payload),"txid":…, then the payload after its brace');
SELECT throws_ok($$SELECT reactor.sign_notification('c', '1'::xid8, '{}')$$, '22023', NULL,
                 'an empty object cannot be signed (nothing would follow the txid)');
SELECT throws_ok($$SELECT reactor.sign_notification('c', '1'::xid8, '[1]')$$, '22023', NULL, 'nor a non-object');

-- An event: signed, the txid of its row, the payload byte for byte
INSERT INTO reactor.scheduled_jobs (id, job_type, user_id) VALUES ('m1', 'sync', 'alice');
SELECT is(collect(1), 1, 'one notification for an insert');
SELECT ok((SELECT mac_ok FROM verified), 'its MAC verifies under the key (pgcrypto)');
SELECT is((SELECT payload FROM parsed), (SELECT payload::text FROM reactor.job_events WHERE job_id = 'm1'),
          'without mac and txid it is the logged payload byte for byte');
SELECT is((SELECT txid FROM parsed), (SELECT txid::text FROM reactor.job_events WHERE job_id = 'm1'),
          'its txid is the row''s txid');
SELECT is((SELECT horizon FROM parsed), (SELECT horizon::text FROM reactor.job_events WHERE job_id = 'm1'),
          'its horizon (in front of the event, signed) is the row''s horizon');
TRUNCATE notes;

-- The truncated form and the doorbell are signed too
SELECT reactor.start_job('m1') AS m1_exec \gset
SELECT reactor.complete_job('m1', :m1_exec, jsonb_build_object('blob', repeat('x', 9000))) \gset
UPDATE reactor.scheduler_config SET stuck_timeout_seconds = stuck_timeout_seconds + 1;
SELECT is(collect(3), 3, 'start, complete (oversize) and a config doorbell');
SELECT is((SELECT count(*)::integer FROM verified WHERE mac_ok), 3, 'all three verify');
SELECT ok((SELECT payload::jsonb ? 'truncated' FROM parsed WHERE n = (SELECT min(n) + 1 FROM notes)),
          'the oversize one is the truncated form');
SELECT is((SELECT payload FROM parsed ORDER BY n DESC LIMIT 1), '{"kind": "config", "source": "scheduler_config"}',
          'the doorbell is the same object as before, signed');
TRUNCATE notes;

-- Roles without rights: the key cannot be read, the signer not called, pg_notify can
-- still be sent (that is the attack), and writing jobs still sends signed events.
CREATE ROLE mac_mallory NOLOGIN;
CREATE ROLE mac_snoop NOLOGIN;
GRANT USAGE ON SCHEMA reactor TO mac_snoop;
CREATE ROLE mac_writer NOLOGIN;
GRANT USAGE ON SCHEMA reactor TO mac_writer;
GRANT INSERT, UPDATE, SELECT ON reactor.scheduled_jobs TO mac_writer;
SET ROLE mac_mallory;
SELECT throws_ok($$SELECT key FROM reactor.notify_key$$, '42501', NULL, 'a role without rights cannot read the key');
SELECT throws_ok($$SELECT reactor.sign_notification('job_status_changed', pg_current_xact_id(), '{"id": 1}')$$,
                 '42501', NULL, 'nor call the signer');
SELECT lives_ok($$SELECT pg_notify('job_status_changed', '{"id": 99, "kind": "status"}')$$,
                'but it may notify on the channel');
RESET ROLE;
SET ROLE mac_snoop;
SELECT throws_ok($$SELECT * FROM reactor.notify_key$$, '42501', NULL,
                 'USAGE on schema reactor does not open the key');
SELECT throws_ok($$SELECT reactor.sign_notification('job_status_changed', pg_current_xact_id(), '{"id": 1}')$$,
                 '42501', NULL, 'nor the signer');
RESET ROLE;
SELECT is(collect(1), 1, 'the unprivileged notification went out');
SELECT ok((SELECT raw FROM notes) !~ '^\{"mac"', 'unsigned: only the reactor''s verification tells it apart');
TRUNCATE notes;
SET ROLE mac_writer;
INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('m2', 'sync');
RESET ROLE;
SELECT is(collect(1), 1, 'a writer without rights on the key inserts a job: one notification');
SELECT ok((SELECT mac_ok FROM verified), 'signed under the key');
TRUNCATE notes;

-- Rotation: the pads follow the key; the next notification is signed with the new one
SELECT encode(key, 'hex') AS old_key FROM reactor.notify_key \gset
UPDATE reactor.notify_key SET key = reactor.new_notify_key();
SELECT ok((SELECT encode(key, 'hex') <> :'old_key' AND inner_pad = reactor.hmac_pad(key, 54)
                  AND outer_pad = reactor.hmac_pad(key, 92) FROM reactor.notify_key),
          'a new key, its pads recomputed');
UPDATE reactor.scheduled_jobs SET status = 'cancelled' WHERE id = 'm2';
SELECT is(collect(1), 1, 'an event after the rotation');
SELECT ok((SELECT mac_ok FROM verified), 'verifies under the new key');
SELECT throws_ok($$DELETE FROM reactor.notify_key$$, '55000', NULL, 'the key row cannot be deleted');

SELECT * FROM finish();
SELECT dblink_disconnect('listener') \gset
