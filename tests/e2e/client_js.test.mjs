// The JavaScript client package (src/clients/js) against a real reactor: connect,
// authenticate, subscribe with a filter and a snapshot; resume across a reactor
// restart; a gap answered with a fresh snapshot; de-duplication of repeated frames;
// token refresh before exp (and, without it, the 1008 that refresh avoids). Also: the
// reactor serves the package byte for byte at /clients/js/index.js.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { ROOT, freshDatabase, connect, startReactor, eventually, sleep } from './lib.mjs';
import { serve, signJwt, nowS, insertJobs, bump, http, maxEventId } from './wslib.mjs';
import { ReactorClient, tokenExpiry, matchesFilter } from '../../src/clients/js/index.js';

const SECRET = 'client-js-secret';
const tokenOf = (sub, ttl = 3600, extra = {}) => signJwt({ sub, exp: nowS() + ttl, ...extra }, SECRET);

function client(port, opts = {}) {
  const c = { events: [], snapshots: [], gaps: [], states: [], closes: [] };
  c.rc = new ReactorClient({
    url: `ws://127.0.0.1:${port}/ws`, WebSocket,
    onState: (s) => c.states.push(s), onClose: (e) => c.closes.push(e), ...opts,
  });
  return c;
}
const sub = (c, id, opts = {}) => c.rc.subscribe(id, {
  onEvent: (e) => c.events.push({ sub: id, ...e }), onSnapshot: (m) => c.snapshots.push(m),
  onGap: (m) => c.gaps.push(m), ...opts,
});
const ids = (c, id) => c.events.filter((e) => e.sub === id).map((e) => e.id);
const live = (c) => eventually(() => c.rc.state === 'live' && [...c.rc.subs.values()].every((s) => s.subscribed), { timeout: 10000, what: 'client live' });

test('connect, authenticate, subscribe with a filter and a snapshot; only what the user may see', { timeout: 30000 }, async () => {
  const url = await freshDatabase('client_js_basic');
  const db = await connect(url);
  await insertJobs(db, 12, { prefix: 'c', users: ['u1', 'u2'], type: 'cj' });
  const r = await serve(url, ['--jwt-secret', SECRET]);
  const c = client(r.port, { token: tokenOf('u1') });
  sub(c, 'mine', { filter: { job_type: ['cj'] }, snapshot: true });
  sub(c, 'failed', { filter: { job_type: ['cj'], status: ['failed'] } });
  c.rc.start();
  await eventually(() => c.snapshots.length === 1, { what: 'snapshot' });
  assert.equal(c.snapshots[0].jobs.length, 6, 'the snapshot holds u1\'s six jobs');
  assert.ok(c.snapshots[0].jobs.every((j) => j.user_id === 'u1'));
  await bump(db, Array.from({ length: 12 }, (_, i) => `c_${i}`));  // pending -> running, 12 events
  const { rows } = await db.query(`SELECT id::int AS id, job_id, user_id, job_type, status FROM reactor.job_events
                                    WHERE old_status IS NOT NULL ORDER BY id`);
  const want = rows.filter((x) => x.user_id === 'u1' && matchesFilter({ job_type: ['cj'] }, x)).map((x) => x.id);
  assert.equal(want.length, 6);
  await eventually(() => ids(c, 'mine').length >= 6, { what: 'six events' });
  await sleep(200);
  assert.deepEqual(ids(c, 'mine'), want);
  assert.deepEqual(ids(c, 'failed'), [], 'a filter matching none of them');
  assert.equal(c.rc.server?.startsWith('reactor/'), true);
  // The dashboard's copy is this file, served by the binary.
  const served = await http(r.port, 'GET', '/clients/js/index.js');
  assert.equal(served.status, 200);
  assert.match(served.headers['content-type'], /javascript/);
  assert.equal(served.body, readFileSync(path.join(ROOT, 'src/clients/js/index.js'), 'latin1'));
  c.rc.stop();
  await r.stop();
  await db.end();
});

test('resume across a reactor restart: events committed while it was down arrive once, in order', { timeout: 40000 }, async () => {
  const url = await freshDatabase('client_js_restart');
  const db = await connect(url);
  await insertJobs(db, 20, { prefix: 'r', type: 'cj' });
  let r = await serve(url);
  const port = r.port;
  const c = client(port, { random: () => 0.5 });
  sub(c, 'all', { filter: { job_type: 'cj' } });
  c.rc.start();
  await live(c);
  const base = await maxEventId(db);
  await bump(db, ['r_0', 'r_1', 'r_2']);
  await eventually(() => ids(c, 'all').length === 3, { what: 'three events' });
  assert.equal((await r.stop('SIGTERM')).code, 0);
  await eventually(() => c.closes.length === 1, { what: 'the close' });
  assert.equal(c.closes[0].code, 1001);
  for (let k = 0; k < 3; k++) await bump(db, Array.from({ length: 20 }, (_, i) => `r_${i}`));  // 60 events, no reactor
  r = startReactor(['serve', '--database-url', url, '--listen', `127.0.0.1:${port}`, '--no-scheduler']);
  await r.ready;
  await bump(db, ['r_5']);
  const { rows } = await db.query('SELECT id::int AS id, job_id FROM reactor.job_events WHERE id > $1 ORDER BY id', [base]);
  assert.equal(rows.length, 64);
  await eventually(() => ids(c, 'all').length >= 64, { timeout: 20000, what: 'every event after the restart' });
  await sleep(300);
  assert.deepEqual([...ids(c, 'all')].sort((a, b) => a - b), rows.map((x) => x.id), 'each event once');
  for (const job of ['r_0', 'r_5', 'r_19']) {
    const got = c.events.filter((e) => e.job_id === job).map((e) => e.id);
    assert.deepEqual(got, rows.filter((x) => x.job_id === job).map((x) => x.id), `order of ${job}`);
  }
  assert.ok(c.states.includes('reconnecting'));
  assert.equal(c.rc.state, 'live');
  assert.equal(c.rc.stats.reconnects >= 1, true);
  assert.equal(c.gaps.length, 0);
  c.rc.stop();
  await r.stop();
  await db.end();
});

test('a gap (the resume point was deleted while the reactor was down) is answered with a fresh snapshot', { timeout: 40000 }, async () => {
  const url = await freshDatabase('client_js_gap');
  const db = await connect(url);
  await insertJobs(db, 5, { prefix: 'g', type: 'cj' });
  let r = await serve(url);
  const port = r.port;
  const c = client(port, { random: () => 0.5 });
  sub(c, 'jobs', { filter: { job_type: 'cj' }, snapshot: true });
  c.rc.start();
  await eventually(() => c.snapshots.length === 1, { what: 'first snapshot' });
  await bump(db, ['g_0']);
  await eventually(() => ids(c, 'jobs').length === 1, { what: 'an event' });
  await r.stop();
  await bump(db, ['g_0', 'g_1']);
  // Retention removed everything up to now: the resume point is gone.
  await db.query('DELETE FROM reactor.job_events');
  r = startReactor(['serve', '--database-url', url, '--listen', `127.0.0.1:${port}`, '--no-scheduler']);
  await r.ready;
  await eventually(() => c.snapshots.length === 2, { timeout: 15000, what: 'a second snapshot after the gap' });
  assert.equal(c.gaps.length, 1);
  assert.equal(c.gaps[0].id, 'jobs');
  const snap = Object.fromEntries(c.snapshots[1].jobs.map((j) => [j.id, j.status]));
  assert.equal(snap.g_0, 'completed');   // pending -> running -> completed
  assert.equal(snap.g_1, 'running');
  assert.equal(snap.g_2, 'pending');
  // Live again after it.
  await bump(db, ['g_2']);
  await eventually(() => c.events.some((e) => e.job_id === 'g_2' && e.status === 'running'), { what: 'live after the snapshot' });
  c.rc.stop();
  await r.stop();
  await db.end();
});

test('de-duplication: an event a resume repeats is handed out once', { timeout: 30000 }, async () => {
  const url = await freshDatabase('client_js_dedup');
  const db = await connect(url);
  const other = await connect(url);
  await insertJobs(db, 4, { prefix: 'd', type: 'cj' });
  let r = await serve(url);
  const port = r.port;
  const c = client(port, { random: () => 0.5 });
  const all = [];
  c.rc.onEvent = (e) => all.push(e.id);
  sub(c, 'a', { filter: { job_type: 'cj' } });
  c.rc.start();
  await live(c);
  // Ids are not commit order: X is taken first and committed last, so X is the last
  // event received (the resume point) and X+1, committed before it, comes after X in
  // id order.
  await db.query('BEGIN');
  await bump(db, ['d_0']);
  await bump(other, ['d_1']);
  await eventually(() => ids(c, 'a').length === 1, { what: 'X+1' });
  await db.query('COMMIT');
  await eventually(() => ids(c, 'a').length === 2, { what: 'X' });
  const [late, x] = ids(c, 'a');
  assert.equal(late, x + 1);
  assert.equal(c.rc.subscription('a').cursor, x, 'resumes from the last event received');
  // A new reactor (no history) resumes from reactor.job_events: every transaction that
  // was open when X was written, or began later, which includes X+1 again.
  await r.stop();
  r = startReactor(['serve', '--database-url', url, '--listen', `127.0.0.1:${port}`, '--no-scheduler']);
  await r.ready;
  await eventually(() => c.rc.state === 'live' && c.rc.stats.reconnects === 1, { what: 'resumed' });
  await bump(other, ['d_2']);
  await eventually(() => ids(c, 'a').length === 3, { what: 'the next event' });
  await sleep(300);
  assert.ok(c.rc.stats.duplicates >= 1, `the server repeated X+1 (duplicates ${c.rc.stats.duplicates})`);
  assert.deepEqual(ids(c, 'a'), [x + 1, x, x + 2], 'each once');
  assert.deepEqual(all, [x + 1, x, x + 2], 'the client\'s onEvent: each once');
  c.rc.stop();
  await r.stop();
  await other.end();
  await db.end();
});

test('token refresh: an auth message before exp keeps the connection; without refresh it is closed 1008', { timeout: 30000 }, async () => {
  const url = await freshDatabase('client_js_token');
  const db = await connect(url);
  await insertJobs(db, 2, { prefix: 't', users: ['u1'], type: 'cj' });
  const r = await serve(url, ['--jwt-secret', SECRET, '--jwt-leeway-s', '0']);
  const short = () => tokenOf('u1', 3);
  const refreshed = [];
  const a = client(r.port, {
    token: short(),
    refreshToken: async () => { const t = tokenOf('u1', 3); refreshed.push(tokenExpiry(t)); return t; },
  });
  const b = client(r.port, { token: short() });
  for (const c of [a, b]) { sub(c, 's', { filter: { job_type: 'cj' } }); c.rc.start(); }
  await live(a);
  await live(b);
  await sleep(4500);  // past the first token's exp (3 s)
  await bump(db, ['t_0']);
  await eventually(() => ids(a, 's').length === 1, { what: 'an event after the first exp' });
  assert.ok(a.rc.stats.refreshes >= 2, `refreshed ${a.rc.stats.refreshes} times`);
  assert.equal(a.closes.length, 0, 'the refreshing client was never closed');
  assert.equal(b.closes.length, 1);
  assert.equal(b.closes[0].code, 1008);
  assert.equal(b.rc.state, 'auth');
  assert.equal(ids(b, 's').length, 0);
  a.rc.stop();
  b.rc.stop();
  await r.stop();
  await db.end();
});

test("the operator's console: action, history pages, counts; refusals and a dropped connection reject", { timeout: 30000 }, async () => {
  const url = await freshDatabase('client_js_console');
  const db = await connect(url);
  await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, user_id) VALUES ('k1', 'cj', 'u1'), ('k2', 'cj', 'u2')`);
  const r = await serve(url, ['--jwt-secret', SECRET]);
  const admin = client(r.port, { token: signJwt({ sub: 'boss', role: 'admin', exp: nowS() + 3600 }, SECRET) });
  const counts = [];
  admin.rc.watchCounts((m) => counts.push(m));
  sub(admin, 'all', {});
  admin.rc.start();
  await live(admin);
  const ack = await admin.rc.action('cancel', 'k1');
  assert.equal(ack.type, 'ack');
  await eventually(() => admin.events.some((e) => e.id === ack.event_id && e.cause === 'user' && e.actor === 'boss'), { what: 'the action\'s event' });
  await assert.rejects(admin.rc.action('cancel', 'k1'), (e) => e.code === 'conflict');
  await assert.rejects(admin.rc.action('cancel', 'nope'), (e) => e.code === 'not_found');
  await admin.rc.action('set_priority', 'k2', 'low');
  const page1 = await admin.rc.history('k1', { limit: 1 });
  assert.equal(page1.events.length, 1);
  assert.equal(page1.events[0].id, ack.event_id);
  assert.equal(page1.more, true);
  const page2 = await admin.rc.history('k1', { before: page1.events[0].id });
  assert.equal(page2.more, false);
  assert.ok(page2.events.every((e) => e.id < ack.event_id));
  await eventually(() => counts.length > 0 && counts.at(-1).counts.cancelled?.cj === 1, { what: 'counts with the cancelled job' });
  // A user: no actions without --allow-user-actions, no counts.
  const u = client(r.port, { token: tokenOf('u2') });
  const userCounts = [];
  u.rc.watchCounts((m) => userCounts.push(m));
  sub(u, 'mine', {});
  u.rc.start();
  await live(u);
  await assert.rejects(u.rc.action('cancel', 'k2'), (e) => e.code === 'forbidden');
  assert.deepEqual(userCounts, []);
  // A request outstanding when the connection drops is rejected, not left hanging.
  const pending = admin.rc.history('k2');
  admin.rc.ws.terminate();
  await assert.rejects(pending, (e) => e.code === 'closed');
  admin.rc.stop();
  u.rc.stop();
  await db.end();
  await r.stop();
});
