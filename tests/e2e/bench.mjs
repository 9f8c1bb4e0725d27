// Benchmarks (run by tools/bench; prints figures, asserts nothing about time).
//  1. ingest: NOTIFY bursts -> reactor (parsed, sequenced, journaled) vs the floor, a raw
//     libpq LISTEN client receiving the same notifications in the same run;
//  2. catch-up: 100 000 events committed while the reactor is disconnected, recovered
//     from reactor.job_events after the reconnect.
import path from 'node:path';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { freshDatabase, connect, startReactor, readJournal, eventually, tempDir, sleep, killReactorBackends } from './lib.mjs';

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
  const reactor = startReactor(['serve', '--database-url', url, '--record', journal, '--no-scheduler', '--log-level', 'warn'],
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
      await db.query(`SELECT count(pg_notify('job_status_changed', jsonb_build_object(
          'id', g, 'kind', 'status', 'job_id', 'bench_' || (g % 1000), 'source', 'scheduled_jobs',
          'status', 'running', 'old_status', 'pending', 'user_id', 'u' || (g % 7), 'job_type', 'bench',
          'attempt', 1, 'progress', null, 'message', null, 'error', null,
          'scheduled_for', '2026-11-21T06:00:00Z', 'at', clock_timestamp())::text))
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
  const reactor = startReactor(['serve', '--database-url', url, '--record', journal, '--no-scheduler', '--log-level', 'info']);
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

await ingest();
await catchUp();
