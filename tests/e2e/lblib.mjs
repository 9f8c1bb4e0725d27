// Several replicas behind a real HAProxy (tools/deploy/haproxy.cfg, started as an
// ordinary process on loopback), a fleet of reactor-client subscribers through it, a
// paced writer, and the check of what each subscriber received against
// reactor.job_events filtered by its authorization and its filter.
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { after } from 'node:test';
import WebSocket from 'ws';
import { ROOT, startReactor, connect, sleep, eventually } from './lib.mjs';
import { signJwt, nowS, http } from './wslib.mjs';
import { ReactorClient, matchesFilter } from '../../src/clients/js/index.js';

export const HAPROXY = process.env.HAPROXY || '/usr/sbin/haproxy';
export const SECRET = 'lb-test-secret-0123456789abcdef';
export const TYPES = ['t0', 't1', 't2', 't3'];
export const USERS = ['u1', 'u2', 'u3'];
const STATUSES = ['pending', 'running', 'completed'];

// A port nobody listens on now (bound, read, released).
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

const procs = new Set();
after(() => { for (const p of procs) p.kill('SIGKILL'); });

// HAProxy with tools/deploy/haproxy.cfg, the addresses filled in from the environment.
export async function startHaproxy(replicaPorts) {
  const port = await freePort();
  const env = { ...process.env, REACTOR_LB_BIND: `127.0.0.1:${port}` };
  replicaPorts.forEach((p, i) => { env[`REACTOR_REPLICA_${i + 1}`] = `127.0.0.1:${p}`; });
  const child = spawn(HAPROXY, ['-db', '-f', path.join(ROOT, 'tools/deploy/haproxy.cfg')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.add(child);
  const lb = { child, port, log: '' };
  child.stdout.on('data', (d) => { lb.log += d; });
  child.stderr.on('data', (d) => { lb.log += d; });
  lb.exited = new Promise((resolve) => child.on('exit', (code, signal) => { procs.delete(child); resolve({ code, signal }); }));
  // Up once it answers /readyz through a replica.
  await eventually(async () => {
    try { return (await http(port, 'GET', '/readyz')).status === 200; } catch { return false; }
  }, { timeout: 10000, interval: 100, what: `haproxy on ${port}:\n${lb.log}` });
  lb.stop = async () => { child.kill('SIGTERM'); return lb.exited; };
  return lb;
}

// One replica on a fixed port (so that a restart comes back where HAProxy looks).
export async function startReplica(url, port, extra = [], { secret = true } = {}) {
  const r = startReactor(['serve', '--database-url', url, '--listen', `127.0.0.1:${port}`,
    ...(secret ? ['--jwt-secret', SECRET] : []), ...extra]);
  await r.ready;
  r.port = port;
  return r;
}

export async function replicas(url, n, extra = [], opts = {}) {
  const ports = [];
  for (let i = 0; i < n; i++) ports.push(await freePort());
  const rs = await Promise.all(ports.map((p) => startReplica(url, p, extra, opts)));
  return { ports, rs };
}

// Deterministic pseudo-random numbers.
export function rng(seed) {
  let s = seed >>> 0;
  return () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 4294967296; };
}

function pick(rand, xs) {
  const out = xs.filter(() => rand() < 0.5);
  return out.length ? out : [xs[Math.floor(rand() * xs.length)]];
}

// `n` subscriber specs: a tenth admins, the rest spread over USERS; each with a random
// filter (job types, statuses, sometimes its own user_id, sometimes nothing).
export function subscriberSpecs(n, seed = 1) {
  const rand = rng(seed);
  const specs = [];
  for (let i = 0; i < n; i++) {
    const admin = i % 10 === 0;
    const user = admin ? `admin${i}` : USERS[i % USERS.length];
    const filter = {};
    const r = rand();
    if (r < 0.15) { /* everything it may see */ } else {
      if (rand() < 0.7) filter.job_type = pick(rand, TYPES);
      if (rand() < 0.6) filter.status = pick(rand, STATUSES);
      if (!admin && rand() < 0.3) filter.user_id = user;
      if (admin && rand() < 0.3) filter.user_id = USERS[Math.floor(rand() * USERS.length)];
    }
    specs.push({ i, admin, user, filter });
  }
  return specs;
}

export function tokenFor(spec, ttlS = 3600) {
  return signJwt({ sub: spec.user, ...(spec.admin ? { role: 'admin' } : {}), exp: nowS() + ttlS }, SECRET);
}

// May `spec` see `row` (a job_events row: job_id, user_id, job_type, status)?
export function visible(spec, row) {
  if (!spec.admin && row.user_id !== spec.user) return false;
  return matchesFilter(spec.filter, row);
}

// A subscriber through `port`: a ReactorClient (the `ws` package as its WebSocket),
// recording every event it hands out, closes, gaps and snapshots with times.
export function subscriber(port, spec) {
  const s = { spec, events: [], closes: [], lives: [], gaps: 0, snapshots: 0, attemptsAfterClose: [] };
  const client = new ReactorClient({
    url: `ws://127.0.0.1:${port}/ws`,
    WebSocket,
    token: tokenFor(spec),
    onClose: (c) => { s.closes.push({ ...c, at: performance.now(), delay: null }); },
    onState: (st) => {
      if (st === 'reconnecting' && s.closes.length) {
        const last = s.closes[s.closes.length - 1];
        if (last.delay === null) last.delay = client.retryAt - Date.now();
      }
      if (st === 'live') s.lives.push(performance.now());
    },
    onError: () => {},
  });
  client.subscribe('s', {
    filter: spec.filter,
    onEvent: (ev) => s.events.push(ev),
    onGap: () => { s.gaps++; },
    onSnapshot: () => { s.snapshots++; },
    onSubscribed: () => { s.subscribedAt = performance.now(); },
  });
  s.client = client;
  return s;
}

// Opens the fleet a few at a time and waits until every one is subscribed.
export async function fleet(port, specs) {
  const subs = [];
  for (let i = 0; i < specs.length; i += 25) {
    const batch = specs.slice(i, i + 25).map((sp) => subscriber(port, sp));
    for (const b of batch) b.client.start();
    subs.push(...batch);
    await eventually(() => batch.every((b) => b.subscribedAt !== undefined), { timeout: 15000, interval: 20, what: 'a batch subscribed' });
  }
  return subs;
}

// `jobs` jobs spread over USERS (and a null user) and TYPES.
export async function insertLbJobs(db, jobs) {
  await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, user_id, frequency_type, frequency_config, enabled)
                  SELECT 'lb_' || g, ($1::text[])[1 + g % 4], ($2::text[])[1 + g % 4], 'once', '{}', false
                    FROM generate_series(0, $3 - 1) g`, [TYPES, [...USERS, null], jobs]);
}

// Paced status changes: `writers` connections, each on its own slice of the jobs, each
// committing a transaction of `perTx` changes every `everyMs` (some sleeping 2 ms before
// COMMIT, so that ids commit out of order across writers), until `state.stop`.
export function paceWriters(url, state, { writers = 2, jobs, perTx = 5, everyMs = 20, seed = 7 }) {
  return Array.from({ length: writers }, async (_, w) => {
    const rand = rng(seed + w);
    let client = null;
    const t0 = performance.now();
    for (let k = 0; !state.stop; k++) {
      const due = t0 + k * everyMs;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      try {
        if (!client) client = await connect(url);
        const ids = new Set();
        while (ids.size < perTx) ids.add(`lb_${w + writers * Math.floor(rand() * (jobs / writers))}`);
        await client.query('BEGIN');
        await client.query(`UPDATE reactor.scheduled_jobs SET status = CASE status WHEN 'pending' THEN 'running'
                              WHEN 'running' THEN 'completed' ELSE 'pending' END WHERE id = ANY($1)`, [[...ids]]);
        if (rand() < 0.25) await client.query('SELECT pg_sleep(0.002)');
        await client.query('COMMIT');
        state.committed += perTx;
      } catch {
        state.errors++;
        try { await client?.end(); } catch { /* gone */ }
        client = null;
      }
    }
    try { await client?.end(); } catch { /* ignore */ }
  });
}

// What every subscriber should have: rows with id > base, by its authorization and filter.
export async function expectedRows(db, base) {
  const { rows } = await db.query(`SELECT id::int AS id, job_id, user_id, job_type, status FROM reactor.job_events
                                     WHERE id > $1 AND job_id LIKE 'lb\\_%' ORDER BY id`, [base]);
  return rows;
}

// Compares one subscriber's events (after the package's de-duplication by id) with
// what it should have: missing, extra (not visible to it), repeats, per-job order.
export function judge(s, rows, base) {
  const want = rows.filter((r) => visible(s.spec, r));
  const got = s.events.filter((e) => e.id > base && String(e.job_id).startsWith('lb_'));
  const gotIds = new Set(got.map((e) => e.id));
  const wantIds = new Set(want.map((r) => r.id));
  const missing = want.filter((r) => !gotIds.has(r.id)).map((r) => r.id);
  const extra = got.filter((e) => !wantIds.has(e.id)).map((e) => e.id);
  const repeats = got.length - gotIds.size;
  const perJob = new Map();
  for (const e of got) (perJob.get(e.job_id) ?? perJob.set(e.job_id, []).get(e.job_id)).push(e.id);
  const disorder = [];
  for (const [job, ids] of perJob) {
    for (let i = 1; i < ids.length; i++) if (ids[i] < ids[i - 1]) { disorder.push(job); break; }
  }
  return { want: want.length, got: got.length, missing, extra, repeats, disorder };
}

// Waits (bounded) until every subscriber without a gap has all it should; returns the
// verdicts.
export async function settle(subs, rows, base, timeout = 20000) {
  const end = Date.now() + timeout;
  let verdicts;
  for (;;) {
    verdicts = subs.map((s) => judge(s, rows, base));
    if (verdicts.every((v, i) => v.missing.length === 0 || subs[i].gaps > 0) || Date.now() > end) return verdicts;
    await sleep(200);
  }
}

export function summary(subs, verdicts) {
  const sum = (f) => verdicts.reduce((a, v, i) => a + f(v, subs[i]), 0);
  return {
    subscribers: subs.length,
    delivered: sum((v) => v.got),
    expected: sum((v) => v.want),
    missing: sum((v) => v.missing.length),
    subscribersMissing: verdicts.filter((v) => v.missing.length).length,
    extra: sum((v) => v.extra.length),
    repeatsAfterDedup: sum((v) => v.repeats),
    disorderedJobs: sum((v) => v.disorder.length),
    gaps: sum((_, s) => s.gaps),
    snapshots: sum((_, s) => s.snapshots),
    duplicatesDropped: subs.reduce((a, s) => a + s.client.stats.duplicates, 0),
    reconnects: subs.reduce((a, s) => a + s.client.stats.reconnects, 0),
  };
}

export { sleep, eventually, connect };
