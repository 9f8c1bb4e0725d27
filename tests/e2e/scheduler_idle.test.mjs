// No polling: with 1 000 jobs scheduled an hour ahead, the leading reactor runs no
// statement at all for 50 s, apart from at most one liveness self-check of its event
// connection. Seen by pg_stat_statements, filtered to a role only the reactor uses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freshDatabase, connect, sleep } from './lib.mjs';
import { startLeader } from './sched_lib.mjs';

const WINDOW_MS = 50000;

test('idle with 1 000 jobs an hour ahead: no statement in 50 s but one self-check at most', { timeout: 90000 }, async () => {
  const url = await freshDatabase('sched_idle');
  const role = `reactor_idle_${process.pid}`;
  const admin = await connect(process.env.DATABASE_URL);
  await admin.query(`DROP ROLE IF EXISTS ${role}`);
  await admin.query(`CREATE ROLE ${role} LOGIN SUPERUSER`);
  const db = await connect(url);
  await db.query('CREATE EXTENSION pg_stat_statements');
  const reactorUrl = new URL(url);
  reactorUrl.username = role;
  const reactor = await startLeader(reactorUrl.toString(), ['--log-level', 'debug']);
  try {
    await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for)
                    SELECT 'idle_' || g, 'later', now() + interval '1 hour' + g * interval '1 s'
                      FROM generate_series(1, 1000) g`);
    await reactor.waitFor(/scheduler: armed for/, 5000, true);
    await sleep(1000);  // the 1 000 insert events have been read
    await db.query('SELECT pg_stat_statements_reset()');
    const logFrom = reactor.stderr.length;
    await sleep(WINDOW_MS);
    const { rows } = await db.query(
      `SELECT s.query, s.calls::int AS calls FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
        WHERE r.rolname = $1 AND s.toplevel AND s.calls > 0`, [role]);
    const selfChecks = rows.filter((r) => /pg_notify\(/.test(r.query));  // constants show as $n
    const others = rows.filter((r) => !selfChecks.includes(r));
    assert.deepEqual(others, [], `statements while idle:\n${JSON.stringify(others, null, 1)}`);
    assert.ok(selfChecks.reduce((n, r) => n + r.calls, 0) <= 1, 'more than one self-check');
    assert.doesNotMatch(reactor.stderr.slice(logFrom), /scheduler: (armed|ticking)/, 'the timer moved while idle');
  } finally {
    await reactor.stop();
    await db.end();
    await admin.query(`DROP OWNED BY ${role}`).catch(() => {});
    await admin.query(`DROP ROLE IF EXISTS ${role}`).catch(() => {});
    await admin.end();
  }
});
