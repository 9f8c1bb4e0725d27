// Fan-out scaling benchmarks (run by tools/bench; figures only, nothing asserted):
//  1. one measuring subscriber + 0 / 10 000 / 50 000 idle connections of other users
//     (each subscribed to a user that never gets events), 1 000 events/s: the reactor's
//     CPU and p50/p99 (routing by recipient: idle connections should cost nothing);
//  2. many open connections (100 000 where the open-file limit allows): accept rate,
//     RSS per connection, idle CPU over a ping round;
//  3. a conflating slow reader (10 frames/s) beside 100 fast subscribers at 5 000
//     events/s over 500 jobs: does it end with every job's final state, and are the fast
//     ones' latencies unchanged (a run without it beside)?
// Connections come from several loopback source addresses (127.0.0.2, ...): one address
// runs out of ephemeral ports near 28 000. Clients are tools/ws_client_bench (epoll).
import { spawn, execSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { freshDatabase, connect, startReactor, sleep } from './lib.mjs';

const CLIENT = process.env.WS_CLIENT_BIN;
const cpuNs = (pid) => Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
const rssKb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const portOf = (proc) => Number(/listening on 127\.0\.0\.1:(\d+)/.exec(proc.stderr)[1]);
const fdLimit = Number(execSync('ulimit -Hn', { shell: '/bin/bash' }).toString().trim()) || 1024;
const sources = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`).join(',');
const feasible = (n) => Math.min(n, fdLimit - 300);  // the reactor's (and a client's) own descriptors
let nextId = 1;

function runJson(bin, args, env = {}) {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  let out = '';
  const lines = [];
  const waiters = [];
  child.stdout.on('data', (d) => {
    out += d;
    let i;
    while ((i = out.indexOf('\n')) >= 0) {
      const l = JSON.parse(out.slice(0, i));
      out = out.slice(i + 1);
      lines.push(l);
      for (const w of [...waiters]) if (w.pred(l)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(l); }
    }
  });
  const done = new Promise((resolve) => child.on('exit', () => resolve(lines[lines.length - 1])));
  const wait = (pred) => new Promise((resolve) => {
    const have = lines.find(pred);
    if (have) return resolve(have);
    waiters.push({ pred, resolve });
  });
  return { child, done, wait };
}

// `rate` events/s for `seconds` over `jobs` jobs of user u1, batches every 10 ms.
function plan(rate, seconds) {
  const perBatch = Math.max(1, Math.round(rate / 100));
  return { perBatch, batches: Math.round(seconds * 100), first: nextId, last: nextId + perBatch * Math.round(seconds * 100) - 1 };
}
async function produce(db, rate, seconds, jobs = 1000) {
  const { perBatch, batches } = plan(rate, seconds);
  const t0 = performance.now();
  for (let b = 0; b < batches; ++b) {
    const lo = nextId;
    nextId += perBatch;
    await db.query(`SELECT count(pg_notify('job_status_changed', reactor.sign_notification('job_status_changed',
        pg_current_xact_id(), json_build_object(
        'id', g, 'kind', 'status', 'job_id', 'b' || (g % $3::int), 'source', 'bench', 'status', 'running',
        'user_id', 'u1', 'job_type', 'bench', 'pad', repeat('x', 60),
        't_us', (extract(epoch from clock_timestamp()) * 1e6)::bigint)::text)))
      FROM generate_series($1::bigint, $2::bigint) g`, [lo, lo + perBatch - 1, jobs]);
    const due = t0 + (b + 1) * 10;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
  }
  return perBatch * batches;
}

async function withReactor(url, fn, extra = []) {
  const reactor = startReactor(['serve', '--database-url', url, '--listen', '127.0.0.1:0', '--no-scheduler',
    '--log-level', 'warn', '--max-connections', '200000', ...extra], { readyPattern: /listening on/ });
  await reactor.ready;
  await sleep(1000);
  try { return await fn(reactor, portOf(reactor)); } finally { await reactor.stop(); }
}

const us = (v) => (v < 0 ? '-' : v >= 1000 ? `${(v / 1000).toFixed(2)} ms` : `${v} µs`);

// Idle connections subscribed to users that never get events; resolves once all are.
async function openIdle(port, n, holdS) {
  if (n === 0) return null;
  const idle = runJson(CLIENT, ['127.0.0.1', String(port), String(n), '1000000', '0', String(holdS + 120), String(holdS)],
    { WS_SOURCES: sources, WS_SUBSCRIBE: '{"op":"subscribe","id":"i","filter":{"user_id":"idle%d"}}' });
  const ready = await idle.wait((l) => l.ready || l.connections !== undefined);
  if (!ready.ready) throw new Error(`idle client ended early: ${JSON.stringify(ready)}`);
  return { ...idle, ready };
}

async function idleScaling(url) {
  console.log(`1 measuring subscriber + N idle connections of other users, 1 000 events/s for 5 s (open files: ${fdLimit}):`);
  console.log('  idle N       reactor CPU     p50 / p99 / p99.9                 delivered');
  for (const want of [0, 10000, 50000]) {
    const n = feasible(want);
    await withReactor(url, async (reactor, port) => {
      const idle = await openIdle(port, n, 60);
      const db = await connect(url);
      const m = runJson(CLIENT, ['127.0.0.1', String(port), '1', '1', '5000', '60']);
      await m.wait((l) => l.ready);
      await sleep(300);
      const cpu0 = cpuNs(reactor.child.pid);
      const t0 = performance.now();
      await produce(db, 1000, 5);
      const c = await m.done;
      const cores = (cpuNs(reactor.child.pid) - cpu0) / 1e6 / (performance.now() - t0);
      await db.end();
      idle?.child.kill();
      console.log(`  ${String(n).padStart(6)}${n !== want ? ` (of ${want})` : ''}`.padEnd(15) +
                  `${cores.toFixed(3)} cores`.padEnd(16) + `${us(c.p50_us)} / ${us(c.p99_us)} / ${us(c.p999_us)}`.padEnd(34) +
                  `${c.events_min === 5000 ? 'all' : `${c.events_min}/5000`}`);
    });
  }
}

async function manyConnections(url) {
  const want = Number(process.env.BENCH_CONNECTIONS ?? 100000);
  const n = feasible(want);
  await withReactor(url, async (reactor, port) => {
    const before = rssKb(reactor.child.pid);
    const t0 = performance.now();
    const idle = await openIdle(port, n, 45);
    const t1 = performance.now();
    const after = rssKb(reactor.child.pid);
    const cpu0 = cpuNs(reactor.child.pid);
    const w0 = performance.now();
    await sleep(30000);  // more than a ping interval (25 s): every connection pinged once
    const idleCores = (cpuNs(reactor.child.pid) - cpu0) / 1e6 / (performance.now() - w0);
    idle.child.kill();
    console.log(`${n} open connections${n !== want ? ` (of ${want}: the open-file hard limit is ${fdLimit})` : ''}: ` +
                `accepted, upgraded and subscribed in ${idle.ready.ready_s.toFixed(2)} s ` +
                `(${(n / idle.ready.ready_s).toFixed(0)} connections/s, measured by the client; ${((t1 - t0) / 1000).toFixed(1)} s with its start), ` +
                `RSS ${before} kB -> ${after} kB = ${((after - before) * 1024 / n).toFixed(0)} bytes per connection, ` +
                `idle CPU over 30 s (pings included) ${idleCores.toFixed(4)} cores`);
  });
}

async function conflation(url) {
  const rate = 5000, secs = 4, jobs = 500, fast = 100;
  console.log(`conflation: ${fast} fast subscribers, ${rate} events/s over ${jobs} jobs for ${secs} s; a conflating reader at 10 frames/s:`);
  for (const withSlow of [false, true]) {
    await withReactor(url, async (reactor, port) => {
      const expected = plan(rate, secs);
      const total = expected.last - expected.first + 1;
      const f = runJson(CLIENT, ['127.0.0.1', String(port), String(fast), '10', String(total), '120']);
      await f.wait((l) => l.ready);
      let slow = null;
      if (withSlow) {
        slow = runJson(CLIENT, ['127.0.0.1', String(port), '1', '1', '0', '120'], {
          WS_SUBSCRIBE: '{"op":"subscribe","id":"c","conflate":true}', WS_READ_FPS: '10', WS_SLOW_S: String(secs + 1),
          WS_CHECK_LAST: String(expected.last), WS_CHECK_JOBS: String(jobs) });
        await slow.wait((l) => l.ready);
      }
      const db = await connect(url);
      const cpu0 = cpuNs(reactor.child.pid);
      await produce(db, rate, secs, jobs);
      const c = await f.done;
      const cpu = cpuNs(reactor.child.pid) - cpu0;
      await db.end();
      let line = `  ${withSlow ? 'with' : 'without'} it: fast p50 / p99 ${us(c.p50_us)} / ${us(c.p99_us)}, ` +
                 `${c.events_min === total ? 'all delivered' : `min ${c.events_min}/${total}`}, reactor CPU ${(cpu / 1e9).toFixed(2)} s`;
      if (slow) {
        const s = await slow.done;
        line += `; the slow reader: ${s.finals}/${jobs} jobs' final events, ${s.events_total} events + ${s.dropped} conflated ` +
                `(${s.conflated_markers} markers) = ${s.events_total + s.dropped} of ${total}, ${s.order_errors} out of per-job order`;
      }
      console.log(line);
    });
  }
}

const url = await freshDatabase('bench_fanout');
const only = process.env.BENCH_ONLY;
if (!only || only.includes('idle')) await idleScaling(url);
if (!only || only.includes('conns')) await manyConnections(url);
if (!only || only.includes('conflate')) await conflation(url);
