// Two replicas on one database: exactly one ticks (the holder of the lock on
// reactor.scheduler_leader); after the leader is SIGKILLed the standby, whose LOCK TABLE
// was waiting, takes over
// within 2 s and catches up, and no deadline is announced twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freshDatabase, connect, startReactor, eventually, sleep } from './lib.mjs';
import { startLeader, dueEvents, logTime, metric } from './sched_lib.mjs';

const JOBS = 30;

test('leader killed: the standby ticks within 2 s and no deadline is announced twice; a clean stop hands over at once', { timeout: 60000 }, async () => {
  const url = await freshDatabase('sched_failover');
  const db = await connect(url);
  const a = await startLeader(url);
  const b = startReactor(['serve', '--database-url', url, '--listen', '127.0.0.1:0']);
  try {
    await b.ready;
    await b.waitFor(/scheduler: waiting for leadership/, 10000, true);
    // The log line comes when the statement is sent; the server queues it a moment later.
    const locks = await eventually(async () => {
      const { rows: [l] } = await db.query(
        `SELECT count(*) FILTER (WHERE l.granted AND l.mode = 'ExclusiveLock')::int AS held,
                count(*) FILTER (WHERE NOT l.granted)::int AS waiting,
                (SELECT count(*)::int FROM pg_locks a WHERE a.locktype = 'advisory' AND a.classid = 1679373288
                    AND a.objid = 451149825 AND a.granted) AS advisory_held,
                (SELECT count(*)::int FROM pg_locks a WHERE a.locktype = 'advisory' AND NOT a.granted) AS advisory_waiting
           FROM pg_locks l WHERE l.locktype = 'relation' AND l.relation = 'reactor.scheduler_leader'::regclass`);
      return l.waiting > 0 && l;
    }, { timeout: 5000, what: 'the standby queued on the lock' });
    // The leader holds the table lock and the advisory lock (for older replicas); the
    // standby waits in LOCK TABLE, not on the advisory lock.
    assert.deepEqual(locks, { held: 1, waiting: 1, advisory_held: 1, advisory_waiting: 0 });
    assert.equal(await metric(a, 'reactor_scheduler_leader'), 1);
    assert.equal(await metric(b, 'reactor_scheduler_leader'), 0);

    // Jobs due every 200 ms for 6 s; the leader is killed after about 1.5 s of them.
    await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for)
                    SELECT 'f_' || g, 'failover', now() + interval '500 ms' + g * interval '200 ms'
                      FROM generate_series(1, ${JOBS}) g`);
    await sleep(2000);
    assert.ok((await dueEvents(db)).length >= 3, 'the leader announced nothing before the kill');
    assert.doesNotMatch(b.stderr, /scheduler: ticking/, 'the standby ticked while the leader lived');
    const killedAt = Date.now();
    a.child.kill('SIGKILL');
    await a.exitPromise;

    await b.waitFor(/scheduler: ticking/, 5000, true);
    const leaderAt = logTime(b.stderr, /scheduler: leader/);
    const tickingAt = logTime(b.stderr, /scheduler: ticking/);
    assert.ok(leaderAt - killedAt < 2000, `standby became leader ${leaderAt - killedAt} ms after the kill`);
    assert.ok(tickingAt - killedAt < 2000, `standby ticked ${tickingAt - killedAt} ms after the kill`);
    assert.equal(await metric(b, 'reactor_scheduler_leader'), 1);
    assert.equal(await metric(b, 'reactor_scheduler_leader_acquired_total'), 1);

    const due = await eventually(async () => { const d = await dueEvents(db); return d.length >= JOBS && d; },
      { timeout: 15000, what: `${JOBS} due events` });
    await sleep(500);
    const all = await dueEvents(db);
    const ids = all.map((e) => e.job_id);
    assert.equal(new Set(ids).size, ids.length, `a job announced twice: ${ids}`);
    assert.equal(all.length, JOBS);
    // Those due once the standby was ticking were on time; the others late, but once.
    const { rows: [{ t }] } = await db.query(`SELECT extract(epoch FROM now()) * 1000 AS t`);
    const serverOffset = Number(t) - Date.now();  // same host: near zero, but in its terms
    const settled = due.filter((e) => Date.parse(e.scheduled_for) > tickingAt + serverOffset + 100);
    assert.ok(settled.length >= 10, 'too few jobs after the takeover to judge');
    for (const e of settled) assert.ok(e.late_ms >= 0 && e.late_ms < 20, `${e.job_id} ${e.late_ms} ms late after takeover`);
    assert.ok(await metric(b, 'reactor_scheduler_ticks_total') >= settled.length);
    assert.equal(await metric(b, 'reactor_scheduler_due_events_total'), JOBS);

    // A clean stop hands over at once too: a third replica waits, the leader stops.
    const c = startReactor(['serve', '--database-url', url, '--listen', '127.0.0.1:0']);
    try {
      await c.ready;
      await c.waitFor(/scheduler: waiting for leadership/, 10000, true);
      const stoppedAt = Date.now();
      assert.equal((await b.stop('SIGTERM')).code, 0);
      await c.waitFor(/scheduler: ticking/, 5000, true);
      const cTicking = logTime(c.stderr, /scheduler: ticking/);
      assert.ok(cTicking - stoppedAt < 1000, `third replica ticked ${cTicking - stoppedAt} ms after the stop`);
      console.log(`takeover: ${tickingAt - killedAt} ms after SIGKILL, ${cTicking - stoppedAt} ms after SIGTERM`);
      await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for) VALUES ('last', 'failover', now() + interval '300 ms')`);
      const last = await eventually(async () => (await dueEvents(db, ['last']))[0], { timeout: 5000, what: 'the last job due' });
      assert.ok(last.late_ms >= 0 && last.late_ms < 20, `last job ${last.late_ms} ms late`);
    } finally {
      await c.stop();
    }
  } finally {
    await b.stop();
    if (!a.exited) await a.stop();
    await db.end();
  }
});
