// Bounded everything (docs/protocol.md, "Limits"): a reader that stops reading is closed
// with 1013 while a fast one keeps up; slow-loris, idle, connection count, header size and
// unanswered pings each trip their flag and their metric.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { freshDatabase, connect, eventually } from './lib.mjs';
import { serve, Client, Raw, frame, http, metric, insertJobs, maxEventId, sleep } from './wslib.mjs';

let db, url;
before(async () => {
  url = await freshDatabase('ws_limits');
  db = await connect(url);
  await insertJobs(db, 100, { prefix: 'l', users: ['u1'] });
});
after(async () => { await db?.end(); });

// `rounds` statements, each a 4 KB progress message on 20 jobs (about 90 KB of frames).
async function load(rounds) {
  for (let i = 0; i < rounds; i++) {
    await db.query(`UPDATE reactor.scheduled_jobs SET progress_percent = $1::int, progress_message = repeat(md5($1::int::text), 128)
                     WHERE id IN (SELECT 'l_' || g FROM generate_series($2::int, $2::int + 19) g)`, [i % 101, (i * 20) % 80]);
  }
}

function latencies(c, fromId) {
  return c.messages.filter((m) => m.type === 'event' && m.event.id > fromId)
    .map((m) => m.receivedWall - Date.parse(m.event.at)).sort((a, b) => a - b);
}
const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.floor(xs.length * p))];

test('a reader that stops reading is closed with 1013; a fast one keeps receiving', { timeout: 90000 }, async () => {
  const reactor = await serve(url, ['--max-queue-bytes', '65536']);
  const port = reactor.port;
  const fast = await Client.open(port);
  fast.ws.on('message', () => { fast.messages.at(-1).receivedWall = Date.now(); });
  await fast.subscribe('all');

  // Without a slow reader.
  let from = await maxEventId(db);
  await load(100);
  let last = await maxEventId(db);
  await fast.next((m) => m.type === 'event' && m.event.id === last, 30000);
  const alone = latencies(fast, from);

  // With one: a raw client that subscribes and then never reads again.
  const slow = await Raw.open(port);
  await slow.upgrade();
  await slow.write(frame(1, JSON.stringify({ op: 'subscribe', id: 'all' })));
  await slow.frame((f) => f.opcode === 1 && f.text.includes('"subscribed"'));
  slow.sock.pause();
  from = last;
  const t0 = Date.now();
  await load(300);
  last = await maxEventId(db);
  await fast.next((m) => m.type === 'event' && m.event.id === last, 30000);
  const withSlow = latencies(fast, from);
  await eventually(async () => (await metric(port, 'reactor_slow_consumer_closes_total')) === 1,
    { timeout: 20000, what: 'the slow consumer closed' });
  assert.match(reactor.stderr, /closing 1013: slow consumer/);

  // The server has given up on it; reading now drains what the kernel held, then EOF.
  slow.sock.resume();
  await Promise.race([slow.ended, sleep(15000)]);
  assert.ok(slow.isClosed, 'the slow reader\'s socket ended');
  const frames = slow.frames();
  const close = frames.find((f) => f.opcode === 8);
  if (close) assert.equal(close.code, 1013);
  const slowEvents = frames.filter((f) => f.opcode === 1 && f.text.startsWith('{"type":"event"')).length;

  // The fast reader got every event of both rounds, each once.
  const { rows } = await db.query('SELECT id::int FROM reactor.job_events WHERE id >= (SELECT min(id) FROM reactor.job_events WHERE kind = $1) ORDER BY id', ['progress']);
  const got = new Set(fast.eventIds());
  assert.deepEqual(rows.filter((r) => !got.has(r.id)).map((r) => r.id), []);
  assert.equal(got.size, fast.eventIds().length);
  console.log(`# latency ms alone p50=${pct(alone, 0.5)} p99=${pct(alone, 0.99)} max=${alone.at(-1)} (${alone.length} events); ` +
    `with a stalled reader p50=${pct(withSlow, 0.5)} p99=${pct(withSlow, 0.99)} max=${withSlow.at(-1)} (${withSlow.length} events); ` +
    `stalled reader got ${slowEvents} events before the close${close ? ' and the 1013 frame' : ''}; ${Date.now() - t0} ms`);
  await fast.close();
  assert.equal((await reactor.stop()).code, 0);
});

test('slow-loris, idle, connection count, header size and unanswered pings', { timeout: 60000 }, async () => {
  const reactor = await serve(url, ['--handshake-timeout-ms', '600', '--idle-timeout-ms', '800',
    '--max-connections', '4', '--max-header-bytes', '2048', '--ping-interval-ms', '300']);
  const port = reactor.port;

  // Slow-loris: one byte every 100 ms never completes a request in 600 ms.
  const loris = await Raw.open(port);
  const t0 = Date.now();
  const request = 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ' + 'a'.repeat(100) + '\r\n\r\n';
  for (const ch of request) {
    if (loris.isClosed) break;
    loris.sock.write(ch);
    await sleep(100);
  }
  await loris.ended;
  const lorisMs = Date.now() - t0;
  assert.ok(lorisMs < 3000, `closed after ${lorisMs} ms`);
  assert.ok(!loris.text().includes('HTTP/1.1 200'));
  // A connection that says nothing is cut at the same deadline.
  const mute = await Raw.open(port);
  await mute.ended;
  assert.equal(await metric(port, 'reactor_handshake_timeouts_total'), 2);

  // Idle keep-alive connection: one request, then silence.
  const idle = await Raw.open(port);
  await idle.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  await idle.until((b) => b.includes('alive'));
  await idle.ended;
  assert.equal(await metric(port, 'reactor_idle_timeouts_total'), 1);

  // Headers over --max-header-bytes: 431.
  const big = await http(port, 'GET', '/healthz', { headers: { 'X-Big': 'y'.repeat(2100) } });
  assert.equal(big.status, 431);
  assert.equal((await http(port, 'GET', '/healthz', { headers: { 'X-Ok': 'y'.repeat(1500) } })).status, 200);
  assert.equal(await metric(port, 'reactor_http_headers_too_large_total'), 1);

  // Connection count: 4 WebSockets fill it; the 5th is refused with 503.
  const clients = [];
  for (let i = 0; i < 4; i++) clients.push(await Client.open(port));
  const fifth = new Client(port);
  assert.equal((await fifth.unexpected).status, 503);
  const raw = await Raw.open(port);  // plain HTTP is refused the same way
  await raw.ended;
  assert.match(raw.text(), /^HTTP\/1\.1 503 /);
  await clients.pop().close();
  // The slot is free again (metrics are a connection too, so count from a WebSocket).
  const again = await eventually(async () => {
    const c = new Client(port);
    try { await c.opened; return c; } catch { return null; }
  }, { timeout: 5000, what: 'a free slot' });
  await again.next((m) => m.type === 'welcome');
  for (const c of clients) await c.close();
  await again.close();
  await sleep(100);
  assert.ok(await metric(port, 'reactor_connections_rejected_total') >= 2);
  assert.equal(await metric(port, 'reactor_connections'), 1, 'only the metrics request itself');

  // Pings every 300 ms: `ws` answers them and stays; a raw client that never does is
  // closed with 1002 after two.
  const alive = await Client.open(port);
  const silent = await Raw.open(port);
  await silent.upgrade();
  const pinged = await silent.frame((f) => f.opcode === 9, 2000);
  assert.ok(pinged, 'the server pings');
  const close = await silent.frame((f) => f.opcode === 8, 5000);
  assert.equal(close?.code, 1002);
  await silent.ended;
  assert.equal(alive.closed, null, 'the answering client is still open');
  alive.send({ op: 'ping' });
  await alive.next((m) => m.type === 'pong');
  assert.equal(await metric(port, 'reactor_ws_ping_timeouts_total'), 1);
  await alive.close();
  assert.equal((await reactor.stop()).code, 0);
});
