// Only the database's events (docs/security.md): a role with no rights on schema reactor
// may still LISTEN and pg_notify on the channel. It forges events (the next id, for a
// user; id 9e18; a signed-looking one with its id changed) and replays real notifications
// it heard (one from before the reactor started, one from before a reconnect). The
// subscriber must get exactly the events the triggers wrote, each once; last_event_id
// must not move; the real event with the forged id must not be dropped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { freshDatabase, connect, readJournal, eventually, tempDir, killReactorBackends } from './lib.mjs';
import { serve, Client, signJwt, nowS, metric } from './wslib.mjs';

const SECRET = 'adv-forged-notify-secret';

test('a role without rights on schema reactor can neither inject, suppress nor replay events', { timeout: 90000 }, async () => {
  const url = await freshDatabase('adv_forged');
  const db = await connect(url);
  const admin = await connect(process.env.DATABASE_URL);
  const role = `mallory_${process.pid}`;
  await admin.query(`DROP ROLE IF EXISTS ${role}`);
  await admin.query(`CREATE ROLE ${role} LOGIN`);
  const mallory = await connect(Object.assign(new URL(url), { username: role }).toString());
  let reactor;
  let alice;
  try {
    assert.equal((await db.query(`SELECT has_schema_privilege($1, 'reactor', 'USAGE') AS u`, [role])).rows[0].u, false,
      'mallory has no rights on schema reactor');
    const heard = [];
    mallory.on('notification', (n) => { if (n.channel === 'job_status_changed') heard.push(n.payload); });
    await mallory.query('LISTEN job_status_changed');
    const insertJob = (id) => db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, user_id, frequency_type, frequency_config)
                                        VALUES ($1, 'sync', 'alice', 'once', '{}')`, [id]);

    // Before the reactor runs: a real event mallory hears.
    await insertJob('before');
    await eventually(async () => heard.length === 1, { what: 'mallory to hear the first event' });
    const heardBefore = heard[0];

    const journal = path.join(tempDir(), 'journal.ndjson');
    reactor = await serve(url, ['--jwt-secret', SECRET, '--record', journal]);
    const firstId = Number((await db.query('SELECT max(id) AS m FROM reactor.job_events')).rows[0].m) + 1;
    const token = signJwt({ sub: 'alice', exp: nowS() + 600 }, SECRET);
    alice = await Client.open(reactor.port, { headers: { Authorization: `Bearer ${token}` } });
    await alice.subscribe('s', {});

    // A real event during the run, heard by mallory too; then the reactor's connection is
    // killed, so its catch-up read moves the horizon past that event's transaction.
    await insertJob('during');
    await alice.next((m) => m.type === 'event' && m.event.job_id === 'during', 15000, 'the event of job during');
    await eventually(async () => heard.length === 2, { what: 'mallory to hear the second event' });
    const heardDuring = heard[1];
    const lost = reactor.waitFor(/catching up -> ready/, 20000);
    assert.ok(await killReactorBackends(admin) >= 1);
    await lost;

    // The attack. The next id, for alice; a huge id; a heard notification with its id
    // changed; the two heard notifications again, verbatim.
    const next = Number((await db.query('SELECT last_value + 1 AS n FROM reactor.job_events_id_seq')).rows[0].n);
    const forged = (id, status) => JSON.stringify({ id, kind: 'status', job_id: 'during', source: 'scheduled_jobs',
      status, old_status: 'pending', user_id: 'alice', job_type: 'sync', attempt: null, progress: null,
      message: null, error: null, result: null, scheduled_for: null, deadline: null, at: new Date().toISOString() });
    const notify = (text) => mallory.query(`SELECT pg_notify('job_status_changed', $1)`, [text]);
    await notify(forged(next, 'completed'));
    await notify(`{"id":9000000000000000000,${forged(next + 1, 'failed').slice(1).replace(/"id":\d+,/, '')}`);
    await notify(heardDuring.replace(/"id": ?\d+/, `"id": ${next}`));
    await notify(heardBefore);
    await notify(heardDuring);

    // Then the real change that takes id `next`, and a marker after everything.
    await db.query(`UPDATE reactor.scheduled_jobs SET status = 'running' WHERE id = 'during'`);
    await insertJob('marker');
    await alice.next((m) => m.type === 'event' && m.event.job_id === 'marker', 15000, 'the marker event');

    const rows = (await db.query(`SELECT id::int AS id, payload::text AS p FROM reactor.job_events
                                  WHERE id >= $1 ORDER BY id`, [firstId])).rows;
    assert.equal(rows.find((r) => r.id === next)?.p.includes('"running"'), true, 'the real change took the forged id');
    // Alice got exactly the logged events of the run, each once, as logged.
    assert.deepEqual(alice.events(), rows.map((r) => JSON.parse(r.p)));
    // last_event_id is the real last one.
    const last = rows.at(-1).id;
    const late = await Client.open(reactor.port, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(late.messages[0].last_event_id, last);
    await late.close();
    assert.equal(await metric(reactor.port, 'reactor_last_event_id'), last);
    // The journal holds the same events, byte for byte.
    // (written from the thread pool after the send: it may trail the WebSocket a little)
    const lines = await eventually(async () => { const l = await readJournal(journal); return l.length >= rows.length && l; },
      { timeout: 10000, what: 'the journal' });
    assert.deepEqual(lines.map((l) => l.event.id), rows.map((r) => r.id));
    // Counted by reason and logged.
    assert.equal(await metric(reactor.port, 'reactor_payloads_rejected_total', 'reason="unsigned"'), 2);
    assert.equal(await metric(reactor.port, 'reactor_payloads_rejected_total', 'reason="bad_signature"'), 1);
    // The replays: stale (older than the horizon) or, if another session's transaction
    // held the horizon back, still remembered as duplicates. Never delivered (above).
    const stale = await metric(reactor.port, 'reactor_stale_notifications_total');
    const dups = await metric(reactor.port, 'reactor_duplicates_dropped_total');
    assert.ok(stale >= 1 && stale + dups >= 2, `stale ${stale}, duplicates ${dups}`);
    // One line per batch (rate-limited) with the last reason; the counts above are per reason.
    assert.match(reactor.stderr, /rejected a notification on channel job_status_changed: (unsigned|bad_signature)/);
    // And mallory could not have signed: the key is not readable.
    await assert.rejects(mallory.query('SELECT key FROM reactor.notify_key'), { code: '42501' });
  } finally {
    await alice?.close();
    const exit = await reactor?.stop('SIGTERM');
    await mallory.end();
    await db.end();
    await admin.query(`DROP ROLE IF EXISTS ${role}`);
    await admin.end();
    if (exit) assert.equal(exit.code, 0);
  }
});
