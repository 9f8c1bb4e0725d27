// The fault test of the delivery guarantee, seen from WebSocket subscribers: while the
// reactor's backend is killed every 300 ms, PostgreSQL is stopped (/readyz turns 503,
// the subscribers stay connected) and started again, writers keep changing jobs. Every
// subscriber receives every event its filter selects, once, in per-job order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { freshDatabase, connect, eventually, killReactorBackends, ROOT, statusWriter } from './lib.mjs';
import { serve, Client, http, insertJobs, sleep } from './wslib.mjs';

const run = promisify(execFile);
const pgCtl = (...args) => run(path.join(ROOT, 'tools/pg-sandbox'), ['ctl', process.env.PGSANDBOX_DIR, ...args]);

const JOBS = 300;
const CHANGES = 6000;

test('subscribers connected through backend kills and a PostgreSQL stop/start receive every event', { timeout: 180000 }, async () => {
  const url = await freshDatabase('ws_fault');
  const setup = await connect(url);
  await insertJobs(setup, JOBS, { prefix: 'f', users: ['u1', 'u2', null], type: 'fault' });
  await setup.end();
  const reactor = await serve(url);
  const port = reactor.port;

  const all = await Client.open(port);
  await all.subscribe('all', { filter: { job_type: 'fault' } });
  const u2 = await Client.open(port, { path: '/ws?user_id=u2' });
  await u2.next((m) => m.type === 'subscribed');
  const running = await Client.open(port);
  await running.subscribe('r', { filter: { status: ['running'] } });
  const clients = [all, u2, running];

  const state = { committed: 0, errors: 0 };
  const writers = [1, 2, 3].map((i) => statusWriter(url, state, { seed: 7919 * i, prefix: 'f_', jobs: JOBS, changes: CHANGES, sleepEvery: 0 }));
  let kills = 0;
  let stopped = false;
  const ready = [];
  let killerClient = null;
  const killer = (async () => {
    while (state.committed < CHANGES) {
      await sleep(300);
      try {
        if (!killerClient) killerClient = await connect(url);
        kills += await killReactorBackends(killerClient);
      } catch { killerClient = null; }
      if (!stopped && state.committed > CHANGES * 0.4) {
        stopped = true;
        killerClient = null;
        await pgCtl('stop', '-m', 'fast', '-w');
        await eventually(async () => (await http(port, 'GET', '/readyz')).status === 503, { timeout: 10000, what: '/readyz 503' });
        ready.push(503);
        await sleep(1000);  // the reactor retries meanwhile; clients stay
        assert.ok(clients.every((c) => c.closed === null), 'subscribers stay connected while PostgreSQL is down');
        await pgCtl('start', '-w', '-l', path.join(process.env.PGSANDBOX_DIR, 'server.log'));
        await eventually(async () => (await http(port, 'GET', '/readyz')).status === 200, { timeout: 30000, what: '/readyz 200 again' });
        ready.push(200);
      }
    }
  })();
  await Promise.all([...writers, killer]);
  try { await killerClient?.end(); } catch { /* ignore */ }
  assert.deepEqual(ready, [503, 200]);

  const check = await connect(url);
  const { rows } = await check.query(`SELECT id::int AS id, job_id, user_id, status FROM reactor.job_events
                                        WHERE job_type = 'fault' AND old_status IS NOT NULL ORDER BY id`);
  await check.end();
  const want = {
    all: rows,
    u2: rows.filter((r) => r.user_id === 'u2'),
    running: rows.filter((r) => r.status === 'running'),
  };
  const names = ['all', 'u2', 'running'];
  for (const [i, c] of clients.entries()) {
    const w = want[names[i]];
    await eventually(() => {
      const got = new Set(c.eventIds());
      return w.every((r) => got.has(r.id));
    }, { timeout: 60000, what: `every event at ${names[i]}` });
  }
  await sleep(300);
  for (const [i, c] of clients.entries()) {
    const w = want[names[i]];
    const got = c.events().filter((e) => e.job_type === 'fault' && e.old_status !== null);
    assert.equal(c.closed, null, `${names[i]} still connected`);
    assert.equal(new Set(got.map((e) => e.id)).size, got.length, `${names[i]}: no repeats`);
    assert.equal(got.length, w.length, `${names[i]}: nothing extra`);
    const perJob = new Map();
    for (const e of got) (perJob.get(e.job_id) ?? perJob.set(e.job_id, []).get(e.job_id)).push(e.id);
    const perJobWant = new Map();
    for (const r of w) (perJobWant.get(r.job_id) ?? perJobWant.set(r.job_id, []).get(r.job_id)).push(r.id);
    for (const [job, ids] of perJobWant) assert.deepEqual(perJob.get(job), ids, `${names[i]}: order of ${job}`);
  }
  console.log(`# ws fault: ${rows.length} events, ${kills} backend kills, PostgreSQL stopped and started once, ` +
    `${state.errors} writer retries; received all=${want.all.length} u2=${want.u2.length} running=${want.running.length}`);
  await Promise.all(clients.map((c) => c.close()));
  assert.equal((await reactor.stop()).code, 0);
});
