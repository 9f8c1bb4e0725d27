// The scheduler's clock against a real PostgreSQL: due events written on time, the timer
// re-armed by events without a query, retries with backoff, timeouts, expiry, the config
// switch, recurring jobs across a daylight-saving change, and --no-scheduler.
// "On time" is measured in the server's clock: job_events.created_at - scheduled_for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freshDatabase, connect, startReactor, eventually, sleep, killReactorBackends } from './lib.mjs';
import { startLeader, dueEvents, tickCalls, serverNow, logTime } from './sched_lib.mjs';

const PUNCTUAL_MS = 20;
// Timeouts and expiry: the issue asks that they happen at their time, not within 20 ms;
// a looser bound keeps a loaded machine from failing the suite on them.
const ON_TIME_MS = 250;

// The 20 ms is asserted where it is the subject: the first test's jobs due at
// +200 ms, +400 ms, … and the re-armed ones. Elsewhere (retries, timeouts, recurrence,
// catch-up) the subject is that the right event comes once, at its time; there a loaded
// machine's scheduling noise must not fail the suite.
function assertOnTime(events, what) {
  for (const e of events) {
    assert.ok(e.late_ms >= 0 && e.late_ms < ON_TIME_MS,
      `${what}: due event of ${e.job_id} written ${e.late_ms.toFixed(2)} ms after its scheduled_for`);
  }
}

function assertPunctual(events, what) {
  for (const e of events) {
    assert.ok(e.late_ms >= 0 && e.late_ms < PUNCTUAL_MS,
      `${what}: due event of ${e.job_id} written ${e.late_ms.toFixed(2)} ms after its scheduled_for`);
  }
}

test('due events are written within 20 ms; an earlier job re-arms the timer without a query', { timeout: 60000 }, async () => {
  const url = await freshDatabase('sched_deadlines');
  const db = await connect(url);
  await db.query('CREATE EXTENSION pg_stat_statements');
  const reactor = await startLeader(url);
  try {
    await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for)
                    SELECT 'step_' || g, 'timing', now() + g * interval '200 ms' FROM generate_series(1, 10) g`);
    const due = await eventually(async () => { const d = await dueEvents(db); return d.length >= 10 && d; },
      { timeout: 10000, what: '10 due events' });
    assert.equal(due.length, 10);
    assert.deepEqual(due.map((e) => e.job_id), Array.from({ length: 10 }, (_, i) => `step_${i + 1}`));
    assertPunctual(due, 'steps');

    // A job 3 s ahead arms the timer; one 1 s ahead re-arms it earlier. Neither is a query.
    const before = await tickCalls(db);
    await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for)
                    VALUES ('far', 'timing', now() + interval '3 s')`);
    await sleep(100);
    await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for)
                    VALUES ('near', 'timing', now() + interval '1 s')`);
    await sleep(400);
    assert.equal(await tickCalls(db), before, 'inserting future jobs made the reactor tick');
    const near = await eventually(async () => (await dueEvents(db, ['near']))[0], { timeout: 5000, what: 'near due' });
    assertPunctual([near], 'near');
    assert.equal(await tickCalls(db), before + 1, 'one tick for the near job');
    const far = await eventually(async () => (await dueEvents(db, ['far']))[0], { timeout: 5000, what: 'far due' });
    assertPunctual([far], 'far');
    assert.equal(await tickCalls(db), before + 2, 'one tick for the far job');
    // Announced once: nothing more for any job.
    await sleep(300);
    assert.equal((await dueEvents(db)).length, 12);
  } finally {
    await reactor.stop();
    await db.end();
  }
});

test('after a reconnect it ticks at once, announcing every deadline missed while away exactly once', { timeout: 60000 }, async () => {
  const url = await freshDatabase('sched_reconnect');
  const dbname = new URL(url).pathname.slice(1);
  const db = await connect(url);
  const admin = await connect(process.env.DATABASE_URL);
  const reactor = await startLeader(url);
  try {
    await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for)
                    SELECT 'away_' || g, 'missed', now() + interval '800 ms' + g * interval '100 ms' FROM generate_series(1, 10) g`);
    await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for)
                    VALUES ('after', 'missed', now() + interval '8 s')`);
    // Cut the event connection (the lock connection stays: still the leader) for ~3 s.
    await admin.query(`ALTER DATABASE ${dbname} ALLOW_CONNECTIONS false`);
    assert.ok(await killReactorBackends(admin, 'reactor') >= 1);
    await reactor.waitFor(/scheduler: paused \(connection lost\)/, 5000, true);
    await sleep(3000);
    assert.equal((await dueEvents(db)).length, 0, 'announced while the reactor was away');
    const logFrom = reactor.stderr.length;
    const ticking = reactor.waitFor(/scheduler: ticking \(connection ready\)/, 10000);
    await admin.query(`ALTER DATABASE ${dbname} ALLOW_CONNECTIONS true`);
    await ticking;
    const readyAt = logTime(reactor.stderr.slice(logFrom), /scheduler: ticking \(connection ready\)/);
    const away = async () => (await dueEvents(db)).filter((e) => e.job_id.startsWith('away_'));
    const missed = await eventually(async () => { const d = await away(); return d.length >= 10 && d; },
      { timeout: 5000, what: 'the missed deadlines' });
    const { rows } = await db.query(
      `SELECT extract(epoch FROM created_at) * 1000 AS at FROM reactor.job_events WHERE kind = 'due' AND job_id LIKE 'away_%'`);
    for (const r of rows) {
      assert.ok(Number(r.at) - readyAt < 300, `missed deadline announced ${Number(r.at) - readyAt} ms after the reconnect`);
    }
    assert.equal(new Set(missed.map((e) => e.job_id)).size, 10);
    assert.equal((await away()).length, 10, 'each missed deadline once');
    // And the clock goes on: the next deadline on time.
    const after = await eventually(async () => (await dueEvents(db, ['after']))[0], { timeout: 8000, what: 'the job after' });
    assertOnTime([after], 'after the reconnect');
    assert.equal((await dueEvents(db)).length, 11);
  } finally {
    await admin.query(`ALTER DATABASE ${dbname} ALLOW_CONNECTIONS true`).catch(() => {});
    await reactor.stop();
    await db.end();
    await admin.end();
  }
});

test('retries come due after 1x, 2x and 4x the backoff; the fourth failure is final', { timeout: 60000 }, async () => {
  const url = await freshDatabase('sched_retries');
  const db = await connect(url);
  const reactor = await startLeader(url);
  try {
    await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, retry_max_attempts, retry_backoff_seconds)
                    VALUES ('flaky', 'retry_test', 3, 1)`);
    for (let attempt = 1; attempt <= 4; ++attempt) {
      const due = await eventually(async () => { const d = await dueEvents(db, ['flaky']); return d.length >= attempt && d; },
        { timeout: 10000, what: `due event ${attempt}` });
      assert.equal(due.length, attempt, 'one due event per occurrence');
      assertOnTime([due[attempt - 1]], `attempt ${attempt}`);
      const { rows: [run] } = await db.query(`SELECT reactor.start_job('flaky', 'scheduled') AS exec`);
      // One transaction: now() is the moment fail_job counted the backoff from.
      await db.query('BEGIN');
      await db.query(`SELECT reactor.fail_job('flaky', $1, 'boom')`, [run.exec]);
      const { rows: [job] } = await db.query(
        `SELECT status, error_count, extract(epoch FROM scheduled_for - now()) AS wait_s
           FROM reactor.scheduled_jobs WHERE id = 'flaky'`);
      await db.query('COMMIT');
      if (attempt < 4) {
        assert.equal(job.status, 'pending');
        assert.equal(Number(job.wait_s), 2 ** (attempt - 1), `backoff after failure ${attempt}`);
      } else {
        assert.equal(job.status, 'failed');
        assert.equal(job.error_count, 4);
      }
    }
    await sleep(1500);
    assert.equal((await dueEvents(db, ['flaky'])).length, 4, 'no due event after the final failure');
  } finally {
    await reactor.stop();
    await db.end();
  }
});

test('a stuck job is failed at its timeout (with retry rules); a pending job expires', { timeout: 60000 }, async () => {
  const url = await freshDatabase('sched_stuck');
  const db = await connect(url);
  const reactor = await startLeader(url);
  try {
    await db.query(`INSERT INTO reactor.scheduled_jobs
                      (id, job_type, timeout_seconds, retry_on_failure, retry_max_attempts, retry_backoff_seconds, scheduled_for)
                    VALUES ('stuck', 'slow', 1, false, 0, 1, now() + interval '1 day'),
                           ('stuck_retry', 'slow', 1, true, 1, 1, now() + interval '1 day')`);
    await db.query(`SELECT reactor.start_job('stuck', 'manual'), reactor.start_job('stuck_retry', 'manual')`);
    await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for, expires_at)
                    VALUES ('perishable', 'late', now() + interval '1 hour', now() + interval '700 ms')`);

    const outcome = async (id, status) => {
      const r = await db.query(
        `SELECT e.payload->>'error' AS error,
                extract(epoch FROM e.created_at - CASE WHEN s.expires_at IS NOT NULL THEN s.expires_at
                                                       ELSE s.started_at + interval '1 s' END) * 1000 AS late_ms
           FROM reactor.job_events e JOIN reactor.scheduled_jobs s ON s.id = e.job_id
          WHERE e.job_id = $1 AND e.kind = 'status' AND e.status = $2 AND e.old_status <> $2`, [id, status]);
      return r.rows[0] && { ...r.rows[0], late_ms: Number(r.rows[0].late_ms) };
    };
    const stuck = await eventually(() => outcome('stuck', 'failed'), { timeout: 5000, what: 'the stuck job failed' });
    assert.equal(stuck.error, 'timeout');
    assert.ok(stuck.late_ms >= 0 && stuck.late_ms < ON_TIME_MS, `timeout acted ${stuck.late_ms} ms late`);
    const { rows: [exec] } = await db.query(
      `SELECT status, error_message FROM reactor.job_executions WHERE job_id = 'stuck'`);
    assert.deepEqual(exec, { status: 'failed', error_message: 'timeout' });

    // With a retry left, the timeout makes it pending again, due after its backoff.
    const again = await eventually(async () => (await dueEvents(db, ['stuck_retry']))[0],
      { timeout: 5000, what: 'the retried job due' });
    assertOnTime([again], 'retry after timeout');
    const { rows: [retried] } = await db.query(
      `SELECT status, last_error FROM reactor.scheduled_jobs WHERE id = 'stuck_retry'`);
    assert.deepEqual(retried, { status: 'pending', last_error: 'timeout' });

    const expired = await eventually(() => outcome('perishable', 'expired'), { timeout: 5000, what: 'expiry' });
    assert.ok(expired.late_ms >= 0 && expired.late_ms < ON_TIME_MS, `expiry acted ${expired.late_ms} ms late`);
    assert.equal((await dueEvents(db, ['perishable'])).length, 0);
  } finally {
    await reactor.stop();
    await db.end();
  }
});

test('scheduler_config.enabled pauses every transition; its change and a moved job re-tick at once', { timeout: 60000 }, async () => {
  const url = await freshDatabase('sched_config');
  const db = await connect(url);
  const reactor = await startLeader(url);
  try {
    await db.query('UPDATE reactor.scheduler_config SET enabled = false');
    await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for)
                    VALUES ('paused', 'cfg', now() + interval '300 ms')`);
    await sleep(1000);
    assert.equal((await dueEvents(db)).length, 0, 'a due event while the scheduler was disabled');
    const enabledAt = await serverNow(db);
    await db.query('UPDATE reactor.scheduler_config SET enabled = true');
    const late = await eventually(async () => (await dueEvents(db, ['paused']))[0], { timeout: 3000, what: 'due after enabling' });
    const { rows: [{ at }] } = await db.query(
      `SELECT extract(epoch FROM created_at) * 1000 AS at FROM reactor.job_events WHERE kind = 'due' AND job_id = 'paused'`);
    assert.ok(Number(at) - enabledAt < 200, `announced ${Number(at) - enabledAt} ms after enabling`);
    assert.ok(late.late_ms > 600, 'announced while disabled');

    // Moving a job's time is no event (status unchanged), but the config doorbell re-ticks.
    await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for)
                    VALUES ('moved', 'cfg', now() + interval '1 hour')`);
    await sleep(100);
    await db.query(`UPDATE reactor.scheduled_jobs SET scheduled_for = now() + interval '500 ms' WHERE id = 'moved'`);
    const moved = await eventually(async () => (await dueEvents(db, ['moved']))[0], { timeout: 3000, what: 'moved job due' });
    assertOnTime([moved], 'moved');
  } finally {
    await reactor.stop();
    await db.end();
  }
});

// A POSIX time zone (std offset S seconds east, DST one hour more) whose daylight saving
// starts at `startMs`; S is chosen so that `targetMs` falls on a whole minute of DST wall time.
function zoneAround(startMs, targetMs) {
  const S = (60 - (Math.round(targetMs / 1000) % 60)) % 60;
  const pad = (n) => String(n).padStart(2, '0');
  const std = new Date(startMs + S * 1000);  // the start in local standard time (UTC fields)
  const yearStart = Date.UTC(std.getUTCFullYear(), 0, 1);
  const day = Math.floor((std.getTime() - yearStart) / 86400000);  // zero-based, leap days counted
  const at = `${pad(std.getUTCHours())}:${pad(std.getUTCMinutes())}:${pad(std.getUTCSeconds())}`;
  const tz = `XST-0:00:${pad(S)}XDT-1:00:${pad(S)},${day}/${at},${(day + 100) % 365}/0`;
  const wall = new Date(targetMs + (S + 3600) * 1000);  // the target on the DST wall clock
  return { tz, hour: wall.getUTCHours(), minute: wall.getUTCMinutes(), dow: wall.getUTCDay() };
}

test('weekly, daily and every_n_hours jobs are rescheduled across a DST change and come due on time', { timeout: 60000 }, async () => {
  const url = await freshDatabase('sched_dst');
  const db = await connect(url);
  const reactor = await startLeader(url);
  try {
    const t = await serverNow(db);
    const start = Math.ceil(t / 1000) * 1000 + 3000;   // DST begins 3-4 s from now
    const target = Math.ceil((t + 9000) / 1000) * 1000;  // daily/weekly: 9-10 s from now
    const z = zoneAround(start, target);
    await db.query('UPDATE reactor.scheduler_config SET timezone = $1', [z.tz]);
    // Sanity: the zone really changes its offset between now and the target.
    const { rows: [off] } = await db.query(
      `SELECT extract(epoch FROM (to_timestamp($1 / 1000.0) AT TIME ZONE $3) - to_timestamp($1 / 1000.0) AT TIME ZONE 'UTC') AS before_s,
              extract(epoch FROM (to_timestamp($2 / 1000.0) AT TIME ZONE $3) - to_timestamp($2 / 1000.0) AT TIME ZONE 'UTC') AS after_s`,
      [t, target, z.tz]);
    assert.equal(Number(off.after_s) - Number(off.before_s), 3600, `zone ${z.tz} has no DST change in the window`);

    await db.query(
      `INSERT INTO reactor.scheduled_jobs (id, job_type, frequency_type, frequency_config, scheduled_for) VALUES
         ('weekly', 'report', 'weekly', $1, now() + interval '1 day'),
         ('daily', 'digest', 'daily', $2, now() + interval '1 day'),
         ('hourly', 'sync', 'every_n_hours', '{"hours": 0.002}', now() + interval '1 day')`,
      [{ day: z.dow, hour: z.hour, minute: z.minute }, { hour: z.hour, minute: z.minute }]);
    // Run and complete all three now, before the change.
    await db.query('BEGIN');
    const { rows: [runs] } = await db.query(
      `SELECT reactor.start_job('weekly', 'manual') AS w, reactor.start_job('daily', 'manual') AS d,
              reactor.start_job('hourly', 'manual') AS h, extract(epoch FROM now()) * 1000 AS at`);
    await db.query(`SELECT reactor.complete_job('weekly', $1), reactor.complete_job('daily', $2),
                           reactor.complete_job('hourly', $3)`, [runs.w, runs.d, runs.h]);
    await db.query('COMMIT');
    const completedAt = Number(runs.at);
    assert.ok(completedAt < start, 'completed after the DST change began');

    const { rows } = await db.query(
      `SELECT id, status, extract(epoch FROM scheduled_for) * 1000 AS at FROM reactor.scheduled_jobs ORDER BY id`);
    const next = Object.fromEntries(rows.map((r) => [r.id, { status: r.status, at: Number(r.at) }]));
    for (const id of ['weekly', 'daily', 'hourly']) assert.equal(next[id].status, 'pending', id);
    // Wall-clock schedules keep their wall time: one hour earlier in UTC than without DST.
    assert.equal(Math.round(next.weekly.at), target, 'weekly next run');
    assert.equal(Math.round(next.daily.at), target, 'daily next run');
    // Elapsed-time schedules ignore the change: 0.002 h = 7.2 s after completion.
    assert.ok(Math.abs(next.hourly.at - (completedAt + 7200)) < 1, 'every_n_hours next run');

    const due = await eventually(async () => { const d = await dueEvents(db); return d.length >= 3 && d; },
      { timeout: 20000, what: 'the three recurring jobs due' });
    assert.deepEqual(due.map((e) => e.job_id).sort(), ['daily', 'hourly', 'weekly']);
    assertOnTime(due, 'recurring');
  } finally {
    await reactor.stop();
    await db.end();
  }
});

test('--no-scheduler: no lock connection, no tick', { timeout: 30000 }, async () => {
  const url = await freshDatabase('sched_off');
  const db = await connect(url);
  const reactor = startReactor(['serve', '--database-url', url, '--listen', '127.0.0.1:0', '--no-scheduler']);
  try {
    await reactor.ready;
    assert.match(reactor.stderr, /scheduler: off on this replica/);
    await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for) VALUES ('ignored', 'x', now() + interval '200 ms')`);
    await sleep(1000);
    assert.equal((await dueEvents(db)).length, 0);
    const { rows: [a] } = await db.query(
      `SELECT count(*) FILTER (WHERE application_name = 'reactor-scheduler')::int AS lock,
              count(*) FILTER (WHERE application_name = 'reactor')::int AS events
         FROM pg_stat_activity WHERE datname = current_database()`);
    assert.deepEqual(a, { lock: 0, events: 1 });
    assert.doesNotMatch(reactor.stderr, /seeking leadership|scheduler: ticking/);
  } finally {
    await reactor.stop();
    await db.end();
  }
});
