// Behind HAProxy (run by tools/bench, BENCH_ONLY=lb; figures only): 300 subscribers ×
// 500 events/s for 10 s, delivered frames/s and commit-to-client latency, with
//   a. one replica, clients connected directly;
//   b. one replica, clients through HAProxy (tools/deploy/haproxy.cfg): the proxy's own cost;
//   c. three replicas on one PostgreSQL, clients through HAProxy.
// Clients are tools/ws_client_bench (C++, epoll). Everything runs on this one machine,
// so (c) shows HAProxy's and the replicas' overhead, not the capacity three machines
// would have: the three replicas share the same cores with PostgreSQL, HAProxy and the
// clients.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { freshDatabase, connect, sleep } from './lib.mjs';
import { replicas, startHaproxy } from './lblib.mjs';

const CLIENT = process.env.WS_CLIENT_BIN;
const SUBS = Number(process.env.BENCH_LB_SUBSCRIBERS ?? 300);
const RATE = Number(process.env.BENCH_LB_RATE ?? 500);
const SECONDS = Number(process.env.BENCH_LB_SECONDS ?? 10);
const cpuNs = (pid) => Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
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
  const wait = (pred) => new Promise((resolve) => { const h = lines.find(pred); if (h) return resolve(h); waiters.push({ pred, resolve }); });
  return { child, done, wait };
}

// Signed synthetic events stamped with t_us, in batches every 10 ms (as bench_ws.mjs).
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
    const wait = t0 + (b + 1) * 10 - performance.now();
    if (wait > 0) await sleep(wait);
  }
  return perBatch * batches;
}

const us = (v) => (v < 0 ? '-' : v >= 1000 ? `${(v / 1000).toFixed(2)} ms` : `${v} µs`);

async function scenario(url, label, { replicasN, viaProxy }) {
  // No secret: the bench client sends no token (loopback replicas, so that is allowed).
  const { ports, rs } = await replicas(url, replicasN, ['--no-scheduler',
    '--max-queue-bytes', String(64 << 20)], { secret: false });
  // One replica through HAProxy: all three server lines name it.
  const lb = viaProxy ? await startHaproxy([...ports, ...Array(3 - ports.length).fill(ports[0])].slice(0, 3)) : null;
  const port = viaProxy ? lb.port : ports[0];
  try {
    await sleep(1000);
    const expected = Math.max(1, Math.round(RATE / 100)) * Math.round(SECONDS * 100);
    const client = runJson(CLIENT, ['127.0.0.1', String(port), String(SUBS), '10', String(expected), String(SECONDS + 60)]);
    await client.wait((l) => l.ready);
    const db = await connect(url);
    const cpu0 = rs.map((r) => cpuNs(r.child.pid));
    const lbCpu0 = lb ? cpuNs(lb.child.pid) : 0;
    const t0 = performance.now();
    const sent = await produce(db, RATE, SECONDS);
    const c = await client.done;
    const secs = (performance.now() - t0) / 1000;
    const cpu = rs.reduce((a, r, i) => a + cpuNs(r.child.pid) - cpu0[i], 0);
    const lbCpu = lb ? cpuNs(lb.child.pid) - lbCpu0 : 0;
    await db.end();
    const r = { label, sent, c, secs, frames: c.events_total, cpu, lbCpu };
    console.log(`  ${label.padEnd(34)} ${(r.frames / secs).toFixed(0).padStart(7)} frames/s   ` +
      `p50 ${us(c.p50_us)} / p99 ${us(c.p99_us)} / p99.9 ${us(c.p999_us)}   ` +
      `${c.events_min === sent ? 'all delivered' : `min ${c.events_min}/${sent}`}   ` +
      `reactor CPU ${(cpu / Math.max(r.frames, 1)).toFixed(0)} ns/frame` +
      (lb ? `, HAProxy CPU ${(lbCpu / Math.max(r.frames, 1)).toFixed(0)} ns/frame` : ''));
    return r;
  } finally {
    if (lb) await lb.stop();
    for (const r of rs) await r.stop();
  }
}

const url = await freshDatabase('bench_lb');
console.log(`behind HAProxy: ${SUBS} subscribers × ${RATE} events/s for ${SECONDS} s (every event to every subscriber; ` +
  'latency from the producer\'s statement to the client, every 10th connection sampled):');
const a = await scenario(url, '1 replica, direct', { replicasN: 1, viaProxy: false });
const b = await scenario(url, '1 replica through HAProxy', { replicasN: 1, viaProxy: true });
const c = await scenario(url, '3 replicas through HAProxy', { replicasN: 3, viaProxy: true });
console.log(`  => HAProxy adds p50 ${us(b.c.p50_us - a.c.p50_us)}, p99 ${us(b.c.p99_us - a.c.p99_us)} ` +
  `(1 replica); 3 replicas vs 1 direct: p50 ${us(c.c.p50_us - a.c.p50_us)}, p99 ${us(c.c.p99_us - a.c.p99_us)}`);
