// Attacks on the database connection through client reads, and on deploys through the
// migration lock (docs/security.md): one client may not queue unbounded statements or
// delay another user's events; `reactor migrate` never waits forever behind a replica.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { BIN, freshDatabase, connect, startReactor, sleep, eventually } from './lib.mjs';
import { serve, Client, insertJobs, metric, maxEventId, bump } from './wslib.mjs';

// Runs `reactor ARGS` to its end (or kills it after `ms`): { code, stderr, ms }.
function runReactor(args, ms) {
  return new Promise((resolve) => {
    const start = Date.now();
    const child = execFile(BIN, args, { timeout: ms, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.killed ? 'killed' : err.code) : 0, stderr, ms: Date.now() - start });
    });
    child.stdin?.end();
  });
}

test('a flood of snapshot and resume requests neither grows the statement queue nor delays another user\'s events',
  { timeout: 90000 }, async () => {
    const url = await freshDatabase('adv_reads');
    const db = await connect(url);
    await insertJobs(db, 5000, { prefix: 'job', users: ['u1', 'u2'] });
    for (let i = 0; i < 30; i++) await bump(db, [`job_${100 + i}`]);  // one transaction each
    const reactor = await serve(url);
    try {
      const victim = await Client.open(reactor.port);
      await victim.subscribe('mine', { filter: { job_id: 'job_1' } });
      const attacker = await Client.open(reactor.port);
      // 2 000 subscribes that each ask for a snapshot of 5 000 rows or a resume from the
      // database (the events before the reactor started), replacing the same two
      // subscriptions, sent as fast as the socket takes them.
      const since = (await maxEventId(db)) - 20;
      for (let i = 0; i < 2000; i++) {
        attacker.send({ op: 'subscribe', id: i % 2 ? 's' : 'r', snapshot: i % 2 === 1, since: i % 2 ? undefined : since });
      }
      await sleep(300);
      // An event over 7 900 bytes: its payload is fetched from reactor.job_events by the
      // event path, which the flood must not delay.
      const t0 = performance.now();
      await db.query(`UPDATE reactor.scheduled_jobs SET progress_message = repeat('x', 9000), progress_percent = 5
                       WHERE id = 'job_1'`);
      const ev = await victim.next((m) => m.type === 'event' && m.event.job_id === 'job_1', 20000, 'the large event');
      const latency = ev.receivedAt - t0;
      assert.equal(ev.event.message.length, 9000, 'delivered whole, not truncated');
      assert.ok(latency < 2000, `the large event took ${latency.toFixed(0)} ms behind the flood`);
      // The flood was bounded: reads were cancelled as the subscriptions were replaced.
      const outstanding = await metric(reactor.port, 'reactor_client_reads');
      assert.ok(outstanding <= 2, `at most 2 reads outstanding for one connection (saw ${outstanding})`);
      const cancelled = await metric(reactor.port, 'reactor_client_reads_cancelled_total');
      assert.ok(cancelled > 0, 'replaced subscriptions cancelled their reads');
      const { rows: [{ n }] } = await db.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'reactor%' AND datname = current_database()`);
      assert.ok(n <= 2, `the reactor uses its two connections (events, client reads), saw ${n}`);
      // The attacker still gets answers: its last subscriptions are served.
      await attacker.next((m) => m.type === 'snapshot' && m.id === 's', 20000, 'the last snapshot');
      await eventually(() => attacker.eventIds().length >= 20, { timeout: 20000, what: 'the resumed events' });
      assert.equal(attacker.closed, null);
      attacker.terminate();
      victim.terminate();
    } finally {
      await reactor.stop();
      await db.end();
    }
  });

test('reactor migrate while a replica is the scheduler leader; a second migrate waits a bounded time and names the holder',
  { timeout: 90000 }, async () => {
    const url = await freshDatabase('adv_migrate');
    const leader = startReactor(['serve', '--database-url', url, '--listen', '127.0.0.1:0']);
    const holder = await connect(url);
    try {
      await leader.ready;
      await leader.waitFor(/scheduler: leader/, 20000, true);
      // The normal deploy: migrate while the old version serves (and leads).
      const m1 = await runReactor(['migrate', '--database-url', url, '--log-level', 'info'], 20000);
      assert.equal(m1.code, 0, `migrate exited ${m1.code} after ${m1.ms} ms: ${m1.stderr}`);
      assert.match(m1.stderr, /up to date/);

      // Another migrate holds the migration lock: this one gives up and says who.
      await holder.query(`SET application_name = 'other-migrate'`);
      await holder.query('SELECT pg_advisory_lock(7212853350187139075)');
      const m2 = await runReactor(['migrate', '--database-url', url, '--migrate-lock-timeout-ms', '500'], 20000);
      assert.equal(m2.code, 1, `exit 1 expected, got ${m2.code}: ${m2.stderr}`);
      assert.match(m2.stderr, /migration lock .*backend pid \d+ \(other-migrate from/);
      assert.ok(m2.ms < 10000, `gave up in ${m2.ms} ms`);
      await holder.query('SELECT pg_advisory_unlock_all()');
      const m3 = await runReactor(['migrate', '--database-url', url], 20000);
      assert.equal(m3.code, 0, m3.stderr);
    } finally {
      await leader.stop();
      await holder.end();
    }
  });
