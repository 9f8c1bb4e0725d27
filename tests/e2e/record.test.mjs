// `reactor serve --record FILE` end to end: the journal gets every delivered event in
// order, a rename + SIGHUP rotates it, and `--replay` gives back the delivered bytes.
//
// The database is a stand-in holding only what the reactor reads (reactor.job_events:
// id, txid, horizon, payload; reactor.notify_key), so this test covers the journal whatever the
// migrations contain. Its notifications are signed here, as docs/events.md specifies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createHmac, randomBytes } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { BIN, dbUrl, connect, startReactor, readJournal, eventually, tempDir } from './lib.mjs';

const KEY = randomBytes(32);
let dbCounter = 0;
async function standInDatabase() {
  const name = `e2e_record_${process.pid}_${++dbCounter}`;
  const admin = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name}`);
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = dbUrl(name);
  const c = await connect(url);
  await c.query(`CREATE SCHEMA reactor;
    CREATE TABLE reactor.job_events (id bigserial PRIMARY KEY,
      txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
      horizon xid8 NOT NULL DEFAULT pg_snapshot_xmin(pg_current_snapshot()), payload jsonb NOT NULL);
    CREATE TABLE reactor.notify_key (id integer PRIMARY KEY, key bytea NOT NULL)`);
  await c.query(`INSERT INTO reactor.notify_key VALUES (1, $1)`, [KEY]);
  return { url, c };
}

// Commits one event row and its notification; returns the payload text as notified.
async function emit(c, id, extra = {}) {
  await c.query('BEGIN');
  const r = await c.query(
    `INSERT INTO reactor.job_events (id, payload) VALUES ($1, $2::jsonb) RETURNING payload::text AS p, txid::text AS txid`,
    [id, JSON.stringify({ id, kind: 'status', job_id: `job_${id}`, source: 'scheduled_jobs',
      status: 'running', user_id: 'u1', job_type: 'sync', ...extra })]);
  const { p, txid } = r.rows[0];
  const mac = createHmac('sha256', KEY).update(`job_status_changed:${txid}:${p}`, 'utf8').digest('hex');
  await c.query(`SELECT pg_notify('job_status_changed', $1)`, [`{"mac":"${mac}","txid":"${txid}",${p.slice(1)}`]);
  await c.query('COMMIT');
  return r.rows[0].p;
}

function replay(file) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, ['--replay', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('record, rotate with rename + SIGHUP, replay: the delivered bytes, in order', async () => {
  const { url, c } = await standInDatabase();
  const dir = tempDir('reactor-record-');
  const file = path.join(dir, 'events.ndjson');
  const rotated = `${file}.1`;
  const reactor = startReactor(['serve', '--database-url', url, '--record', file,
    '--listen', '127.0.0.1:0', '--no-scheduler', '--log-level', 'info']);
  try {
    await reactor.ready;
    const before = Date.now();
    const sent = [];
    sent.push(await emit(c, 1));
    sent.push(await emit(c, 2, { message: 'café "quoted" \\ ✓', progress: 40 }));
    await eventually(async () => (await readJournal(file)).length === 2, { what: 'two journal lines' });

    fs.renameSync(file, rotated);
    const reopened = reactor.waitFor(/journal .*: reopened/);
    reactor.child.kill('SIGHUP');
    await reopened;
    sent.push(await emit(c, 3));
    sent.push(await emit(c, 4));
    await eventually(async () => (await readJournal(file)).length === 2, { what: 'lines in the new file' });

    const first = await readJournal(rotated);
    const second = await readJournal(file);
    assert.deepEqual([...first, ...second].map((l) => l.event.id), [1, 2, 3, 4]);
    const times = [...first, ...second].map((l) => l.t);
    for (let i = 0; i < times.length; i++) {
      assert.ok(Number.isInteger(times[i]) && times[i] >= before - 1000 && times[i] <= Date.now() + 1000,
        `t ${times[i]} is the receive time in Unix ms`);
      if (i > 0) assert.ok(times[i] >= times[i - 1], 'times follow delivery order');
    }

    const a = await replay(rotated);
    const b = await replay(file);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(a.stdout + b.stdout, sent.map((p) => `${p}\n`).join(''));
  } finally {
    const exit = await reactor.stop('SIGTERM');
    await c.end();
    fs.rmSync(dir, { recursive: true, force: true });
    assert.equal(exit.code, 0, reactor.stderr.slice(-2000));
  }
  assert.match(reactor.stderr, /journal .*: closed; 4 line\(s\) written/);
});

test('a --record path that cannot be opened stops serve with a clear error', async () => {
  const dir = tempDir('reactor-record-');
  const file = path.join(dir, 'missing-dir', 'events.ndjson');
  const reactor = startReactor(['serve', '--database-url', process.env.DATABASE_URL,
    '--record', file, '--listen', '127.0.0.1:0'], { readyPattern: null });
  const exit = await reactor.exitPromise;
  fs.rmSync(dir, { recursive: true, force: true });
  assert.equal(exit.code, 1);
  assert.ok(reactor.stderr.includes(`cannot open journal ${file}: no such file or directory`), reactor.stderr);
});
