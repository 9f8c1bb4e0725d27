// The operator's console over real sockets against a real PostgreSQL (docs/protocol.md,
// "Actions", "A job's history", "Counts"): actions authorized by the token and audited
// in the event (cause user, the actor), refusals with the database's reason, a job a
// worker holds answered at once; a job's history paged and authorized; totals kept from
// the stream equal to SELECT … GROUP BY after the reactor's backends are killed and
// PostgreSQL restarts, with one GROUP BY however many dashboards watch; pong's queue
// bytes, welcome's mode, the event-age histogram.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { freshDatabase, connect, eventually, killReactorBackends, restartPostgres, statusWriter } from './lib.mjs';
import { serve, Client, signJwt, nowS, metric, sleep } from './wslib.mjs';

const SECRET = 'e2e-console-secret-0123456789';
const tok = (sub, role = 'authenticated') => signJwt({ sub, role, exp: nowS() + 3600 }, SECRET);
let url, reactor, db, port;

before(async () => {
  url = await freshDatabase('console');
  db = await connect(url);
  await db.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  reactor = await serve(url, ['--jwt-secret', SECRET, '--allow-user-actions']);
  port = reactor.port;
});
after(async () => { await db?.end(); await reactor?.stop(); });

const ops = () => Client.open(port, { headers: { Authorization: `Bearer ${tok('ops', 'admin')}` } });
const user = (sub) => Client.open(port, { headers: { Authorization: `Bearer ${tok(sub)}` } });
async function act(c, id, action, job_id, extra = {}) {
  c.send({ op: 'action', id, action, job_id, ...extra });
  return c.after((m) => (m.type === 'ack' || m.type === 'error') && m.id === id, 10000, `answer to ${id}`);
}
// JSON with keys sorted at every level (the totals' order is not the point).
const canonical = (x) => JSON.stringify(x, (k, v) => (v && typeof v === 'object' && !Array.isArray(v)
  ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v));
const jobRow = async (id) => (await db.query('SELECT * FROM reactor.scheduled_jobs WHERE id = $1', [id])).rows[0];

test('welcome says live; pong says the bytes queued', async () => {
  const c = await ops();
  assert.equal(c.messages[0].mode, 'live');
  c.send({ op: 'ping' });
  const pong = await c.next((m) => m.type === 'pong');
  assert.equal(typeof pong.queue_bytes, 'number');
  assert.ok(pong.queue_bytes >= 0);
  await c.close();
});

test('an action round trip: ack with the event id, the event says who did it', async () => {
  await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, user_id) VALUES ('act1', 'mail', 'alice')`);
  const watcher = await ops();
  await watcher.subscribe('all', { filter: { job_id: 'act1' } });
  const c = await ops();
  const ack = await act(c, 'a1', 'cancel', 'act1');
  assert.equal(ack.type, 'ack', JSON.stringify(ack));
  assert.equal(ack.action, 'cancel');
  assert.equal(ack.job_id, 'act1');
  const ev = (await watcher.next((m) => m.type === 'event' && m.event.id === ack.event_id)).event;
  assert.equal(ev.status, 'cancelled');
  assert.equal(ev.cause, 'user');
  assert.equal(ev.actor, 'ops');
  assert.equal(ev.action, 'cancel');
  assert.equal((await jobRow('act1')).status, 'cancelled');
  const logged = (await db.query('SELECT cause, actor FROM reactor.job_events WHERE id = $1', [ack.event_id])).rows[0];
  assert.deepEqual(logged, { cause: 'user', actor: 'ops' });

  // An action that changes neither status nor progress is an event of kind `action`.
  const prio = await act(c, 'a2', 'set_priority', 'act1', { arg: 'high' });
  assert.equal(prio.type, 'ack', JSON.stringify(prio));
  const pev = (await watcher.next((m) => m.type === 'event' && m.event.id === prio.event_id)).event;
  assert.equal(pev.kind, 'action');
  assert.equal(pev.priority, 'high');
  // retry_now brings the cancelled job back.
  const retry = await act(c, 'a3', 'retry_now', 'act1');
  assert.equal(retry.type, 'ack', JSON.stringify(retry));
  assert.equal((await jobRow('act1')).status, 'pending');
  // A snapshot row says what its newest event says: who did the last change, and its id.
  const later = await ops();
  later.send({ op: 'subscribe', id: 's', filter: { job_id: 'act1' }, snapshot: true });
  const [row] = (await later.next((m) => m.type === 'snapshot')).jobs;
  assert.deepEqual(row.last_event && { ...row.last_event, at: typeof row.last_event.at },
    { id: retry.event_id, kind: 'status', at: 'string', cause: 'user', actor: 'ops', action: 'retry_now', attempt: null });
  assert.equal(row.status, 'pending');
  // A job whose events were all pruned has none.
  await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, user_id) VALUES ('act2', 'mail', 'alice')`);
  await db.query(`DELETE FROM reactor.job_events WHERE job_id = 'act2'`);
  later.send({ op: 'subscribe', id: 's2', filter: { job_id: 'act2' }, snapshot: true });
  const [bare] = (await later.next((m) => m.type === 'snapshot' && m.id === 's2')).jobs;
  assert.equal(bare.id, 'act2');
  assert.equal(bare.last_event, null);
  await Promise.all([watcher.close(), c.close(), later.close()]);
});

test("refusals: another user's job, a state the action does not apply to, an unknown job, bad input", async () => {
  await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, user_id, status) VALUES
    ('own1', 'mail', 'bob', 'pending'), ('other1', 'mail', 'carol', 'pending'), ('done1', 'mail', 'bob', 'completed')`);
  const bob = await user('bob');
  const before = (await db.query('SELECT max(id)::int AS m FROM reactor.job_events')).rows[0].m;
  const forbidden = await act(bob, 'b1', 'cancel', 'other1');
  assert.equal(forbidden.type, 'error');
  assert.equal(forbidden.code, 'forbidden');
  assert.equal((await jobRow('other1')).status, 'pending');
  const conflict = await act(bob, 'b2', 'cancel', 'done1');
  assert.equal(conflict.code, 'conflict');
  assert.match(conflict.message, /completed/);
  // A user cannot tell another user's job from none at all.
  const missing = await act(bob, 'b3', 'cancel', 'no-such-job');
  assert.equal(missing.code, 'forbidden');
  assert.equal(missing.message.replace('no-such-job', 'other1'), forbidden.message);
  const ops1 = await ops();
  assert.equal((await act(ops1, 'o1', 'cancel', 'no-such-job')).code, 'not_found');
  await ops1.close();
  const bad = await act(bob, 'b4', 'set_priority', 'own1', { arg: 'urgent' });
  assert.equal(bad.code, 'bad_request');
  const after = (await db.query('SELECT max(id)::int AS m FROM reactor.job_events')).rows[0].m;
  assert.equal(after, before, 'a refused action writes no event');
  // Their own job: allowed (--allow-user-actions), the actor is the user.
  const ok = await act(bob, 'b5', 'disable', 'own1');
  assert.equal(ok.type, 'ack', JSON.stringify(ok));
  assert.equal((await jobRow('own1')).enabled, false);
  assert.ok(await metric(port, 'reactor_actions_total', 'result="refused"') >= 4);
  await bob.close();
});

test('a job a worker holds is answered conflict at once; other reads are not held up for long', async () => {
  await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('held1', 'mail'), ('free1', 'mail')`);
  const worker = await connect(url);
  await worker.query('BEGIN');
  await worker.query(`SELECT 1 FROM reactor.scheduled_jobs WHERE id = 'held1' FOR UPDATE`);
  const c = await ops();
  const t0 = Date.now();
  const held = await act(c, 'h1', 'cancel', 'held1');
  const took = Date.now() - t0;
  assert.equal(held.code, 'conflict', JSON.stringify(held));
  assert.match(held.message, /locked by a worker/);
  assert.ok(took < 8000, `answered after ${took} ms`);
  const free = await act(c, 'h2', 'cancel', 'free1');
  assert.equal(free.type, 'ack');
  await worker.query('ROLLBACK');
  await worker.end();
  await c.close();
});

test("a job's history: newest first, paged, causes of retries, a user sees only their own", async () => {
  await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, user_id, retry_backoff_seconds) VALUES ('hist1', 'sync', 'dave', 0)`);
  for (let i = 0; i < 2; i++) {
    await db.query(`UPDATE reactor.scheduled_jobs SET scheduled_for = now() WHERE id = 'hist1'`);
    const ex = (await db.query(`SELECT reactor.start_job('hist1') AS ex`)).rows[0].ex;
    await db.query(`SELECT reactor.fail_job('hist1', $1, $2)`, [ex, `boom ${i}`]);
  }
  const all = (await db.query(`SELECT id, cause FROM reactor.job_events WHERE job_id = 'hist1' ORDER BY id DESC`)).rows;
  assert.ok(all.length >= 5);
  const dave = await user('dave');
  dave.send({ op: 'history', id: 'p1', job_id: 'hist1', limit: 3 });
  const p1 = await dave.next((m) => m.type === 'history' && m.id === 'p1');
  assert.deepEqual(p1.events.map((e) => e.id), all.slice(0, 3).map((r) => Number(r.id)));
  assert.equal(p1.more, true);
  dave.send({ op: 'history', id: 'p2', job_id: 'hist1', limit: 100, before: p1.events[2].id });
  const p2 = await dave.next((m) => m.type === 'history' && m.id === 'p2');
  assert.deepEqual(p2.events.map((e) => e.id), all.slice(3).map((r) => Number(r.id)));
  assert.equal(p2.more, false);
  const causes = [...p1.events, ...p2.events].map((e) => e.cause);
  assert.ok(causes.includes('retry'), `causes ${causes}`);
  assert.ok(causes.includes('worker'), `causes ${causes}`);
  // Another user asking for dave's job gets nothing of it.
  const eve = await user('eve');
  eve.send({ op: 'history', id: 'x', job_id: 'hist1' });
  const none = await eve.next((m) => m.type === 'history' && m.id === 'x');
  assert.deepEqual(none.events, []);
  await Promise.all([dave.close(), eve.close()]);
});

test('counts: one GROUP BY for 50 dashboards; equal to the table after backend kills and a restart', async () => {
  const countsCalls = async () => Number((await db.query(
    `SELECT coalesce(sum(calls), 0)::int AS n FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
      WHERE d.datname = current_database() AND s.query LIKE '%GROUP BY status, job_type%'`)).rows[0].n);
  const truth = async () => {
    const rows = (await db.query('SELECT status, job_type, count(*)::int AS n FROM reactor.scheduled_jobs GROUP BY 1, 2')).rows;
    const out = {};
    for (const r of rows) (out[r.status] ??= {})[r.job_type] = r.n;
    return out;
  };
  await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, status)
                  SELECT 'cnt' || g, CASE WHEN g % 3 = 0 THEN 'report' ELSE 'mail' END, 'pending' FROM generate_series(0, 199) g`);
  const user1 = await user('frank');
  user1.send({ op: 'counts', id: 'c' });
  assert.equal((await user1.next((m) => m.type === 'error' && m.id === 'c')).code, 'forbidden');
  await user1.close();

  const readsBefore = await countsCalls();
  const viewers = await Promise.all(Array.from({ length: 50 }, () => ops()));
  for (const v of viewers) v.send({ op: 'counts' });
  for (const v of viewers) await v.next((m) => m.type === 'counts');
  assert.equal(canonical(viewers[7].messages.filter((m) => m.type === 'counts').at(-1).counts), canonical(await truth()));
  const readsWith50 = await countsCalls();
  assert.ok(readsWith50 - readsBefore <= 1, `GROUP BY ran ${readsWith50 - readsBefore} times for 50 viewers`);

  // Writers change statuses while the reactor's backends are killed three times and
  // PostgreSQL restarts; new jobs are inserted too.
  const state = { committed: 0 };
  const writer = statusWriter(url, state, { seed: 7, prefix: 'cnt', jobs: 200, changes: 1500 });
  for (let k = 0; k < 3; k++) {
    await eventually(() => state.committed >= (k + 1) * 300, { timeout: 60000, what: 'writes' });
    await killReactorBackends(db);
  }
  await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type) SELECT 'cntnew' || g, 'mail' FROM generate_series(0, 49) g`);
  await db.end();
  const back = reactor.waitFor(/caught up/, 60000);  // the catch-up after the restart, not before
  await restartPostgres();
  db = await connect(url);
  await writer;
  await back;
  const want = await truth();
  const v = viewers[0];
  await eventually(() => {
    const last = v.messages.filter((m) => m.type === 'counts').at(-1);
    return last && canonical(last.counts) === canonical(want);
  }, { timeout: 20000, what: `counts equal to ${JSON.stringify(want)}; last ${JSON.stringify(v.messages.filter((m) => m.type === 'counts').at(-1))}` });
  // At most five a second, to every viewer.
  const times = v.messages.filter((m) => m.type === 'counts').map((m) => m.receivedAt);
  const gaps = times.slice(1).map((t, i) => t - times[i]).sort((a, b) => a - b);
  assert.ok(gaps.length > 3, `only ${times.length} counts messages`);
  assert.ok(gaps[Math.floor(gaps.length / 2)] >= 150, `median gap ${gaps[Math.floor(gaps.length / 2)]} ms`);
  // Cost follows the viewers' number of messages, not reads: a handful of GROUP BYs
  // (start, each reconnect), not one per viewer or per event.
  const reads = await countsCalls();
  assert.ok(reads < 20, `${reads} GROUP BY reads`);
  assert.ok(await metric(port, 'reactor_event_age_seconds_count') > 0);
  assert.ok(await metric(port, 'reactor_connection_queue_bytes_count') >= 50);
  await Promise.all(viewers.map((x) => x.close()));
});

test('without a secret, a loopback peer acts as "local"', async () => {
  const open = await serve(url, []);
  try {
    await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type) VALUES ('loc1', 'mail')`);
    const c = await Client.open(open.port);
    const ack = await act(c, 'l1', 'disable', 'loc1');
    assert.equal(ack.type, 'ack', JSON.stringify(ack));
    const ev = (await db.query('SELECT cause, actor FROM reactor.job_events WHERE id = $1', [ack.event_id])).rows[0];
    assert.deepEqual(ev, { cause: 'user', actor: 'local' });
    await c.close();
  } finally {
    await open.stop();
  }
});
