// WebSocket fan-out benchmarks (run by tools/bench; figures only, nothing asserted):
//  1. commit-to-client latency p50/p99/p99.9 at 1, 100 and 1 000 subscribers, 1 000
//     events/s, beside the floor (a raw libpq LISTEN client receiving the same NOTIFYs);
//  2. the highest event rate 100 subscribers sustain with nothing lost, frames/s and the
//     reactor's CPU per delivered frame;
//  3. RSS per idle connection at 10 000 connections.
// Clients are tools/ws_client_bench (C++, epoll), so the client is not the bottleneck.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { freshDatabase, connect, startReactor, sleep } from './lib.mjs';

const FLOOR = process.env.FLOOR_BIN;
const CLIENT = process.env.WS_CLIENT_BIN;
const cpuNs = (pid) => Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
const rssKb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const portOf = (proc) => Number(/listening on 127\.0\.0\.1:(\d+)/.exec(proc.stderr)[1]);
let nextId = 1;

function runJson(bin, args) {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'inherit'] });
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

// `rate` events/s for `seconds`, in batches every 10 ms, each NOTIFY stamped with t_us.
async function produce(db, rate, seconds) {
  const perBatch = Math.max(1, Math.round(rate / 100));
  const batches = Math.round(seconds * 100);
  const t0 = performance.now();
  for (let b = 0; b < batches; ++b) {
    const lo = nextId;
    nextId += perBatch;
    await db.query(`SELECT count(pg_notify('job_status_changed', reactor.sign_notification('job_status_changed',
        pg_current_xact_id(), json_build_object(
        'id', g, 'kind', 'status', 'job_id', 'b' || (g % 1000), 'source', 'bench', 'status', 'running',
        'user_id', 'u1', 'job_type', 'bench',
        't_us', (extract(epoch from clock_timestamp()) * 1e6)::bigint)::text)))
      FROM generate_series($1::bigint, $2::bigint) g`, [lo, lo + perBatch - 1]);
    const due = t0 + (b + 1) * 10;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
  }
  return perBatch * batches;
}

async function withReactor(url, fn, extra = []) {
  const reactor = startReactor(['serve', '--database-url', url, '--listen', '127.0.0.1:0', '--no-scheduler',
    '--log-level', 'warn', '--max-queue-bytes', String(64 << 20), ...extra], { readyPattern: /listening on/ });
  await reactor.ready;
  await sleep(1000);  // caught up
  try { return await fn(reactor, portOf(reactor)); } finally { await reactor.stop(); }
}

const us = (v) => (v < 0 ? '-' : v >= 1000 ? `${(v / 1000).toFixed(2)} ms` : `${v} µs`);

async function latency(url) {
  console.log('latency, commit to client, 1 000 events/s for 5 s (client: one epoll process; floor: raw libpq LISTEN):');
  console.log('  subscribers   reactor p50 / p99 / p99.9            floor p50 / p99 / p99.9     delivered');
  for (const n of [1, 100, 1000]) {
    await withReactor(url, async (reactor, port) => {
      const expected = 5000;
      const client = runJson(CLIENT, ['127.0.0.1', String(port), String(n), String(Math.max(1, n / 50)), String(expected), '60']);
      await client.wait((l) => l.ready);
      const floor = runJson(FLOOR, [url, 'job_status_changed', String(expected), '60']);
      await sleep(300);
      await produce(await connect(url).then((c) => { reactor.db = c; return c; }), 1000, 5);
      const [c, f] = await Promise.all([client.done, floor.done]);
      await reactor.db.end();
      console.log(`  ${String(n).padStart(11)}   ${us(c.p50_us)} / ${us(c.p99_us)} / ${us(c.p999_us)}`.padEnd(52) +
                  `${us(f.p50_us)} / ${us(f.p99_us)} / ${us(f.p999_us)}`.padEnd(28) +
                  `${c.events_min === expected ? 'all' : `min ${c.events_min}/${expected}`}`);
    });
  }
}

async function maxRate(url) {
  console.log('highest rate 100 subscribers sustain with nothing lost (3 s per step):');
  let best = null;
  for (const rate of [2000, 5000, 10000, 20000, 40000]) {
    const r = await withReactor(url, async (reactor, port) => {
      const n = 100;
      const expected = rate * 3;
      const client = runJson(CLIENT, ['127.0.0.1', String(port), String(n), '10', String(expected), '60']);
      await client.wait((l) => l.ready);
      const db = await connect(url);
      const cpu0 = cpuNs(reactor.child.pid);
      const t0 = performance.now();
      const sent = await produce(db, rate, 3);
      const c = await client.done;
      const secs = (performance.now() - t0) / 1000;
      const cpu = cpuNs(reactor.child.pid) - cpu0;
      await db.end();
      return { rate, sent, c, secs, cpu, frames: c.events_total };
    });
    const ok = r.c.events_min === r.sent;
    console.log(`  ${String(rate).padStart(6)} events/s: ${ok ? 'all delivered' : `min ${r.c.events_min}/${r.sent}`}, ` +
                `${(r.frames / r.secs).toFixed(0)} frames/s, ${(r.cpu / Math.max(r.frames, 1)).toFixed(0)} ns CPU per frame, ` +
                `p99 ${us(r.c.p99_us)}`);
    if (!ok) break;
    best = r;
  }
  if (best) console.log(`  => ${best.rate} events/s × 100 subscribers fully delivered`);
}

async function idleRss(url) {
  const n = Number(process.env.BENCH_IDLE_CONNECTIONS ?? 10000);
  await withReactor(url, async (reactor, port) => {
    const before = rssKb(reactor.child.pid);
    const client = runJson(CLIENT, ['127.0.0.1', String(port), String(n), '1000000', '0', '120', '3']);
    await client.wait((l) => l.ready);
    await sleep(500);
    const after = rssKb(reactor.child.pid);
    await client.done;
    console.log(`idle connections: ${n} subscribed: RSS ${before} kB -> ${after} kB, ` +
                `${((after - before) * 1024 / n).toFixed(0)} bytes per connection`);
  });
}

const url = await freshDatabase('bench_ws');
const only = process.env.BENCH_ONLY;
if (!only || only.includes('latency')) await latency(url);
if (!only || only.includes('rate')) await maxRate(url);
if (!only || only.includes('idle')) await idleRss(url);
