// The dashboard's pure modules (src/web/store.js, client.js, sparkline.js) under Node:
// the job map and its counts, and the connection's protocol decisions against a fake
// socket and a fake clock. No browser, no reactor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JobStore, normalizeFilter, matches, serverTotals } from '../../src/web/store.js';
import { Client, BACKOFF_MIN_MS, BACKOFF_MAX_MS, PING_EVERY_MS, REQUEST_TIMEOUT_MS } from '../../src/web/client.js';
import { Rate, Lag } from '../../src/web/sparkline.js';
import { mergeEvents, runDurations, formatDuration, changeText } from '../../src/web/jobhistory.js';

const ev = (id, job_id, status, extra = {}) => ({
  id, kind: 'status', job_id, source: 'scheduled_jobs', status, old_status: null, user_id: 'u1',
  job_type: 'alpha', attempt: null, progress: null, message: null, error: null,
  scheduled_for: '2026-11-21T06:00:00Z', at: `2026-11-21T06:00:${String(id % 60).padStart(2, '0')}Z`, ...extra,
});
const snapRow = (id, status, extra = {}) => ({
  id, job_type: 'alpha', user_id: 'u1', status, progress_percent: null, progress_message: null,
  last_error: null, scheduled_for: '2026-11-21T06:00:00+00:00', updated_at: '2026-11-21T06:00:00+00:00', ...extra,
});

test('store: a snapshot seeds rows newest first and counts them', () => {
  const s = new JobStore();
  s.reset([snapRow('b', 'running'), snapRow('a', 'pending'), snapRow('c', 'failed', { last_error: 'x' })]);
  assert.deepEqual(s.newest(10).map((r) => r.id), ['b', 'a', 'c']);
  assert.equal(s.counts.running, 1);
  assert.equal(s.counts.pending, 1);
  assert.equal(s.counts.failed, 1);
  assert.equal(s.newest(10)[2].error, 'x');
  assert.equal(s.partial, false);
  s.reset([snapRow('a', 'pending'), snapRow('b', 'pending')], { limit: 2 });
  assert.equal(s.partial, true, 'a snapshot at the server limit is partial');
});

test('store: events move counts, go to the top, and repeats are ignored', () => {
  const s = new JobStore();
  s.reset([snapRow('a', 'pending'), snapRow('b', 'pending')]);
  assert.equal(s.apply(ev(10, 'b', 'running', { attempt: 1 })), 'upsert');
  assert.deepEqual([s.counts.pending, s.counts.running], [1, 1]);
  assert.equal(s.newest(1)[0].id, 'b');
  assert.equal(s.apply(ev(11, 'a', 'running', { kind: 'progress', progress: 30, message: 'half' })), 'upsert');
  assert.equal(s.newest(1)[0].id, 'a');
  assert.equal(s.newest(1)[0].progress, 30);
  assert.equal(s.apply(ev(10, 'b', 'running')), 'stale', 'a repeated id');
  assert.equal(s.apply(ev(9, 'b', 'pending')), 'stale', 'an older id of the same job');
  assert.equal(s.apply(ev(12, 'b', 'failed', { error: { code: 7 } })), 'upsert');
  assert.equal(s.jobs.get('scheduled_jobs\u0000b').error, '{"code":7}');
  assert.deepEqual([s.counts.pending, s.counts.running, s.counts.failed], [0, 1, 1]);
  assert.equal(s.lastEventId, 12);
  // Another source with the same id is another job; a payload without a job is counted only.
  s.apply(ev(13, 'b', 'running', { source: 'job_queue' }));
  assert.equal(s.size, 3);
  assert.equal(s.apply({ id: 14, hello: 'world' }), 'ignored');
  assert.equal(s.lastEventId, 14);
  // A status of an attached table that is none of the six.
  s.apply(ev(15, 'q', 'queued', { source: 'job_queue' }));
  assert.equal(s.other, 1);
});

test('store: a filter drops rows that leave it; the cap forgets the oldest', () => {
  const s = new JobStore({ capacity: 3 });
  const f = normalizeFilter({ job_type: 'alpha, beta ,', status: ['running'], user_id: ' ' });
  assert.deepEqual(f, { job_type: ['alpha', 'beta'], status: ['running'] });
  assert.equal(matches(f, { job_type: 'beta', status: 'running' }), true);
  assert.equal(matches(f, { job_type: 'gamma', status: 'running' }), false);
  s.reset([snapRow('a', 'running')], { filter: f });
  assert.equal(s.apply(ev(20, 'a', 'completed')), 'remove');
  assert.equal(s.size, 0);
  assert.equal(s.counts.running, 0);
  assert.equal(s.apply(ev(21, 'z', 'completed')), 'ignored');
  for (let i = 0; i < 5; i++) s.apply(ev(30 + i, `j${i}`, 'running'));
  assert.equal(s.size, 3);
  assert.deepEqual(s.newest(5).map((r) => r.id), ['j4', 'j3', 'j2']);
  assert.equal(s.counts.running, 3);
  assert.equal(s.partial, true);
});

// A fake WebSocket and clock for the client.
function harness(opts = {}) {
  const sockets = [];
  const timers = [];
  let now = 0;
  class FakeSocket {
    constructor(url) { this.url = url; this.sent = []; this.readyState = 0; sockets.push(this); }
    send(t) { this.sent.push(JSON.parse(t)); }
    close() { this.readyState = 3; }
    open() { this.readyState = 1; this.onopen(); }
    recv(m) { this.onmessage({ data: JSON.stringify(m) }); }
    drop(code = 1006, reason = '') { this.readyState = 3; this.onclose({ code, reason }); }
  }
  const store = new JobStore();
  const seen = { states: [], gaps: [], auth: [] };
  const client = new Client({
    url: 'ws://x/ws', store, WebSocket: FakeSocket, now: () => now, random: () => 0,  // no jitter
    setTimeout: (fn, ms) => { const t = { fn, at: now + ms }; timers.push(t); return t; },
    clearTimeout: (t) => { const i = timers.indexOf(t); if (i >= 0) timers.splice(i, 1); },
    onState: (s) => seen.states.push(s), onGap: (m) => seen.gaps.push(m), onAuthNeeded: (w) => seen.auth.push(w),
    ...opts,
  });
  const advance = (ms) => {
    now += ms;
    for (;;) {
      timers.sort((a, b) => a.at - b.at);
      if (!timers.length || timers[0].at > now) break;
      timers.shift().fn();
    }
  };
  return { client, store, sockets, seen, advance, time: () => now, last: () => sockets[sockets.length - 1] };
}

test('client: snapshot first, resume with since after a drop, backoff 0.5 s doubling to 10 s', () => {
  const h = harness();
  h.client.start();
  h.last().open();
  assert.deepEqual(h.last().sent, [{ op: 'subscribe', id: 'jobs', filter: {}, snapshot: true }]);
  h.last().recv({ type: 'subscribed', id: 'jobs', last_event_id: 5 });
  h.last().recv({ type: 'snapshot', id: 'jobs', as_of: 5, jobs: [snapRow('a', 'pending')] });
  h.last().recv({ type: 'event', event: ev(6, 'a', 'running') });
  assert.equal(h.client.state, 'live');
  assert.equal(h.store.lastEventId, 6);

  // The server goes away: retries after 0.5, 1, 2, 4, 8, 10, 10 s.
  h.last().drop(1001, 'server shutting down');
  const delays = [];
  for (let i = 0; i < 7; i++) {
    assert.equal(h.client.state, 'reconnecting');
    const before = h.sockets.length;
    delays.push(h.client.retryAt - h.time());
    h.advance(delays[i] - 1);
    assert.equal(h.sockets.length, before, 'retried early');
    h.advance(1);
    assert.equal(h.sockets.length, before + 1);
    h.last().drop();
  }
  assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 10000, 10000]);

  // Back: resume from the last event, no snapshot; a success resets the backoff.
  h.advance(BACKOFF_MAX_MS);
  h.last().open();
  assert.deepEqual(h.last().sent, [{ op: 'subscribe', id: 'jobs', filter: {}, since: 6 }]);
  h.last().recv({ type: 'subscribed', id: 'jobs', last_event_id: 9 });
  assert.equal(h.client.state, 'live');
  h.last().drop();
  assert.equal(h.client.retryAt - h.time(), BACKOFF_MIN_MS, 'a success resets the backoff');
});

test('client: reconnect delays are jittered, between half and all of the doubling backoff', () => {
  let r = 0;
  const draws = [0.999, 0.5, 0.25];
  const h = harness({ random: () => draws[r++ % draws.length] });
  h.client.start();
  const delays = [];
  for (let i = 0; i < 6; i++) {
    h.last().drop();
    delays.push(h.client.retryAt - h.time());
    h.advance(delays[i]);
  }
  const base = [500, 1000, 2000, 4000, 8000, 10000];
  for (const [i, d] of delays.entries()) {
    assert.ok(d >= base[i] / 2 && d <= base[i], `delay ${i}: ${d} outside [${base[i] / 2}, ${base[i]}]`);
  }
  assert.deepEqual(delays, [250, 750, 1750, 2002, 6000, 8750]);
});

test('client: a gap is reported and answered with a fresh snapshot', () => {
  const h = harness();
  h.client.start();
  h.last().open();
  h.last().recv({ type: 'snapshot', id: 'jobs', as_of: 5, jobs: [] });
  h.last().drop();
  h.advance(BACKOFF_MIN_MS);
  h.last().open();
  assert.equal(h.last().sent[0].since, 5);
  h.last().recv({ type: 'gap', id: 'jobs', after: 5 });
  assert.equal(h.seen.gaps.length, 1);
  assert.deepEqual(h.last().sent[1], { op: 'subscribe', id: 'jobs', filter: {}, snapshot: true });
  h.last().recv({ type: 'snapshot', id: 'jobs', as_of: 40, jobs: [snapRow('n', 'running')] });
  assert.equal(h.store.size, 1);
  assert.equal(h.store.lastEventId, 40);
});

test('client: a status filter adds an "exits" subscription; overtaking exits weigh against the snapshot', () => {
  const h = harness();
  h.client.start();
  h.last().open();
  h.client.setFilter({ job_type: ['beta'], status: ['running'] });
  const sent = h.last().sent.slice(1);
  assert.deepEqual(sent[0], { op: 'subscribe', id: 'jobs', filter: { job_type: ['beta'], status: ['running'] }, snapshot: true });
  assert.deepEqual(sent[1], {
    op: 'subscribe', id: 'exits',
    filter: { job_type: ['beta'], status: ['pending', 'completed', 'failed', 'cancelled', 'expired'] },
  });
  // Before the snapshot: x completed after its snapshot row, y before it.
  h.last().recv({ type: 'event', event: ev(50, 'x', 'completed', { job_type: 'beta', at: '2026-11-21T07:00:00Z' }) });
  h.last().recv({ type: 'event', event: ev(51, 'y', 'completed', { job_type: 'beta', at: '2026-11-21T05:00:00Z' }) });
  h.last().recv({ type: 'snapshot', id: 'jobs', as_of: 49, jobs: [
    snapRow('x', 'running', { job_type: 'beta' }), snapRow('y', 'running', { job_type: 'beta' })] });
  assert.deepEqual(h.store.newest(5).map((r) => r.id), ['y']);
  // Live: a job leaving the filter goes.
  h.last().recv({ type: 'event', event: ev(60, 'y', 'failed', { job_type: 'beta' }) });
  assert.equal(h.store.size, 0);
  // Without a status filter the "exits" subscription is dropped.
  h.client.setFilter({ job_type: ['beta'] });
  assert.deepEqual(h.last().sent.slice(-1)[0], { op: 'unsubscribe', id: 'exits' });
});

test('client: forbidden or 1008 asks for a token; the token goes first on every connection', () => {
  const h = harness();
  h.client.start();
  h.last().open();
  h.last().recv({ type: 'error', code: 'forbidden', message: 'authenticate first' });
  assert.equal(h.client.state, 'auth');
  assert.deepEqual(h.seen.auth, ['authenticate first']);
  h.client.setToken('T1');
  assert.deepEqual(h.last().sent.slice(1), [
    { op: 'auth', token: 'T1' }, { op: 'subscribe', id: 'jobs', filter: {}, snapshot: true }]);
  h.last().recv({ type: 'snapshot', id: 'jobs', as_of: 1, jobs: [] });
  h.last().drop(1008, 'token expired');
  assert.equal(h.client.state, 'auth');
  h.advance(60000);
  assert.equal(h.sockets.length, 1, 'no retry with a refused token');
  h.client.setToken('T2');
  assert.equal(h.sockets.length, 2);
  h.last().open();
  assert.deepEqual(h.last().sent, [{ op: 'auth', token: 'T2' }, { op: 'subscribe', id: 'jobs', filter: {}, since: 1 }]);
});

test('client: a snapshot the server cannot take is asked for again', () => {
  const h = harness();
  h.client.start();
  h.last().open();
  h.last().recv({ type: 'error', code: 'bad_request', message: 'snapshot unavailable: not connected' });
  assert.equal(h.client.state, 'waiting');
  h.advance(BACKOFF_MIN_MS);
  assert.deepEqual(h.last().sent.slice(-1)[0], { op: 'subscribe', id: 'jobs', filter: {}, snapshot: true });
});

test('client: a replaying reactor (no snapshots) is followed from its start, every event to the timeline', () => {
  const replayed = [];
  const replays = [];
  const h = harness({ onReplay: () => replays.push(1), onReplayEvent: (e) => replayed.push(e.id) });
  h.client.start();
  h.last().open();
  h.client.setFilter({ job_type: ['alpha'], status: ['running'] });
  // An older server says so only when refusing the snapshot.
  h.last().recv({ type: 'error', code: 'bad_request', message: 'snapshots need the database (not available in replay)' });
  assert.equal(h.client.mode, 'replay');
  assert.equal(replays.length, 1);
  // Unfiltered (the timeline filters), from the start; the "exits" subscription goes.
  assert.deepEqual(h.last().sent.slice(-2), [{ op: 'unsubscribe', id: 'exits' }, { op: 'subscribe', id: 'jobs', filter: {}, since: 0 }]);
  h.last().recv({ type: 'subscribed', id: 'jobs', last_event_id: 0 });
  assert.equal(h.client.state, 'live');
  h.last().recv({ type: 'event', event: ev(3, 'a', 'running', { job_type: 'beta' }) });
  assert.deepEqual(replayed, [3], 'every event goes to the timeline, whatever the filter');
  assert.equal(h.store.size, 0, 'the store is the timeline\'s to move');
  // A new filter asks nothing of the server.
  const sent = h.last().sent.length;
  h.client.setFilter({});
  assert.equal(h.last().sent.length, sent);
  h.last().drop();
  h.advance(BACKOFF_MIN_MS);
  h.last().open();
  assert.deepEqual(h.last().sent, [{ op: 'subscribe', id: 'jobs', filter: {}, since: 3 }]);
});

test('client: a welcome with mode "replay" switches at once; the refused snapshot is not an error', () => {
  const errors = [];
  const gaps = [];
  const h = harness({ onError: (t) => errors.push(t), onReplayGap: (m) => gaps.push(m) });
  h.client.start();
  h.last().open();
  h.last().recv({ type: 'welcome', server: 'reactor/0.1.0', last_event_id: 40, mode: 'replay' });
  assert.equal(h.client.mode, 'replay');
  assert.deepEqual(h.last().sent, [
    { op: 'subscribe', id: 'jobs', filter: {}, snapshot: true },
    { op: 'subscribe', id: 'jobs', filter: {}, since: 0 }]);
  h.last().recv({ type: 'error', code: 'bad_request', message: 'snapshots need the database (not available in replay)' });
  assert.deepEqual(errors, []);
  assert.equal(h.last().sent.length, 2, 'nothing more asked');
  // The ring had let the start go: reported, no snapshot asked for.
  h.last().recv({ type: 'gap', id: 'jobs', after: 0 });
  assert.deepEqual(gaps, [{ type: 'gap', id: 'jobs', after: 0 }]);
  assert.equal(h.last().sent.length, 2);
  // A live server's welcome changes nothing.
  const l = harness();
  l.client.start();
  l.last().open();
  l.last().recv({ type: 'welcome', server: 'reactor/0.1.0', last_event_id: 40, mode: 'live' });
  assert.equal(l.client.mode, 'live');
  assert.deepEqual(l.last().sent.slice(1), [{ op: 'counts', id: 'counts' }]);
});

test('rate: one bucket per second, the last 60 kept', () => {
  const r = new Rate(60);
  r.add(5, 1000);
  r.add(3, 1500);
  r.add(7, 2100);
  assert.equal(r.current(2200), 8);
  assert.equal(r.peak(), 8);
  r.add(1, 100000);
  assert.equal(r.current(100000), 0);
  assert.equal(r.peak(), 1);
});

test('store: the cause of the last event, and none for an event without one', () => {
  const s = new JobStore();
  s.apply(ev(1, 'a', 'pending', { cause: 'sql', actor: null, action: null }));
  assert.equal(s.newest(1)[0].cause, 'sql');
  s.apply(ev(2, 'a', 'cancelled', { cause: 'user', actor: 'alice', action: 'cancel' }));
  assert.deepEqual(['cause', 'actor', 'action'].map((k) => s.newest(1)[0][k]), ['user', 'alice', 'cancel']);
  // An old event (before migration 006) after it: its cause is unknown, not the previous one.
  s.apply(ev(3, 'a', 'pending'));
  assert.deepEqual(['cause', 'actor', 'action'].map((k) => s.newest(1)[0][k]), [null, null, null]);
});

test('store: a snapshot row\'s last_event gives its cause, attempt and the id below which events are repeats', () => {
  const s = new JobStore();
  s.reset([
    snapRow('a', 'cancelled', { last_event: { id: 40, kind: 'status', at: '2026-11-21T06:00:40Z', cause: 'user', actor: 'alice', action: 'cancel', attempt: 2 } }),
    snapRow('b', 'pending', { last_event: { id: 41, kind: 'status', cause: null, actor: null, action: null, attempt: null } }),
    snapRow('c', 'pending', { last_event: null }),  // no event kept for it
    snapRow('d', 'pending'),  // a server before last_event
  ]);
  const row = (id) => s.jobs.get(`scheduled_jobs\u0000${id}`);
  assert.deepEqual(['cause', 'actor', 'action', 'attempt', 'eventId'].map((k) => row('a')[k]), ['user', 'alice', 'cancel', 2, 40]);
  assert.deepEqual(['cause', 'attempt', 'eventId'].map((k) => row('b')[k]), [null, null, 41]);
  assert.deepEqual(['cause', 'eventId'].map((k) => row('c')[k]), [null, 0]);
  assert.deepEqual(['cause', 'eventId'].map((k) => row('d')[k]), [null, 0]);
  // An event the snapshot already shows, delivered after it, changes nothing.
  assert.equal(s.apply(ev(40, 'a', 'cancelled', { cause: 'user', actor: 'alice' })), 'stale');
  assert.equal(s.apply(ev(39, 'a', 'running')), 'stale');
  assert.equal(s.apply(ev(42, 'a', 'pending', { cause: 'user', actor: 'bob', action: 'retry_now', attempt: 2 })), 'upsert');
  assert.deepEqual(['status', 'actor'].map((k) => row('a')[k]), ['pending', 'bob']);
  // Rows without a known event take any event.
  assert.equal(s.apply(ev(5, 'd', 'running')), 'upsert');
});

test('client: history and action requests are answered by id; errors echo it; a drop fails them', async () => {
  const h = harness();
  h.client.start();
  h.last().open();
  const hist = h.client.history('J', { before: 90, limit: 50 });
  const act = h.client.action('set_priority', 'J', 'high');
  const [m1, m2] = h.last().sent.slice(-2);
  assert.deepEqual(m1, { op: 'history', job_id: 'J', limit: 50, before: 90, id: m1.id });
  assert.deepEqual(m2, { op: 'action', action: 'set_priority', job_id: 'J', arg: 'high', id: m2.id });
  assert.notEqual(m1.id, m2.id);
  h.last().recv({ type: 'error', code: 'forbidden', message: "another user's job", id: m2.id });
  h.last().recv({ type: 'history', id: m1.id, job_id: 'J', events: [ev(80, 'J', 'running')], more: false });
  assert.deepEqual(await act, { type: 'error', code: 'forbidden', message: "another user's job", id: m2.id });
  assert.equal((await hist).events[0].id, 80);
  // A pending request fails when the connection drops; one that is not answered times out.
  const lost = h.client.action('cancel', 'K');
  h.last().drop();
  assert.equal((await lost).code, 'unavailable');
  h.advance(BACKOFF_MIN_MS);
  h.last().open();
  const slow = h.client.action('cancel', 'K');
  h.advance(REQUEST_TIMEOUT_MS);
  assert.equal((await slow).code, 'timeout');
  // Not connected: an error at once.
  h.last().drop();
  assert.equal((await h.client.history('J')).code, 'unavailable');
});

test('client: counts after the welcome; a refusal keeps the page\'s counts; pings every 5 s', () => {
  const counts = [];
  const pongs = [];
  const errors = [];
  const h = harness({ onCounts: (m) => counts.push(m), onPong: (p) => pongs.push(p), onError: (t) => errors.push(t) });
  h.client.start();
  h.last().open();
  h.last().recv({ type: 'welcome', server: 'reactor/0.1.0', last_event_id: 7, mode: 'live' });
  assert.deepEqual(h.last().sent.slice(-1)[0], { op: 'counts', id: 'counts' });
  const msg = { type: 'counts', as_of: 7, counts: { pending: { a: 2, b: 1 }, running: { a: 1 } } };
  h.last().recv(msg);
  assert.deepEqual(counts, [msg]);
  assert.equal(h.client.counts, 'on');
  h.advance(PING_EVERY_MS);
  assert.deepEqual(h.last().sent.slice(-1)[0], { op: 'ping' });
  h.advance(12);
  h.last().recv({ type: 'pong', queue_bytes: 512 });
  assert.deepEqual(pongs, [{ queueBytes: 512, rttMs: 12 }]);
  h.advance(PING_EVERY_MS);
  assert.equal(h.last().sent.filter((m) => m.op === 'ping').length, 2);
  // A drop forgets the server's counts (null: the page counts again).
  h.last().drop();
  assert.deepEqual(counts.slice(-1), [null]);
  h.advance(BACKOFF_MIN_MS);
  h.last().open();
  // A user's token: counts are refused, silently.
  h.last().recv({ type: 'welcome', server: 'reactor/0.1.0', last_event_id: 9, mode: 'live' });
  h.last().recv({ type: 'error', code: 'forbidden', message: "the totals cover every user's jobs: privileged tokens only", id: 'counts' });
  assert.equal(h.client.counts, 'refused');
  assert.deepEqual(errors, ['connection closed (1006)']);
  // An older server: neither op is known; no error shown, no more pings.
  const o = harness({ onError: (t) => errors.push(t), onPong: (p) => pongs.push(p) });
  o.client.start();
  o.last().open();
  o.last().recv({ type: 'welcome', server: 'reactor/0.1.0', last_event_id: 1 });
  o.last().recv({ type: 'error', code: 'bad_request', message: "unknown op 'counts'" });
  o.advance(PING_EVERY_MS);
  o.last().recv({ type: 'error', code: 'bad_request', message: "unknown op 'ping'" });
  o.advance(3 * PING_EVERY_MS);
  assert.equal(o.last().sent.filter((m) => m.op === 'ping').length, 1);
  assert.equal(errors.length, 1);
  assert.equal(pongs.slice(-1)[0], null);
});

test('store: the tiles from the server\'s counts, under a filter', () => {
  const msg = { as_of: 40, counts: { pending: { a: 2, b: 5 }, running: { a: 1 }, failed: { b: 3 } } };
  const all = serverTotals(msg);
  assert.deepEqual(all.byStatus, { pending: 7, running: 1, failed: 3 });
  assert.equal(all.asOf, 40);
  assert.deepEqual(all.byType.pending, { a: 2, b: 5 });
  const b = serverTotals(msg, normalizeFilter({ job_type: 'b', status: ['running'] }));
  assert.deepEqual(b.byStatus, { pending: 5, running: 0, failed: 3 });
  assert.equal(serverTotals(msg, { user_id: 'u1' }), null, 'totals cannot be cut by user');
  assert.equal(serverTotals(null), null);
});

test('job history: merged by id newest first; the time each attempt ran; the change', () => {
  const e = (id, status, old, at, extra = {}) => ev(id, 'J', status, { old_status: old, at, ...extra });
  const page1 = [e(9, 'failed', 'running', '2026-11-21T06:00:09.500Z', { attempt: 2 }),
    e(7, 'running', 'pending', '2026-11-21T06:00:07Z', { attempt: 2 })];
  const live = [e(10, 'pending', 'failed', '2026-11-21T06:00:10Z', { cause: 'retry' }), e(9, 'failed', 'running', '2026-11-21T06:00:09.500Z')];
  const page2 = [e(5, 'pending', 'failed', '2026-11-21T06:00:05Z'), e(4, 'failed', 'running', '2026-11-21T06:00:04Z'),
    e(2, 'running', 'pending', '2026-11-21T06:00:01.250Z'), e(1, 'pending', null, '2026-11-21T06:00:00Z')];
  const merged = mergeEvents(mergeEvents(page1, live), page2);
  assert.deepEqual(merged.map((x) => x.id), [10, 9, 7, 5, 4, 2, 1]);
  const d = runDurations(merged);
  assert.deepEqual([...d.entries()].sort(), [[4, 2750], [9, 2500]]);
  // Without the older page, the first run's start is unknown: no duration.
  assert.deepEqual([...runDurations(mergeEvents(page1, live)).keys()], [9]);
  assert.equal(formatDuration(850), '850 ms');
  assert.equal(formatDuration(2750), '2.75 s');
  assert.equal(formatDuration(185000), '3 min 05 s');
  assert.equal(changeText(merged[0]), 'failed → pending');
  assert.equal(changeText(merged[6]), 'new → pending');
  assert.equal(changeText({ kind: 'progress', progress: 40, message: 'step 2' }), 'progress 40% · step 2');
  assert.equal(changeText({ kind: 'action', action: 'set_priority', priority: 'high', status: 'pending', old_status: 'pending' }), 'set_priority high');
});

test('lag: the last and the median of the last 100', () => {
  const l = new Lag(100);
  assert.equal(l.p50(), null);
  for (let i = 1; i <= 150; i++) l.add(i);
  assert.equal(l.last, 150);
  assert.equal(l.values.length, 100);
  assert.equal(l.p50(), 100);  // of 51..150
  l.add(NaN);
  assert.equal(l.last, 150);
});
