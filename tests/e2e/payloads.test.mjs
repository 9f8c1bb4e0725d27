// Payloads the channel can carry besides ordinary events: oversize events (sent
// truncated, completed from reactor.job_events), garbage, and a foreign trigger's object
// (unsigned: passed on only with --accept-unsigned-payloads, rejected without it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { freshDatabase, connect, startReactor, readJournal, eventually, tempDir } from './lib.mjs';
import { metric } from './wslib.mjs';

const portOf = (reactor) => Number(reactor.stderr.match(/listening on 127\.0\.0\.1:(\d+)/)[1]);

test('oversize, garbage and foreign payloads (--accept-unsigned-payloads)', { timeout: 60000 }, async () => {
  const url = await freshDatabase('payloads');
  const journal = path.join(tempDir(), 'journal.ndjson');
  const reactor = startReactor(['serve', '--database-url', url, '--listen', '127.0.0.1:0',
    '--record', journal, '--no-scheduler', '--accept-unsigned-payloads']);
  await reactor.ready;
  const db = await connect(url);

  // A 50 KB result: the notification is truncated, the journal gets the whole event.
  await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, user_id, frequency_type, frequency_config)
                  VALUES ('big', 'export', 'u1', 'once', '{}')`);
  const exec = (await db.query(`SELECT reactor.start_job('big', 'manual') AS e`)).rows[0].e;
  const blob = 'x'.repeat(50 * 1024);
  await db.query(`SELECT reactor.complete_job('big', $1, jsonb_build_object('blob', $2::text))`, [exec, blob]);
  const row = (await db.query(`SELECT id::int AS id, payload::text AS p, octet_length(payload::text) AS n
                               FROM reactor.job_events WHERE job_id = 'big' AND status = 'completed'`)).rows[0];
  assert.ok(row.n > 50000);

  // Garbage, then a foreign object, then an ordinary event: the stream goes on.
  await db.query(`SELECT pg_notify('job_status_changed', 'this is not json')`);
  await db.query(`SELECT pg_notify('job_status_changed', '[1, 2, 3]')`);
  const foreign = '{"job_id": "q-17", "status": "processing", "progress_percent": 40, "nested": {"a": [1, "two"]}}';
  await db.query(`SELECT pg_notify('job_status_changed', $1)`, [foreign]);
  // A scheduling doorbell (docs/events.md) is for the scheduler only.
  await db.query(`UPDATE reactor.scheduler_config SET stuck_timeout_seconds = stuck_timeout_seconds + 1`);
  // 'big' has completed: progress is refused, and no event is made.
  await assert.rejects(db.query(`SELECT reactor.update_job_progress('big', 100, 'after the noise')`),
                       { code: '55000' });
  await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, frequency_type, frequency_config)
                  VALUES ('after', 'export', 'once', '{}')`);
  await db.query(`SELECT reactor.start_job('after', 'manual')`);
  await db.query(`SELECT reactor.update_job_progress('after', 50, 'after the noise')`);

  const entries = await eventually(async () => {
    const j = await readJournal(journal);
    return j.some((e) => e.event.job_id === 'after' && e.event.kind === 'progress') ? j : null;
  }, { what: 'the events after the noise' });
  assert.deepEqual(entries.filter((e) => e.event.job_id === 'after').map((e) => [e.event.kind, e.event.status]),
                   [['status', 'pending'], ['status', 'running'], ['progress', 'running']]);

  const big = entries.find((e) => e.event.id === row.id);
  assert.ok(big, 'the oversize event is in the journal');
  assert.equal(big.event.truncated, undefined);
  assert.equal(big.event.result.blob.length, blob.length);
  // Byte for byte what the table holds.
  const raw = await readFile(journal, 'utf8');
  assert.ok(raw.includes(row.p), 'the journal line carries the row payload verbatim');
  // The foreign object passes unchanged.
  assert.ok(raw.includes(`"event":${foreign}}`), 'foreign payload preserved byte for byte');
  assert.equal(entries.filter((e) => e.event.job_id === 'q-17').length, 1);
  // Garbage is dropped with a clear log line.
  await eventually(async () => /dropped a payload on channel job_status_changed: .*(not a JSON object|invalid JSON)/.test(reactor.stderr),
    { what: 'a log line about the garbage' });
  assert.ok(!raw.includes('this is not json'));
  assert.ok(!raw.includes('"config"'), 'doorbells are not journaled');
  assert.equal(await metric(portOf(reactor), 'reactor_unsigned_payloads_accepted_total'), 1);
  assert.equal(await metric(portOf(reactor), 'reactor_payload_errors_total'), 2);
  assert.equal(await metric(portOf(reactor), 'reactor_payloads_rejected_total', 'reason="unsigned"'), 0);

  await db.end();
  const exit = await reactor.stop('SIGINT');
  assert.equal(exit.code, 0);
});

test('without --accept-unsigned-payloads a foreign object is rejected, counted and logged', { timeout: 60000 }, async () => {
  const url = await freshDatabase('payloads_strict');
  const journal = path.join(tempDir(), 'journal.ndjson');
  const reactor = startReactor(['serve', '--database-url', url, '--listen', '127.0.0.1:0',
    '--record', journal, '--no-scheduler']);
  await reactor.ready;
  const db = await connect(url);
  const foreign = '{"job_id": "q-18", "status": "processing"}';
  await db.query(`SELECT pg_notify('job_status_changed', $1)`, [foreign]);
  await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, frequency_type, frequency_config)
                  VALUES ('after', 'export', 'once', '{}')`);
  const entries = await eventually(async () => {
    const j = await readJournal(journal);
    return j.some((e) => e.event.job_id === 'after') ? j : null;
  }, { what: 'the event after the foreign payload' });
  assert.deepEqual(entries.map((e) => e.event.job_id), ['after']);
  assert.equal(await metric(portOf(reactor), 'reactor_payloads_rejected_total', 'reason="unsigned"'), 1);
  await reactor.waitFor(/rejected a notification on channel job_status_changed: unsigned: \{"job_id": "q-18"/, 5000, true);
  await db.end();
  const exit = await reactor.stop('SIGINT');
  assert.equal(exit.code, 0);
});
