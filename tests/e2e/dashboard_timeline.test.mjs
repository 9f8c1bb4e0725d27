// The dashboard's time travel model (src/web/timeline.js) under Node: the state at any
// position equals the fold of the events before it, whatever way the position is
// reached (forward, backward, through checkpoints, after the oldest events went);
// moments from links; the paced player. No browser, no reactor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JobStore, normalizeFilter, STATUSES } from '../../src/web/store.js';
import { Timeline, parseMoment, playStep, MAX_IDLE_MS } from '../../src/web/timeline.js';

const T0 = Date.parse('2026-11-21T06:00:00Z');
const iso = (ms) => new Date(ms).toISOString();

// A realistic sequence: jobs are inserted, start, make progress, complete or fail,
// one event per 100 ms.
function sequence(n, jobs = 37) {
  const out = [];
  const state = new Map();
  let seed = 7;
  const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
  for (let i = 0; i < n; i++) {
    const j = `j${Math.floor(rnd() * jobs)}`;
    const was = state.get(j) ?? null;
    let status;
    let kind = 'status';
    let progress = null;
    if (was === null) status = 'pending';
    else if (was === 'pending') status = 'running';
    else if (was === 'running') {
      const r = rnd();
      if (r < 0.5) { kind = 'progress'; status = 'running'; progress = Math.floor(r * 200); }
      else status = r < 0.8 ? 'completed' : 'failed';
    } else status = 'pending';
    state.set(j, status);
    out.push({
      id: 1000 + i, kind, job_id: j, source: 'scheduled_jobs', status, old_status: was,
      user_id: `u${j.length % 3}`, job_type: Number(j.slice(1)) % 2 ? 'alpha' : 'beta', attempt: status === 'pending' ? null : 1,
      progress, message: null, error: status === 'failed' ? 'boom' : null, scheduled_for: null, at: iso(T0 + i * 100),
    });
  }
  return out;
}

// The reference: a fresh store folding events [0, p).
function fold(events, p, filter = {}) {
  const s = new JobStore();
  s.filter = filter;
  for (let i = 0; i < p; i++) s.apply(events[i]);
  return s;
}

function same(store, ref, what) {
  const rows = (s) => s.newest(1e9).map((r) => [r.id, r.status, r.progress, r.eventId]);
  assert.deepEqual(rows(store), rows(ref), `${what}: rows`);
  for (const st of STATUSES) assert.equal(store.counts[st], ref.counts[st], `${what}: count of ${st}`);
  assert.equal(store.lastEventId, ref.lastEventId, `${what}: last event id`);
}

test('timeline: the state at any position is the fold of the events before it', () => {
  const events = sequence(1500);
  const tl = new Timeline({ checkpointMin: 50 });
  for (const ev of events) tl.append(ev);
  assert.equal(tl.end, 1500);
  assert.ok(tl.checkpoints.length >= 10, `checkpoints: ${tl.checkpoints.length}`);
  const view = new JobStore();
  // Forward, backward, far and near jumps, the ends.
  const positions = [0, 1, 2, 49, 50, 51, 777, 778, 900, 120, 1500, 1499, 0, 1200, 1201, 1260, 333];
  const how = [];
  for (const p of positions) {
    how.push(tl.seek(view, p));
    assert.equal(view.position, p);
    same(view, fold(events, p), `position ${p}`);
  }
  assert.ok(how.includes('forward') && how.includes('restored'), how.join(','));
  // Moving forward by a little folds only what is in between.
  tl.seek(view, 700);
  assert.equal(tl.seek(view, 703), 'forward');
  same(view, fold(events, 703), 'position 703');
  // Out of range is clamped.
  tl.seek(view, 99999);
  assert.equal(view.position, 1500);
  tl.seek(view, -5);
  assert.equal(view.position, 0);
  assert.equal(view.size, 0);
});

test('timeline: a filter is applied to the state at the position', () => {
  const events = sequence(600);
  const tl = new Timeline({ checkpointMin: 40 });
  for (const ev of events) tl.append(ev);
  const view = new JobStore();
  const f = normalizeFilter({ job_type: 'alpha', status: ['running', 'failed'] });
  view.filter = f;
  for (const p of [0, 100, 555, 230, 600]) {
    tl.seek(view, p, { restore: true });
    same(view, fold(events, p, f), `filtered at ${p}`);
    tl.seek(view, p + 7 > 600 ? 600 : p + 7);
    same(view, fold(events, Math.min(600, p + 7), f), `filtered at ${p} + 7`);
  }
});

test('timeline: past its capacity the oldest events go; the state stays the fold of everything', () => {
  const events = sequence(2000);
  const tl = new Timeline({ capacity: 400, checkpointMin: 30 });
  let gone = 0;
  for (const ev of events) gone += tl.append(ev);
  assert.ok(tl.events.length <= 400, `kept ${tl.events.length}`);
  assert.ok(tl.events.length >= 300, `kept only ${tl.events.length}`);
  assert.equal(tl.start, gone);
  assert.equal(tl.dropped, gone);
  assert.equal(tl.end, 2000);
  assert.equal(tl.event(tl.start), events[tl.start]);
  const view = new JobStore();
  for (const p of [tl.start, tl.start + 1, 1999, 2000, tl.start + 150]) {
    tl.seek(view, p);
    same(view, fold(events, p), `position ${p} (timeline starts at ${tl.start})`);
  }
  tl.seek(view, 3);
  assert.equal(view.position, tl.start, 'before the start is the start');
  // Ids before the start are not found; a time before it resolves to the start.
  assert.equal(tl.positionOfId(1000), -1);
  assert.equal(tl.resolve({ ms: T0 }).pos, tl.start);
  // Memory: the checkpoints hold about as many rows as there are events, not more.
  const rows = tl.checkpoints.reduce((n, c) => n + c.state.jobs.size, 0);
  assert.ok(rows <= 2 * tl.events.length, `checkpoint rows ${rows} for ${tl.events.length} events`);
});

test('timeline: moments by id and by time; links', () => {
  const events = sequence(300);
  const tl = new Timeline();
  for (const ev of events) tl.append(ev);
  assert.deepEqual(tl.resolve({ id: 1000 }), { pos: 1, found: true });
  assert.deepEqual(tl.resolve({ id: 1123 }), { pos: 124, found: true });
  assert.deepEqual(tl.resolve({ id: 5 }), { pos: 300, found: false });
  // At 06:00:10.050 the events up to 06:00:10.000 (index 100) have happened.
  assert.deepEqual(tl.resolve({ ms: T0 + 10050 }), { pos: 101, found: true });
  assert.deepEqual(tl.resolve({ ms: T0 + 10000 }), { pos: 101, found: true });
  assert.deepEqual(tl.resolve({ ms: T0 - 1 }), { pos: 0, found: true });
  assert.deepEqual(tl.resolve({ ms: T0 + 3600000 }), { pos: 300, found: false });
  assert.deepEqual(tl.resolve({ start: true }), { pos: 0, found: true });
  assert.equal(tl.momentOf(124), 'id:1123');
  assert.equal(tl.momentOf(0), 'start');
  // The link of a position resolves to it.
  for (const p of [0, 1, 77, 300]) assert.equal(tl.resolve(parseMoment(tl.momentOf(p))).pos, p);

  assert.deepEqual(parseMoment('id:4711'), { id: 4711 });
  assert.deepEqual(parseMoment(' 4711 '), { id: 4711 });
  assert.deepEqual(parseMoment('start'), { start: true });
  assert.deepEqual(parseMoment('2026-11-21T06:00:10.050Z'), { ms: T0 + 10050 });
  assert.equal(parseMoment('soon'), null);
  assert.equal(parseMoment(''), null);
  const day = new Date(T0);
  const local = new Date(day.getFullYear(), day.getMonth(), day.getDate(), 7, 8, 9, 250).getTime();
  assert.deepEqual(parseMoment('07:08:09.25', T0), { ms: local });
  assert.equal(parseMoment('07:08', NaN), null);
});

test('timeline: a job\'s events before a position, newest first', () => {
  const events = sequence(400, 5);
  const tl = new Timeline();
  for (const ev of events) tl.append(ev);
  const key = 'scheduled_jobs\u0000j3';
  const want = events.slice(0, 250).filter((e) => e.job_id === 'j3').reverse();
  assert.ok(want.length > 5);
  assert.deepEqual(tl.jobEvents(key, 250), want);
  assert.deepEqual(tl.jobEvents(key, 250, 2), want.slice(0, 2));
  assert.deepEqual(tl.jobEvents(key, 0), []);
});

test('timeline: playing follows the events\' times at the chosen speed; long pauses are cut', () => {
  const tl = new Timeline();
  // Events at 0 s, 1 s, 2 s, then one an hour later.
  for (const [i, s] of [[0, 0], [1, 1], [2, 2], [3, 3600]].entries()) {
    tl.append({ id: i + 1, job_id: `j${i}`, status: 'pending', at: iso(T0 + s[1] * 1000) });
  }
  // From the start at 10x: the first event is due at once, the second after 100 ms.
  let st = playStep(tl, { pos: 0, vt: null }, 16, 10);
  assert.equal(st.pos, 1);
  st = playStep(tl, st, 50, 10);
  assert.equal(st.pos, 1);
  st = playStep(tl, st, 40, 10);
  assert.equal(st.pos, 2, 'one second of replay in 100 ms at 10x');
  st = playStep(tl, st, 100, 10);
  assert.equal(st.pos, 3);
  // An hour's pause at 10x would be 6 minutes: it is cut to MAX_IDLE_MS of real time.
  st = playStep(tl, st, MAX_IDLE_MS - 20, 10);
  assert.equal(st.pos, 3);
  st = playStep(tl, st, 30, 10);
  assert.equal(st.pos, 4);
  // At the end it stays.
  assert.equal(playStep(tl, st, 1000, 10).pos, 4);
  // 1000x: a second of replay per millisecond.
  assert.equal(playStep(tl, { pos: 1, vt: null }, 2, 1000).pos, 3);
});
