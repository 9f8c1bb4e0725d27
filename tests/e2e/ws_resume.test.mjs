// Resume and snapshots (CONTRACT section 5): `since` served from the in-memory history,
// from reactor.job_events when the history no longer has it (small --history, or a
// restarted reactor), a `gap` when neither can; and snapshots taken while writers run
// leave no gap between the rows and the events that follow.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { freshDatabase, connect, eventually } from './lib.mjs';
import { serve, Client, metric, insertJobs, bump, maxEventId, sleep } from './wslib.mjs';

let db, url;
before(async () => {
  url = await freshDatabase('ws_resume');
  db = await connect(url);
  await insertJobs(db, 300, { prefix: 'r', users: ['u1', 'u2', null] });
});
after(async () => { await db?.end(); });

const jobIds = (n, from = 0) => Array.from({ length: n }, (_, i) => `r_${from + i}`);

// Writes `batches` statements of `size` status changes, one every `pause` ms.
async function write(batches, size = 10, pause = 5) {
  for (let b = 0; b < batches; b++) {
    await bump(db, jobIds(size, (b * size) % 290));
    if (pause) await sleep(pause);
  }
}

// Subscribes, and on each forced disconnect reconnects with `since` = the last id seen.
// `away` ms pass between the disconnect and the resume.
async function resumingReader(port, { kills, filter = {}, path = '/ws', away = 0 }) {
  const seen = [];
  let c = await Client.open(port, { path });
  await c.subscribe('s', { filter });
  const collect = (client) => client.ws.on('message', (d) => {
    const m = JSON.parse(d.toString());
    if (m.type === 'event') seen.push(m.event.id);
    if (m.type === 'gap') seen.push(`gap:${m.after}`);
  });
  collect(c);
  return {
    seen,
    async kill() {
      await c.terminate();
      await sleep(away);
      const since = seen.filter((x) => typeof x === 'number').at(-1) ?? 0;
      c = await Client.open(port, { path });
      collect(c);
      await c.subscribe('s', { filter, since });
      kills.n++;
    },
    close: () => c.close(),
  };
}

test('resume from the in-memory history after forced disconnects: nothing lost', { timeout: 60000 }, async () => {
  const reactor = await serve(url);
  const start = await maxEventId(db);
  const kills = { n: 0 };
  const r = await resumingReader(reactor.port, { kills });
  const writing = write(200);
  while (kills.n < 5) { await sleep(100); await r.kill(); }
  await writing;
  const { rows } = await db.query('SELECT id::int FROM reactor.job_events WHERE id > $1 ORDER BY id', [start]);
  await eventually(() => r.seen.includes(rows.at(-1).id), { what: 'the last event' });
  await sleep(200);
  assert.ok(!r.seen.some((x) => typeof x === 'string'), 'no gap');
  const got = new Set(r.seen);
  const missing = rows.filter((x) => !got.has(x.id)).map((x) => x.id);
  assert.deepEqual(missing, [], 'every event arrived');
  assert.ok(await metric(reactor.port, 'reactor_resumes_total', 'source="history"') >= 5);
  console.log(`# history resume: ${rows.length} events, ${kills.n} forced disconnects, ${r.seen.length - new Set(r.seen).size} repeats`);
  await r.close();
  assert.equal((await reactor.stop()).code, 0);
});

test('resume from reactor.job_events when the history is too short', { timeout: 60000 }, async () => {
  const reactor = await serve(url, ['--history', '20']);
  const start = await maxEventId(db);
  const kills = { n: 0 };
  const r = await resumingReader(reactor.port, { kills, filter: { user_id: 'u1' }, away: 100 });
  const writing = write(200);
  while (kills.n < 5) { await sleep(150); await r.kill(); }
  await writing;
  const { rows } = await db.query("SELECT id::int FROM reactor.job_events WHERE id > $1 AND user_id = 'u1' ORDER BY id", [start]);
  await eventually(() => r.seen.includes(rows.at(-1).id), { what: 'the last event' });
  await sleep(200);
  assert.ok(!r.seen.some((x) => typeof x === 'string'), 'no gap');
  const got = new Set(r.seen);
  assert.deepEqual(rows.filter((x) => !got.has(x.id)).map((x) => x.id), [], 'every event arrived');
  const fromDb = await metric(reactor.port, 'reactor_resumes_total', 'source="database"');
  assert.ok(fromDb >= 1, `${fromDb} database resumes`);
  console.log(`# database resume: ${rows.length} events of u1, ${fromDb} of ${kills.n} resumes from the table`);
  await r.close();
  assert.equal((await reactor.stop()).code, 0);
});

test('resume across a reactor restart, and a gap when the id is unknown', { timeout: 60000 }, async () => {
  let reactor = await serve(url);
  const c = await Client.open(reactor.port);
  await c.subscribe('s');
  await bump(db, jobIds(30));
  const first = await maxEventId(db);
  await c.next((m) => m.type === 'event' && m.event.id === first);
  assert.equal((await reactor.stop()).code, 0);
  assert.equal((await c.closedPromise).code, 1001);

  await bump(db, jobIds(30, 30));  // while no reactor runs
  reactor = await serve(url);
  await bump(db, jobIds(30, 60));
  const { rows } = await db.query('SELECT id::int FROM reactor.job_events WHERE id > $1 ORDER BY id', [first]);
  const d = await Client.open(reactor.port, { path: `/ws?since=${first}` });
  await d.next((m) => m.type === 'event' && m.event.id === rows.at(-1).id);
  await sleep(200);
  const got = new Set(d.eventIds());
  assert.deepEqual(rows.filter((x) => !got.has(x.id)).map((x) => x.id), []);
  // Older ids may come again (transactions that were open when `first` was written).
  const older = d.eventIds().filter((id) => id <= first);
  const known = new Set((await db.query('SELECT id::int FROM reactor.job_events WHERE id <= $1', [first])).rows.map((x) => x.id));
  assert.ok(older.every((id) => known.has(id)));

  const g = await Client.open(reactor.port);
  g.send({ op: 'subscribe', id: 'g', since: 987654321 });
  const gap = await g.next((m) => m.type === 'gap');
  assert.deepEqual({ id: gap.id, after: gap.after }, { id: 'g', after: 987654321 });
  // After a gap the subscription is live.
  await bump(db, ['r_0']);
  await g.next((m) => m.type === 'event' && m.event.job_id === 'r_0');
  assert.ok(await metric(reactor.port, 'reactor_gaps_total') >= 1);
  await Promise.all([d.close(), g.close()]);
  assert.equal((await reactor.stop()).code, 0);
});

test('snapshots under concurrent writes: rows plus the events after them give the table', { timeout: 60000 }, async () => {
  const reactor = await serve(url);
  const clients = [];
  let writing = true;
  const writers = [0, 1].map(async (w) => {
    let b = w;
    while (writing) {
      const ids = jobIds(7, (b * 7) % 290);
      await db.query('BEGIN');
      await bump(db, ids);
      await db.query('COMMIT');
      b += 2;
    }
  });
  // Six subscribers take their snapshot at different moments of the write storm.
  for (let i = 0; i < 6; i++) {
    await sleep(150);
    const c = await Client.open(reactor.port);
    c.send({ op: 'subscribe', id: 'snap', filter: i % 2 ? { user_id: 'u2' } : {}, snapshot: true });
    clients.push({ c, filter: i % 2 ? 'u2' : null });
  }
  await sleep(300);
  writing = false;
  await Promise.all(writers);
  const last = await maxEventId(db);
  const table = new Map((await db.query('SELECT id, status, user_id FROM reactor.scheduled_jobs')).rows.map((r) => [r.id, r]));
  const lastU2 = Number((await db.query("SELECT max(id) AS m FROM reactor.job_events WHERE user_id = 'u2'")).rows[0].m);
  for (const { c, filter } of clients) {
    await c.next((m) => m.type === 'event' && m.event.id === (filter ? lastU2 : last), 20000, 'the last event');
    const snap = c.messages.find((m) => m.type === 'snapshot');
    assert.ok(snap, 'a snapshot');
    const at = c.messages.indexOf(snap);
    assert.ok(c.messages.slice(0, at).every((m) => m.type !== 'event'), 'no event before the snapshot');
    const state = new Map(snap.jobs.map((j) => [j.id, j.status]));
    for (const m of c.messages.slice(at)) if (m.type === 'event') state.set(m.event.job_id, m.event.status);
    let checked = 0;
    for (const [id, row] of table) {
      if (filter && row.user_id !== filter) continue;
      if (!id.startsWith('r_')) continue;
      assert.equal(state.get(id), row.status, `job ${id} (snapshot as_of ${snap.as_of})`);
      checked++;
    }
    assert.ok(checked >= 100);
  }
  console.log(`# snapshots: ${clients.length} taken during ${last} events, as_of ${clients.map(({ c }) => c.messages.find((m) => m.type === 'snapshot').as_of).join(',')}`);
  await Promise.all(clients.map(({ c }) => c.close()));
  assert.equal((await reactor.stop()).code, 0);
});
