// Due events take their place among a job's other events in commit order. Workers start
// jobs the moment they are due (get_next_pending_job in a loop, not waiting for the due
// event) while the reactor ticks batches of jobs due at the same instant; a LISTEN client
// records the notifications, which PostgreSQL delivers in commit order. Per job, event
// ids must arrive increasing, and no due event may follow the running event of the same
// attempt. (tick() of migration 002 wrote due events without the job's row lock: a
// worker's 'running' could take a higher id and commit first.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freshDatabase, connect, sleep } from './lib.mjs';
import { startLeader } from './sched_lib.mjs';

const BATCHES = Number(process.env.ORDER_BATCHES || 40);
const PER_BATCH = 150;
const WORKERS = 4;

test('per job, due events are in commit order with the workers\' changes', { timeout: 90000 }, async () => {
  const url = await freshDatabase('sched_order');
  const db = await connect(url);
  const listener = await connect(url);
  const reactor = await startLeader(url);
  const seen = [];
  listener.on('notification', (n) => {
    const e = JSON.parse(n.payload);
    if (e.id && e.job_id) seen.push({ id: Number(e.id), job: e.job_id, kind: e.kind, status: e.status, attempt: e.attempt });
  });
  await listener.query('LISTEN job_status_changed');
  let stop = false;
  const started = { n: 0 };
  const worker = async () => {
    const c = await connect(url);
    try {
      while (!stop) {
        await c.query('BEGIN');
        const { rows: [{ id }] } = await c.query('SELECT reactor.get_next_pending_job() AS id');
        if (id) await c.query(`SELECT reactor.start_job($1)`, [id]);
        await c.query('COMMIT');
        if (id) ++started.n; else await sleep(1);
      }
    } finally {
      await c.end();
    }
  };
  try {
    await db.query('UPDATE reactor.scheduler_config SET max_concurrent_jobs = 1000000');
    const workers = Array.from({ length: WORKERS }, worker);
    // Batches of jobs due at the same instant, one batch every 150 ms.
    await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for)
                    SELECT 'o_' || b || '_' || i, 'order', now() + interval '500 ms' + b * interval '150 ms'
                      FROM generate_series(1, ${BATCHES}) b, generate_series(1, ${PER_BATCH}) i`);
    await sleep(500 + BATCHES * 150 + 1500);
    stop = true;
    await Promise.all(workers);
    await sleep(300);

    const byJob = new Map();
    for (const e of seen) {
      if (!byJob.has(e.job)) byJob.set(e.job, []);
      byJob.get(e.job).push(e);
    }
    let dues = 0;
    let violations = [];
    for (const [job, evs] of byJob) {
      for (let i = 1; i < evs.length; ++i) {
        if (evs[i].id < evs[i - 1].id) violations.push(`${job}: ${evs[i - 1].kind}/${evs[i - 1].status} #${evs[i - 1].id} arrived before ${evs[i].kind}/${evs[i].status} #${evs[i].id}`);
      }
      let running = false;
      for (const e of evs) {
        if (e.kind === 'due') { ++dues; if (running) violations.push(`${job}: due #${e.id} after running`); }
        if (e.kind === 'status') running = e.status === 'running';
      }
    }
    console.log(`${byJob.size} jobs, ${started.n} started by workers, ${dues} due events, ${violations.length} out of order`);
    assert.equal(byJob.size, BATCHES * PER_BATCH);
    assert.ok(started.n >= BATCHES * PER_BATCH * 0.1, `workers started only ${started.n} jobs`);
    assert.ok(dues > 0, 'no due event at all: the race was not exercised');
    assert.deepEqual(violations.slice(0, 10), [], `${violations.length} events out of commit order`);
    // Every job was either announced or taken by a worker before its due event: none is
    // left pending and unannounced.
    const { rows: [{ n }] } = await db.query(
      `SELECT count(*)::int AS n FROM reactor.scheduled_jobs s WHERE s.status = 'pending'
          AND NOT EXISTS (SELECT 1 FROM reactor.job_events e WHERE e.job_id = s.id AND e.kind = 'due')`);
    assert.equal(n, 0);
  } finally {
    stop = true;
    await reactor.stop();
    await listener.end();
    await db.end();
  }
});
