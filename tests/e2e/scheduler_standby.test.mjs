// A standby waiting for scheduler leadership holds no snapshot: its backend's backend_xmin
// stays NULL for 30 s while other transactions commit (a held xmin would hold back VACUUM
// in the whole database for as long as the standby waits), and so does the leader's lock
// session, idle in its open transaction.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freshDatabase, connect, startReactor, eventually, sleep } from './lib.mjs';
import { startLeader } from './sched_lib.mjs';

const WATCH_MS = Number(process.env.STANDBY_WATCH_MS || 30000);

test('the waiting standby and the leader hold no backend_xmin (30 s while xids advance)', { timeout: WATCH_MS + 40000 }, async () => {
  const url = await freshDatabase('sched_standby');
  const db = await connect(url);
  const a = await startLeader(url);
  const b = startReactor(['serve', '--database-url', url, '--listen', '127.0.0.1:0']);
  try {
    await b.ready;
    await b.waitFor(/scheduler: waiting for leadership/, 10000, true);
    const pidOf = (p) => Number(p.stderr.match(/scheduler: (?:waiting for leadership|leader) \(.*backend pid (\d+)\)/)[1]);
    const standbyPid = pidOf(b);
    const leaderPid = pidOf(a);
    const activity = async () => (await db.query(
      `SELECT pid, backend_xmin::text AS xmin, wait_event_type, state FROM pg_stat_activity WHERE pid = ANY($1) ORDER BY pid`,
      [[standbyPid, leaderPid]])).rows;
    await eventually(async () => (await activity()).some((r) => r.pid === standbyPid && r.wait_event_type === 'Lock'),
      { timeout: 5000, what: 'the standby waiting on a lock' });

    let samples = 0;
    const end = Date.now() + WATCH_MS;
    let g = 0;
    while (Date.now() < end) {
      // Each insert is a transaction with an xid: a snapshot held by either session would
      // show as a backend_xmin from now on.
      await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for)
                      VALUES ($1, 'standby', now() + interval '1 hour')`, [`s_${g++}`]);
      for (const r of await activity()) {
        assert.equal(r.xmin, null, `backend ${r.pid} (${r.pid === standbyPid ? 'standby' : 'leader'}, ${r.state}, ` +
          `waiting on ${r.wait_event_type}) holds backend_xmin ${r.xmin}`);
      }
      const rows = await activity();
      assert.equal(rows.length, 2, 'a lock session is gone');
      assert.equal(rows.find((r) => r.pid === standbyPid).wait_event_type, 'Lock', 'the standby no longer waits');
      assert.equal(rows.find((r) => r.pid === leaderPid).state, 'idle in transaction');
      ++samples;
      await sleep(200);
    }
    assert.ok(samples >= WATCH_MS / 1000, `only ${samples} samples`);
    console.log(`backend_xmin NULL in ${samples} samples over ${WATCH_MS / 1000} s (standby pid ${standbyPid}, leader pid ${leaderPid})`);

    // And it still takes over at once.
    const stoppedAt = Date.now();
    a.child.kill('SIGKILL');
    await b.waitFor(/scheduler: ticking/, 5000, true);
    assert.ok(Date.now() - stoppedAt < 2000, `takeover after ${Date.now() - stoppedAt} ms`);
  } finally {
    await b.stop();
    if (!a.exited) await a.stop();
    await db.end();
  }
});
