// Benchmarks (run by tools/bench; prints figures, asserts nothing about time).
//  1. ingest: NOTIFY bursts (signed) -> reactor (verified, parsed, sequenced, journaled) vs the floor, a raw
//     libpq LISTEN client receiving the same notifications in the same run;
//  2. catch-up: 100 000 events committed while the reactor is disconnected, recovered
//     from reactor.job_events after the reconnect;
//  3. scheduler: lateness of due events (job_events.created_at - scheduled_for, both in
//     the server's clock) with 10 000 jobs due over one minute, beside the floor (tick()'s
//     own execution time); then statements per hour while idle.
//  4. tickscale (not in the default run): reactor.tick() at 10 000 / 100 000 / 1 000 000
//     pending jobs (BENCH_TICK_SIZES) with 5 % running and a 2 % due backlog: the
//     backlog's first announcement (slices, longest statement), idle ticks, a tick per
//     newly due job (what a deadline every 86 ms costs at 1 000 000), lateness with
//     1 000 jobs due per second; the same for 002's tick() at BENCH_TICK_OLD sizes;
//  5. standby (not in the default run): backend_xmin of a standby waiting for leadership,
//     sampled for BENCH_STANDBY_SECONDS (600).
// BENCH_ONLY=ingest,catchup,scheduler,tickscale,standby selects sections (default: the first three).
import path from 'node:path';
import os from 'node:os';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { freshDatabase, connect, startReactor, readJournal, eventually, tempDir, sleep, killReactorBackends } from './lib.mjs';
import { startLeader } from './sched_lib.mjs';

const FLOOR = process.env.FLOOR_BIN;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const N = Number(process.env.BENCH_EVENTS ?? 100000);
const BATCH = 10000;
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const cpuNs = (pid) => Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);

function startFloor(url, count) {
  const child = spawn(FLOOR, [url, 'job_status_changed', String(count), '180'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const listening = new Promise((resolve) => child.stdout.on('data', (d) => { out += d; if (out.includes('listening')) resolve(); }));
  const done = new Promise((resolve) => child.on('exit', () => resolve(JSON.parse(out.trim().split('\n').pop()))));
  return { listening, done };
}

async function ingest() {
  const url = await freshDatabase('bench_ingest');
  const journal = path.join(tempDir(), 'journal.ndjson');
  const reactor = startReactor(['serve', '--database-url', url, '--listen', '127.0.0.1:0', '--record', journal, '--no-scheduler', '--log-level', 'warn'],
    { readyPattern: null });
  await sleep(1500);  // connected and caught up (nothing to read)
  const db = await connect(url);
  const results = [];
  for (let round = 0; round < ROUNDS; ++round) {
    const floor = startFloor(url, N);
    await floor.listening;
    const before = (await readJournal(journal)).length;
    const cpu0 = cpuNs(reactor.child.pid);
    const t0 = Date.now();
    for (let lo = round * N + 1; lo <= (round + 1) * N; lo += BATCH) {
      // Signed as the triggers sign (reactor.sign_notification; the bench is superuser).
      await db.query(`SELECT count(pg_notify('job_status_changed', reactor.sign_notification('job_status_changed',
          pg_current_xact_id(), jsonb_build_object(
          'id', g, 'kind', 'status', 'job_id', 'bench_' || (g % 1000), 'source', 'scheduled_jobs',
          'status', 'running', 'old_status', 'pending', 'user_id', 'u' || (g % 7), 'job_type', 'bench',
          'attempt', 1, 'progress', null, 'message', null, 'error', null,
          'scheduled_for', '2026-11-21T06:00:00Z', 'at', clock_timestamp())::text)))
        FROM generate_series($1::bigint, $2::bigint) g`, [lo, lo + BATCH - 1]);
    }
    const f = await floor.done;
    const lines = await eventually(async () => {
      const j = await readJournal(journal);
      return j.length - before >= N ? j.slice(before) : null;
    }, { timeout: 120000, interval: 50, what: 'the reactor to journal the burst' });
    const cpu = cpuNs(reactor.child.pid) - cpu0;
    const rSpan = lines[lines.length - 1].t - lines[0].t;
    const fSpan = (f.last_ns - f.first_ns) / 1e6;
    results.push({
      reactor_rate: N / Math.max(rSpan, 1) * 1000,
      floor_rate: N / Math.max(fSpan, 0.001) * 1000,
      reactor_cpu_us: cpu / N / 1000,
      floor_cpu_us: f.cpu_ns / N / 1000,
      lag_ms: lines[lines.length - 1].t - f.last_ns / 1e6,
      produce_ms: Date.now() - t0,
    });
  }
  await db.end();
  await reactor.stop();
  const m = (k) => median(results.map((r) => r[k]));
  console.log(`ingest (${ROUNDS} rounds of ${N} NOTIFYs in ${N / BATCH} transactions; medians):`);
  console.log(`  floor (raw libpq LISTEN)   ${m('floor_rate').toFixed(0).padStart(9)} events/s   ${m('floor_cpu_us').toFixed(2)} µs CPU/event`);
  console.log(`  reactor (parse+sequence+journal) ${m('reactor_rate').toFixed(0).padStart(9)} events/s   ${m('reactor_cpu_us').toFixed(2)} µs CPU/event`);
  console.log(`  ratio reactor/floor        ${(m('reactor_rate') / m('floor_rate')).toFixed(2)}x rate, ${(m('reactor_cpu_us') / m('floor_cpu_us')).toFixed(1)}x CPU`);
  console.log(`  reactor's last event after the floor's: ${m('lag_ms').toFixed(1)} ms`);
}

async function catchUp() {
  const url = await freshDatabase('bench_catchup');
  const dbname = new URL(url).pathname.slice(1);
  const journal = path.join(tempDir(), 'journal.ndjson');
  const reactor = startReactor(['serve', '--database-url', url, '--listen', '127.0.0.1:0', '--record', journal, '--no-scheduler', '--log-level', 'info']);
  await reactor.ready;
  const admin = await connect(process.env.DATABASE_URL);
  const db = await connect(url);
  await admin.query(`ALTER DATABASE ${dbname} ALLOW_CONNECTIONS false`);
  await killReactorBackends(admin);
  await reactor.waitFor(/connection lost/, 10000, true);
  const CATCH = Number(process.env.BENCH_CATCHUP ?? 100000);
  await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, user_id, frequency_type, frequency_config, enabled)
                  SELECT 'missed_' || g, 'bench', 'u' || (g % 7), 'once', '{}', false FROM generate_series(1, $1::int) g`, [CATCH]);
  const logFrom = reactor.stderr.length;
  const t0 = Date.now();
  await admin.query(`ALTER DATABASE ${dbname} ALLOW_CONNECTIONS true`);
  await reactor.waitFor(/catching up -> ready/, 120000);
  const log = reactor.stderr.slice(logFrom);
  const ts = (re) => Date.parse(log.split('\n').find((l) => re.test(l)).split(' ')[0]);
  const start = ts(/listening -> catching up/);
  const ready = ts(/catching up -> ready/);
  const lines = await eventually(async () => {
    const j = await readJournal(journal);
    return j.length >= CATCH ? j : null;
  }, { timeout: 120000, interval: 100, what: 'the recovered events in the journal' });
  const journaled = lines[lines.length - 1].t;
  console.log(`catch-up (${CATCH} events committed while disconnected):`);
  console.log(`  read + sequenced in ${ready - start} ms (${(CATCH / Math.max(ready - start, 1) * 1000).toFixed(0)} events/s), ` +
              `last one journaled ${journaled - start} ms after the read began; reconnect came ${start - t0} ms after connections were allowed again (backoff)`);
  await db.end();
  await admin.end();
  await reactor.stop();
}

// 10 000 jobs due evenly over a minute, twice: with a worker that starts and completes
// each job when its due event arrives (the normal case: pending jobs stay few), and with
// nobody taking them (tick() then walks every job still pending: its worst case). Then
// an idle window with nothing due.
async function scheduler() {
  const JOBS = Number(process.env.BENCH_SCHED_JOBS ?? 10000);
  const SPAN_S = Number(process.env.BENCH_SCHED_SECONDS ?? 60);
  const IDLE_S = Number(process.env.BENCH_IDLE_SECONDS ?? 120);
  const role = `reactor_bench_${process.pid}`;
  const admin = await connect(process.env.DATABASE_URL);
  await admin.query(`CREATE ROLE ${role} LOGIN SUPERUSER`);
  const f = (x) => Number(x).toFixed(2);
  console.log(`scheduler (${JOBS} jobs due evenly over ${SPAN_S} s; lateness = job_events.created_at - scheduled_for, server clock):`);

  for (const withWorker of [true, false]) {
    const url = await freshDatabase(withWorker ? 'bench_sched_worker' : 'bench_sched_pile');
    const db = await connect(url);
    await db.query('CREATE EXTENSION pg_stat_statements');
    const reactorUrl = new URL(url);
    reactorUrl.username = role;  // the reactor's statements are told apart by role
    const reactor = await startLeader(reactorUrl.toString(), ['--log-level', 'info']);
    const stats = async () => (await db.query(
      `SELECT CASE WHEN s.query LIKE '%reactor.tick()%' THEN 'tick'
                   WHEN s.query LIKE '%clock_timestamp()%' THEN 'clock'
                   WHEN s.query LIKE '%pg_notify(%' THEN 'self-check'
                   ELSE 'other' END AS kind,
              sum(s.calls)::int AS calls, sum(s.total_exec_time) AS total_ms, max(s.max_exec_time) AS max_ms
         FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
        WHERE r.rolname = $1 AND s.toplevel GROUP BY 1`, [role])).rows;

    // The worker: one connection, driven by due events, one job at a time.
    let worker = null;
    let worked = 0;
    if (withWorker) {
      const listen = await connect(url);
      const run = await connect(url);
      const queue = [];
      let busy = false;
      const pump = async () => {
        if (busy) return;
        busy = true;
        while (queue.length) {
          const id = queue.shift();
          await run.query(`SELECT reactor.complete_job($1, reactor.start_job($1, 'scheduled'))`, [id]).catch(() => {});
          ++worked;
        }
        busy = false;
      };
      listen.on('notification', (n) => {
        const e = JSON.parse(n.payload);
        if (e.kind === 'due') { queue.push(e.job_id); pump(); }
      });
      await listen.query('LISTEN job_status_changed');
      worker = { end: async () => { await listen.end(); await run.end(); } };
    }

    await db.query('SELECT pg_stat_statements_reset()');
    await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for)
                    SELECT 'due_' || g, 'bench', now() + interval '3 s' + g * make_interval(secs => $2::float8 / $1)
                      FROM generate_series(1, $1::int) g`, [JOBS, SPAN_S]);
    await eventually(async () => (await db.query(`SELECT count(*)::int AS n FROM reactor.job_events WHERE kind = 'due'`)).rows[0].n >= JOBS,
      { timeout: (SPAN_S + 120) * 1000, interval: 500, what: 'every job due' });
    const { rows: [late] } = await db.query(
      `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l) AS p50, percentile_cont(0.99) WITHIN GROUP (ORDER BY l) AS p99,
              max(l) AS max, count(*) FILTER (WHERE l > 20)::int AS over20
         FROM (SELECT extract(epoch FROM created_at - (payload->>'scheduled_for')::timestamptz) * 1000 AS l
                 FROM reactor.job_events WHERE kind = 'due') x`);
    const busy = Object.fromEntries((await stats()).map((r) => [r.kind, r]));
    const ticks = busy.tick?.calls ?? 0;
    console.log(withWorker ? `  with a worker taking each job at its due event (${worked} taken):`
                           : '  with nobody taking the jobs (all stay pending):');
    console.log(`    lateness p50 ${f(late.p50)} ms, p99 ${f(late.p99)} ms, max ${f(late.max)} ms; ${late.over20} of ${JOBS} over 20 ms`);
    console.log(`    floor, tick() itself: ${ticks} ticks, ${f((busy.tick?.total_ms ?? 0) / Math.max(ticks, 1))} ms mean, ` +
                `${f(busy.tick?.max_ms ?? 0)} ms max; ${(JOBS / Math.max(ticks, 1)).toFixed(1)} jobs per tick`);
    // The reactor's own share: how late its timer fired (its /metrics histogram).
    const port = reactor.stderr.match(/listening on [^\s:]+:(\d+)/)[1];
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const value = (re) => Number((text.match(re) ?? [])[1] ?? NaN);
    const fires = value(/^reactor_scheduler_timer_lateness_seconds_count (\S+)/m);
    // (le labels are printed with 17 digits: 0.0050000000000000001)
    const within1 = value(/^reactor_scheduler_timer_lateness_seconds_bucket\{le="0\.0010*1?"\} (\S+)/m);
    const within5 = value(/^reactor_scheduler_timer_lateness_seconds_bucket\{le="0\.0050*1?"\} (\S+)/m);
    const mean = value(/^reactor_scheduler_timer_lateness_seconds_sum (\S+)/m) / Math.max(fires, 1) * 1000;
    console.log(`    the reactor's timer: ${fires} fires, ${f(mean)} ms late on average, ` +
                `${(100 * within1 / Math.max(fires, 1)).toFixed(1)} % within 1 ms, ${(100 * within5 / Math.max(fires, 1)).toFixed(1)} % within 5 ms ` +
                `(load average ${os.loadavg()[0].toFixed(2)} on ${os.cpus().length} cores)`);

    if (!withWorker) {
      // Idle: every job is announced and none runs, so nothing is due and no timer runs.
      await sleep(2000);
      await db.query('SELECT pg_stat_statements_reset()');
      await sleep(IDLE_S * 1000);
      const idle = await stats();
      const perHour = (kinds) => idle.filter((r) => kinds.includes(r.kind)).reduce((n, r) => n + r.calls, 0) * 3600 / IDLE_S;
      console.log(`  idle: ${IDLE_S} s of pg_stat_statements for the reactor's role, times ${3600 / IDLE_S}: ` +
                  `${perHour(['tick', 'clock', 'other'])} scheduler statements per hour (goal 0), ` +
                  `${perHour(['self-check'])} connection self-checks per hour (one per 60 s of silence)`);
    }
    await worker?.end();
    await reactor.stop();
    await db.end();
  }
  await admin.query(`DROP ROLE ${role}`).catch(() => {});
  await admin.end();
}


// reactor.tick() against large tables. The load is not measured: one INSERT per kind with
// generate_series, the event triggers detached meanwhile (a million insert events would
// only measure emit_event), then ANALYZE.
async function tickScale() {
  const sizes = (process.env.BENCH_TICK_SIZES ?? '10000,100000,1000000').split(',').map(Number);
  const oldSizes = (process.env.BENCH_TICK_OLD ?? '10000,100000').split(',').map(Number);
  const IDLE_CALLS = Number(process.env.BENCH_TICK_IDLE_CALLS ?? 1000);
  const f = (x) => Number(x).toFixed(2);
  const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
  console.log('tick() at scale (pending jobs spread over 24 h starting in 1 h; 5 % running, started within 10 min; ' +
              '2 % pending and due, not yet announced):');
  for (const size of sizes) {
    for (const version of ['004', '002']) {
      if (version === '002' && !oldSizes.includes(size)) continue;
      const url = await freshDatabase(`bench_tick_${size}_${version}`);
      const db = await connect(url);
      if (version === '002') {
        await new Promise((resolve, reject) => spawn('psql', [url, '-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction',
          '-f', path.join(process.env.REACTOR_ROOT, 'sql/migrations/004_tick_scale.down.sql')], { stdio: 'inherit' })
          .on('exit', (c) => (c === 0 ? resolve() : reject(new Error('004 down failed')))));
      }
      const running = Math.round(size * 0.05);
      const backlog = Math.round(size * 0.02);
      const t0 = Date.now();
      await db.query(`SELECT reactor.detach('reactor.scheduled_jobs')`);
      await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, user_id, scheduled_for)
                      SELECT 'p_' || g, 'bench', 'u' || (g % 100), now() + interval '1 hour' + g * make_interval(secs => 86400.0 / $1)
                        FROM generate_series(1, $1::int) g`, [size]);
      await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, status, started_at, scheduled_for)
                      SELECT 'r_' || g, 'bench', 'running', now() - random() * interval '10 min', now() - interval '10 min'
                        FROM generate_series(1, $1::int) g`, [running]);
      await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for)
                      SELECT 'b_' || g, 'bench', now() - random() * interval '10 min'
                        FROM generate_series(1, $1::int) g`, [backlog]);
      await db.query(`SELECT reactor.attach('reactor.scheduled_jobs', 'id', 'status', 'user_id', 'job_type')`);
      await db.query('VACUUM ANALYZE reactor.scheduled_jobs');
      if (version === '004') await db.query('VACUUM ANALYZE reactor.due_queue');
      console.log(`  ${size} pending, ${running} running, ${backlog} due (${version === '004' ? 'tick() of 004' : 'tick() of 002, for comparison'}; loaded in ${((Date.now() - t0) / 1000).toFixed(0)} s):`);

      // The backlog: tick until the answer is ahead of now().
      const timed = async (sql) => { const a = process.hrtime.bigint(); const r = await db.query(sql); return [Number(process.hrtime.bigint() - a) / 1e6, r.rows[0]]; };
      const tickSql = `SELECT t > now() OR t IS NULL AS ahead FROM reactor.tick() AS t`;
      let slices = 0, total = 0, longest = 0;
      for (;;) {
        const [ms, row] = await timed(tickSql);
        ++slices; total += ms; longest = Math.max(longest, ms);
        if (row.ahead) break;
      }
      const { rows: [{ n }] } = await db.query(`SELECT count(*)::int AS n FROM reactor.job_events WHERE kind = 'due'`);
      console.log(`    backlog: ${n} due events in ${f(total)} ms, ${slices} tick() statement${slices > 1 ? 's' : ''}, longest ${f(longest)} ms`);

      // Idle: nothing new due (the backlog stays pending, announced).
      const calls = version === '004' ? IDLE_CALLS : Number(process.env.BENCH_TICK_OLD_CALLS ?? 100);
      const idle = [];
      for (let i = 0; i < calls; ++i) idle.push((await timed(tickSql))[0]);
      console.log(`    idle tick (${calls} calls, round trip included): p50 ${f(pct(idle, 0.5))} ms, p99 ${f(pct(idle, 0.99))} ms, max ${f(Math.max(...idle))} ms`);

      // One newly due job per tick: a far job moved to now() in its own statement, then a tick.
      const one = [];
      for (let i = 1; i <= Math.min(200, calls); ++i) {
        await db.query(`UPDATE reactor.scheduled_jobs SET scheduled_for = now() WHERE id = $1`, [`p_${size - i}`]);
        one.push((await timed(tickSql))[0]);
      }
      const perHour = 86400 / size > 0 ? (size / 24) : 0;  // deadlines per hour with the jobs spread over 24 h
      const mean = one.reduce((a, b) => a + b, 0) / one.length;
      console.log(`    a tick announcing one job: p50 ${f(pct(one, 0.5))} ms, p99 ${f(pct(one, 0.99))} ms; one deadline every ` +
                  `${f(86400000 / size)} ms is ${Math.round(perHour)} ticks per hour = ${f(mean * perHour / 1000)} s of database time per hour`);

      // Lateness: 1 000 jobs due per second for 10 s, the reactor ticking.
      const reactor = await startLeader(url, ['--log-level', 'info']);
      // In ten INSERTs of 1 000 jobs, all committed before the first is due (20 s ahead),
      // so that the inserts (and their 10 000 events) do not compete with the ticks; a
      // job that came due before its INSERT committed would be left out of the figures.
      const { rows: [{ base }] } = await db.query(`SELECT now() + interval '20 s' AS base`);
      for (let k = 0; k < 10; ++k) {
        await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for)
                        SELECT 'l_' || g, 'bench', $1::timestamptz + g * interval '1 ms' FROM generate_series($2::int, $2::int + 999) g`,
                       [base, k * 1000]);
      }
      const { rows: [{ t: insertedAt }] } = await db.query(`SELECT clock_timestamp() AS t`);
      const committed = insertedAt > base ? insertedAt : base;
      await eventually(async () => (await db.query(`SELECT count(*)::int AS n FROM reactor.job_events WHERE kind = 'due' AND job_id LIKE 'l\\_%'`)).rows[0].n >= 10000,
        { timeout: 120000, interval: 500, what: 'the 10 000 jobs due' });
      const { rows: [late] } = await db.query(
        `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l) AS p50, percentile_cont(0.99) WITHIN GROUP (ORDER BY l) AS p99, max(l) AS max
           FROM (SELECT extract(epoch FROM created_at - (payload->>'scheduled_for')::timestamptz) * 1000 AS l
                   FROM reactor.job_events WHERE kind = 'due' AND job_id LIKE 'l\\_%'
                    AND (payload->>'scheduled_for')::timestamptz > $1) x`, [committed]);
      console.log(`    lateness at 1 000 due per second (10 000 jobs): p50 ${f(late.p50)} ms, p99 ${f(late.p99)} ms, max ${f(late.max)} ms ` +
                  `(load average ${os.loadavg()[0].toFixed(2)})`);
      await reactor.stop();
      await db.end();
      const admin = await connect(process.env.DATABASE_URL);
      await admin.query(`DROP DATABASE IF EXISTS ${new URL(url).pathname.slice(1)}`).catch(() => {});
      await admin.end();
    }
  }
}

// A standby waiting for leadership, watched for BENCH_STANDBY_SECONDS: its backend_xmin
// (the oldest snapshot it holds, which VACUUM must respect in the whole database).
async function standby() {
  const SECONDS = Number(process.env.BENCH_STANDBY_SECONDS ?? 600);
  const url = await freshDatabase('bench_standby');
  const db = await connect(url);
  const a = await startLeader(url, ['--log-level', 'info']);
  const b = startReactor(['serve', '--database-url', url, '--listen', '127.0.0.1:0']);
  await b.waitFor(/scheduler: waiting for leadership/, 20000, true);
  const pid = Number(b.stderr.match(/waiting for leadership \(.*backend pid (\d+)\)/)[1]);
  let samples = 0, held = 0, maxAge = null;
  const end = Date.now() + SECONDS * 1000;
  for (let g = 0; Date.now() < end; ++g) {
    await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, scheduled_for) VALUES ($1, 'standby', now() + interval '1 day')`, [`s_${g}`]);
    const { rows: [r] } = await db.query(`SELECT age(backend_xmin) AS age FROM pg_stat_activity WHERE pid = $1`, [pid]);
    ++samples;
    if (r?.age != null) { ++held; maxAge = Math.max(maxAge ?? 0, Number(r.age)); }
    await sleep(1000);
  }
  console.log(`standby: age(backend_xmin) of the waiting standby over ${SECONDS} s: ${held} of ${samples} samples not NULL` +
              (maxAge == null ? ' (NULL throughout)' : `, max age ${maxAge}`));
  const killedAt = Date.now();
  a.child.kill('SIGKILL');
  await b.waitFor(/scheduler: ticking/, 10000, true);
  console.log(`standby: ticking ${Date.now() - killedAt} ms after the leader's SIGKILL`);
  await b.stop();
  await db.end();
}

const only = (process.env.BENCH_ONLY ?? 'ingest,catchup,scheduler').split(',');
if (only.includes('ingest')) await ingest();
if (only.includes('catchup')) await catchUp();
if (only.includes('scheduler')) await scheduler();
if (only.includes('tickscale')) await tickScale();
if (only.includes('standby')) await standby();
