// Conflation (docs/protocol.md "Conflation"): a subscriber that asked for `conflate` and
// reads slowly is not closed when it falls behind; it ends with every job's final state,
// in per-job order, told how many events it missed; a fast subscriber beside it gets
// everything.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { freshDatabase, connect, eventually } from './lib.mjs';
import { serve, Client, Raw, frame, parseFrames, metric, insertJobs, maxEventId, sleep } from './wslib.mjs';

let db, url;
const JOBS = 25;
before(async () => {
  url = await freshDatabase('ws_conflate');
  db = await connect(url);
  await insertJobs(db, JOBS, { prefix: 'c', users: ['u1'] });
});
after(async () => { await db?.end(); });

// `rounds` statements, each a 4 KB progress message on every job (about 100 KB of frames):
// 400 rounds are far more than the queue (64 KiB) and the kernel's loopback buffers hold.
async function load(rounds) {
  for (let i = 0; i < rounds; i++) {
    await db.query(`UPDATE reactor.scheduled_jobs SET progress_percent = $1::int, progress_message = repeat(md5($1::int::text), 128)
                     WHERE id LIKE 'c\\_%'`, [i % 101]);
  }
}

test('a conflating slow reader ends with every job\'s final state; a plain fast one gets every event', { timeout: 120000 }, async () => {
  const reactor = await serve(url, ['--max-queue-bytes', '65536']);
  const port = reactor.port;
  const fast = await Client.open(port);
  await fast.subscribe('all');

  const slow = await Raw.open(port);
  await slow.upgrade();
  await slow.write(frame(1, JSON.stringify({ op: 'subscribe', id: 'c', conflate: true })));
  await slow.frame((f) => f.opcode === 1 && f.text.includes('"subscribed"'));
  // Reads slowly: one read (at most 64 KiB) every 500 ms.
  slow.sock.pause();
  const reader = setInterval(() => { slow.sock.once('data', () => slow.sock.pause()); slow.sock.resume(); }, 500);

  const from = await maxEventId(db);
  await load(400);
  const last = await maxEventId(db);
  await fast.next((m) => m.type === 'event' && m.event.id === last, 60000);
  assert.ok(await metric(port, 'reactor_conflated_events_total') > 0, 'events were conflated');

  // Now it reads everything.
  clearInterval(reader);
  slow.sock.resume();
  const { rows } = await db.query(`SELECT DISTINCT ON (job_id) job_id, id::int FROM reactor.job_events
                                    WHERE id > $1 ORDER BY job_id, id DESC`, [from]);
  assert.equal(rows.length, JOBS);
  const finals = new Map(rows.map((r) => [r.job_id, r.id]));
  const events = () => slow.frames().filter((f) => f.opcode === 1 && f.text.startsWith('{"type":"event"'))
    .map((f) => JSON.parse(f.text).event);
  // Done when every job's final event is in, and the markers account for the rest (the last
  // marker may follow the last event it speaks of).
  await slow.until((b) => {
    const texts = parseFrames(b).frames.filter((f) => f.opcode === 1).map((f) => f.text);
    const seen = new Set(texts.filter((t) => t.startsWith('{"type":"event"')).map((t) => JSON.parse(t).event.id));
    const missed = texts.filter((t) => t.startsWith('{"type":"conflated"')).reduce((n, t) => n + JSON.parse(t).dropped, 0);
    return [...finals.values()].every((id) => seen.has(id)) && [...seen].filter((id) => id > from).length + missed >= last - from;
  }, 30000);
  assert.ok(!slow.isClosed, 'the conflating reader is still connected');
  assert.equal(slow.frames().filter((f) => f.opcode === 8).length, 0, 'no close frame');

  const got = events().filter((e) => e.id > from);
  // Every job's final event arrived, and within a job ids only grow.
  const lastSeen = new Map();
  for (const e of got) {
    assert.ok((lastSeen.get(e.job_id) ?? 0) < e.id, `per-job order for ${e.job_id}`);
    lastSeen.set(e.job_id, e.id);
  }
  assert.deepEqual(new Map([...lastSeen].sort()), new Map([...finals].sort()));
  // It was told how many it missed, and those plus what it got are every event.
  const dropped = slow.frames().filter((f) => f.opcode === 1 && f.text.startsWith('{"type":"conflated"'))
    .reduce((n, f) => n + JSON.parse(f.text).dropped, 0);
  const total = last - from;
  assert.ok(dropped > 0, 'a conflated marker');
  assert.equal(got.length + dropped, total);
  assert.equal(await metric(port, 'reactor_slow_consumer_closes_total'), 0);
  assert.equal(await metric(port, 'reactor_conflated_events_total'), dropped);
  // The fast plain subscriber got every event, each once.
  const fastIds = fast.eventIds().filter((id) => id > from);
  assert.equal(fastIds.length, total);
  assert.equal(new Set(fastIds).size, total);
  console.log(`# ${total} events over ${JOBS} jobs: the conflating reader got ${got.length}, ${dropped} conflated`);
  slow.destroy();
  await fast.close();
  assert.equal((await reactor.stop()).code, 0);
});
