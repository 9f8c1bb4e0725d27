// Hostile input: every resource a client can make the reactor hold is bounded
// (docs/security.md, docs/protocol.md "Limits"). Each attack runs for a few seconds
// against the real binary while another client's pings and events, and /healthz, are
// timed; the reactor may grow by less than 64 MiB.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { freshDatabase, connect, eventually } from './lib.mjs';
import { serve, Client, metric, insertJobs, bump, signJwt, nowS, frame } from './wslib.mjs';
import { MiB, neverReader, flood, frames, underAttack, writeWhenReady } from './advlib.mjs';

let db, url;
before(async () => {
  url = await freshDatabase('adv_bounds');
  db = await connect(url);
  await insertJobs(db, 1, { prefix: 'obs' });
});
after(async () => { await db?.end(); });

const SECRET = 'adv-bounds-secret';
const PING_MS = 250;     // seconds (before) vs milliseconds (after): generous on a shared machine
const EVENT_MS = 1000;   // through PostgreSQL: commit, NOTIFY, fan-out

// A reactor and a well-behaved observer subscribed to job obs_0.
async function setup(args = [], { auth = false } = {}) {
  const reactor = await serve(url, auth ? ['--jwt-secret', SECRET, ...args] : args);
  const headers = auth ? { Authorization: `Bearer ${signJwt({ sub: 'obs', role: 'service_role', exp: nowS() + 3600 }, SECRET)}` } : {};
  const observer = await Client.open(reactor.port, { headers });
  assert.equal((await observer.subscribe('obs', { filter: { job_id: 'obs_0' } })).type, 'subscribed');
  const ping = async () => {
    const t0 = performance.now();
    observer.send({ op: 'ping' });
    try { await observer.after((m) => m.type === 'pong', 3000, 'pong'); } catch { return 3000; }
    return performance.now() - t0;
  };
  const event = async () => {
    const from = observer.messages.length;
    const t0 = performance.now();
    await bump(db, ['obs_0']);
    try {
      await observer.next((m) => observer.messages.indexOf(m) >= from && m.type === 'event', 5000, 'event');
    } catch { return 5000; }
    return performance.now() - t0;
  };
  await ping();
  await event();
  return { reactor, observer, ping, event };
}

function check(name, r, { event = true } = {}) {
  console.log(`${name}: rss +${r.growthMiB} MiB, /healthz max ${r.healthz.toFixed(1)} ms, ` +
    `ping max ${r.ping.toFixed(1)} ms${event ? `, event max ${r.event.toFixed(1)} ms` : ''} ` +
    `(${r.probes} probes in ${r.ms} ms)`);
  assert.ok(r.growth < 64 * MiB, `${name}: the reactor grew by ${r.growthMiB} MiB`);
  assert.ok(r.healthz < 1000, `${name}: /healthz took ${r.healthz} ms`);
  assert.ok(r.ping < PING_MS, `${name}: the observer's ping took ${r.ping} ms`);
  if (event) assert.ok(r.event < EVENT_MS, `${name}: the observer's event took ${r.event} ms`);
}

async function finish({ reactor, observer }) {
  await observer.close();
  assert.equal((await reactor.stop()).code, 0);
}

test('1: pipelined HTTP requests whose responses are never read', { timeout: 60000 }, async () => {
  const s = await setup();
  const socks = [];
  const r = await underAttack(s.reactor, {
    ping: s.ping, event: s.event,
    attack: async (stop) => {
      for (let i = 0; i < 2; i++) socks.push(await neverReader(s.reactor.port));
      const req = Buffer.from('GET /style.css HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'.repeat(200));
      await Promise.all(socks.map((k) => flood(k, req, stop)));
    },
  });
  check('pipelined HTTP', r);
  assert.ok(await metric(s.reactor.port, 'reactor_read_pauses_total') >= 2);
  for (const k of socks) k.destroy();
  await finish(s);
});

test('2a: pings whose pongs are never read', { timeout: 60000 }, async () => {
  const s = await setup();
  const socks = [];
  const r = await underAttack(s.reactor, {
    ping: s.ping, event: s.event,
    attack: async (stop) => {
      for (let i = 0; i < 2; i++) socks.push(await neverReader(s.reactor.port, { upgrade: true }));
      const pings = frames(9, Buffer.alloc(125, 'p'), 400);
      await Promise.all(socks.map((k) => flood(k, pings, stop)));
    },
  });
  check('pings never read', r);
  assert.ok(await metric(s.reactor.port, 'reactor_read_pauses_total') >= 2);
  for (const k of socks) k.destroy();
  await finish(s);
});

test('2b: binary frames whose error replies are never read', { timeout: 60000 }, async () => {
  const s = await setup();
  const socks = [];
  const r = await underAttack(s.reactor, {
    ping: s.ping, event: s.event,
    attack: async (stop) => {
      for (let i = 0; i < 2; i++) socks.push(await neverReader(s.reactor.port, { upgrade: true }));
      const bin = frames(2, Buffer.from('b'), 4000);
      await Promise.all(socks.map((k) => flood(k, bin, stop)));
    },
  });
  check('binary frames never read', r);
  assert.ok(await metric(s.reactor.port, 'reactor_read_pauses_total') >= 2);
  for (const k of socks) k.destroy();
  await finish(s);
});

test('2c: pings and binary frames without a token, on a server that requires one', { timeout: 60000 }, async () => {
  // A short handshake time: the 1008 close comes during the attack, and nothing may be
  // queued after it.
  const s = await setup(['--handshake-timeout-ms', '1500'], { auth: true });
  const socks = [];
  const r = await underAttack(s.reactor, {
    ms: 4000, ping: s.ping, event: s.event,
    attack: async (stop) => {
      socks.push(await neverReader(s.reactor.port, { upgrade: true }));
      socks.push(await neverReader(s.reactor.port, { upgrade: true }));
      await Promise.all([flood(socks[0], frames(9, Buffer.alloc(125, 'p'), 400), stop),
        flood(socks[1], frames(2, Buffer.from('b'), 4000), stop)]);
    },
  });
  check('no token, never read', r);
  assert.ok(await metric(s.reactor.port, 'reactor_ws_auth_timeouts_total') >= 1);
  for (const k of socks) k.destroy();
  await finish(s);
});

test('4: many subscriptions with huge filters', { timeout: 60000 }, async () => {
  const s = await setup();
  const socks = [];
  // 55 KiB of job types in one message (under the 64 KiB message limit).
  const types = Array.from({ length: 7000 }, (_, i) => `t${i}`);
  let sent = 0;
  const r = await underAttack(s.reactor, {
    ping: s.ping, event: s.event,
    attack: async (stop) => {
      for (let i = 0; i < 2; i++) socks.push(await neverReader(s.reactor.port, { upgrade: true }));
      await Promise.all(socks.map(async (k, j) => {
        for (let i = 0; i < 1000 && !stop(); i++) {
          const msg = frame(1, JSON.stringify({ op: 'subscribe', id: `s${j}_${i}`, filter: { job_type: types } }));
          if (await writeWhenReady(k, msg, stop)) sent++;
        }
      }));
    },
  });
  check('huge filters', r);
  assert.ok(sent > 100, `only ${sent} subscribes sent`);
  assert.ok(await metric(s.reactor.port, 'reactor_limit_refusals_total', 'limit="filter"') > 0);
  // Many small subscriptions stop at --max-subscriptions, with an error that loses nothing.
  const c = await Client.open(s.reactor.port);
  for (let i = 0; i < 70; i++) c.send({ op: 'subscribe', id: `x${i}`, filter: { job_id: 'obs_0' } });
  await c.next((m) => m.type === 'error' && /max-subscriptions/.test(m.message));
  await eventually(async () => c.messages.filter((m) => m.type === 'subscribed').length === 64, { what: '64 subscribed' });
  await eventually(async () => c.messages.filter((m) => m.type === 'error').length >= 6, { what: '6 refusals' });
  assert.equal(c.messages.filter((m) => m.type === 'error').length, 6);
  await bump(db, ['obs_0']);
  await c.next((m) => m.type === 'event');
  assert.equal(await metric(s.reactor.port, 'reactor_limit_refusals_total', 'limit="subscriptions"'), 6);
  await c.close();
  for (const k of socks) k.destroy();
  await finish(s);
});

test('5: many since:0 subscribes over a full history', { timeout: 90000 }, async () => {
  const s = await setup(['--history', '20000']);
  // A few thousand events in the history.
  await insertJobs(db, 5000, { prefix: `h${Date.now()}` });
  await eventually(async () => (await metric(s.reactor.port, 'reactor_history_events')) >= 5000,
    { what: 'the history filled' });
  const socks = [];
  const r = await underAttack(s.reactor, {
    ping: s.ping, event: s.event,
    attack: async (stop) => {
      for (let i = 0; i < 4; i++) socks.push(await neverReader(s.reactor.port, { upgrade: true }));
      // 43-byte messages; a filter that matches nothing, so that nothing is queued and the
      // connection is never closed as a slow consumer: pure work for the server.
      const msgs = Buffer.concat(Array.from({ length: 300 }, (_, i) =>
        frame(1, JSON.stringify({ op: 'subscribe', id: `r${i % 8}`, since: 0, filter: { job_id: 'none' } }))));
      await Promise.all(socks.map((k) => flood(k, msgs, stop)));
    },
  });
  check('since:0 floods', r);
  assert.ok(await metric(s.reactor.port, 'reactor_resume_entries_total') > 0);
  // A well-behaved resume still gets the whole history, in order.
  const c = await Client.open(s.reactor.port);
  c.send({ op: 'subscribe', id: 'all', since: 0 });
  await eventually(() => c.events().length >= 5000, { what: 'the resume', timeout: 30000 });
  const ids = c.eventIds();
  assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
  assert.equal(new Set(ids).size, ids.length);
  await c.close();
  for (const k of socks) k.destroy();
  await finish(s);
});
