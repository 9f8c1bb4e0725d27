// The WebSocket protocol of CONTRACT section 5 with real clients: every message type,
// filters, unsubscribe, the query shortcut, at-most-once per connection, protocol
// errors on raw sockets (unmasked, oversize, invalid UTF-8, binary), the close
// handshake, the HTTP endpoints, and shutdown with 1001.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { freshDatabase, connect, eventually, BIN } from './lib.mjs';
import { serve, Client, Raw, frame, http, parseResponse, metric, insertJobs, bump, maxEventId, sleep } from './wslib.mjs';
import { execFile } from 'node:child_process';

let url, reactor, db, port;

before(async () => {
  url = await freshDatabase('ws_protocol');
  reactor = await serve(url);
  port = reactor.port;
  db = await connect(url);
});
after(async () => { await db?.end(); });

test('welcome, subscribe with a filter, events, ping/pong, unsubscribe', async () => {
  const before = await maxEventId(db);
  const c = await Client.open(port);
  const welcome = c.messages[0];
  assert.equal(welcome.type, 'welcome');
  assert.match(welcome.server, /^reactor\//);
  assert.equal(welcome.last_event_id, before);

  const sub = await c.subscribe('s1', { filter: { job_type: ['alpha'], status: ['running', 'failed'] } });
  assert.deepEqual({ ...sub, receivedAt: 0 }, { type: 'subscribed', id: 's1', last_event_id: before, receivedAt: 0 });

  await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, user_id) VALUES
                  ('p1', 'alpha', 'u1'), ('p2', 'beta', 'u1')`);
  await db.query(`UPDATE reactor.scheduled_jobs SET status = 'running' WHERE id IN ('p1', 'p2')`);
  await db.query(`UPDATE reactor.scheduled_jobs SET status = 'failed' WHERE id IN ('p1', 'p2')`);
  await db.query(`UPDATE reactor.scheduled_jobs SET status = 'completed' WHERE id IN ('p1', 'p2')`);
  const ev = await c.next((m) => m.type === 'event' && m.event.status === 'failed');
  assert.equal(ev.event.job_id, 'p1');
  assert.equal(ev.event.old_status, 'running');
  assert.equal(ev.event.user_id, 'u1');
  assert.equal(ev.event.kind, 'status');

  c.send({ op: 'ping' });
  await c.next((m) => m.type === 'pong');

  // Only p1's running and failed: not the insert (pending), not beta, not completed.
  const { rows } = await db.query(`SELECT id::int FROM reactor.job_events WHERE job_id = 'p1' AND status IN ('running', 'failed') ORDER BY id`);
  await sleep(300);
  assert.deepEqual(c.eventIds(), rows.map((r) => r.id));

  c.send({ op: 'unsubscribe', id: 's1' });
  await c.next((m) => m.type === 'unsubscribed' && m.id === 's1');
  c.send({ op: 'unsubscribe', id: 's1' });
  const unknown = await c.next((m) => m.type === 'error');
  assert.equal(unknown.code, 'unknown_subscription');
  const n = c.events().length;
  await db.query(`UPDATE reactor.scheduled_jobs SET status = 'running' WHERE id = 'p1'`);
  c.send({ op: 'ping' });
  await c.after((m) => m.type === 'pong');
  await sleep(300);
  assert.equal(c.events().length, n, 'no event after unsubscribe');
  assert.deepEqual(await c.close(), { code: 1000, reason: '' });
});

test('bad requests are answered and the connection lives on', async () => {
  const c = await Client.open(port);
  const cases = [
    'not json', '[1,2]', '{"id":"x"}', '{"op":"dance"}', '{"op":"subscribe","filter":{"colour":"red"}}',
    '{"op":"subscribe","since":-1}', '{"op":"subscribe","since":"abc"}', '{"op":"subscribe","snapshot":"yes"}',
    '{"op":"subscribe","filter":{"job_type":[1]}}', '{"op":"unsubscribe"}', '{"op":"ping"} trailing',
  ];
  for (const text of cases) {
    c.send(text);
    const e = await c.after((m) => m.type === 'error', 5000, `an error for ${text}`);
    assert.equal(e.code, 'bad_request', text);
    assert.ok(e.message.length > 0);
  }
  // A binary message is answered, not fatal.
  c.ws.send(Buffer.from('{"op":"ping"}'), { binary: true });
  const e = await c.after((m) => m.type === 'error');
  assert.equal(e.code, 'bad_request');
  c.send({ op: 'ping' });
  await c.after((m) => m.type === 'pong');
  assert.ok(await metric(port, 'reactor_bad_requests_total') >= cases.length);
  await c.close();
});

test('an event matching several subscriptions is sent once per connection', async () => {
  const c = await Client.open(port);
  await c.subscribe('a', { filter: { user_id: 'u1' } });
  await c.subscribe('b', { filter: { job_type: 'e2e' } });
  await c.subscribe('c', { filter: { status: ['pending', 'running', 'completed'] } });
  await insertJobs(db, 20, { prefix: 'multi', users: ['u1', 'u2'] });
  const ids = Array.from({ length: 20 }, (_, i) => `multi_${i}`);
  await bump(db, ids);
  await bump(db, ids);
  const want = (await db.query(`SELECT id::int FROM reactor.job_events WHERE job_id LIKE 'multi_%' ORDER BY id`)).rows.map((r) => r.id);
  await eventually(() => want.every((id) => c.eventIds().includes(id)), { timeout: 10000, what: 'all events' });
  await sleep(200);
  const got = c.eventIds();
  assert.equal(new Set(got).size, got.length, 'no event twice');
  assert.deepEqual([...got].sort((x, y) => x - y), want);
  await c.close();
});

test('query shortcut opens the default subscription', async () => {
  await insertJobs(db, 3, { prefix: 'qs', users: ['u7'] });
  const c = await Client.open(port, { path: '/ws?job_id=qs_1&status=completed,failed' });
  const s = await c.next((m) => m.type === 'subscribed');
  assert.equal(s.id, 'default');
  await db.query(`UPDATE reactor.scheduled_jobs SET status = 'running' WHERE id LIKE 'qs_%'`);
  await db.query(`UPDATE reactor.scheduled_jobs SET status = 'completed' WHERE id LIKE 'qs_%'`);
  const ev = await c.next((m) => m.type === 'event');
  assert.equal(ev.event.job_id, 'qs_1');
  assert.equal(ev.event.status, 'completed');
  await sleep(300);
  assert.equal(c.events().length, 1);
  c.send({ op: 'unsubscribe', id: 'default' });
  await c.next((m) => m.type === 'unsubscribed');
  await c.close();

  const bad = await Client.open(port, { path: '/ws?since=soon' });
  const e = await bad.next((m) => m.type === 'error');
  assert.equal(e.code, 'bad_request');
  await bad.close();
});

test('snapshot message carries the rows and as_of', async () => {
  const c = await Client.open(port);
  await c.subscribe('all', {});
  await insertJobs(db, 4, { prefix: 'snap', users: ['u3'], type: 'snaptype' });
  const last = await maxEventId(db);
  await c.next((m) => m.type === 'event' && m.event.id === last);
  c.send({ op: 'subscribe', id: 'snap', filter: { job_type: 'snaptype' }, snapshot: true });
  const s = await c.next((m) => m.type === 'snapshot');
  assert.equal(s.id, 'snap');
  assert.equal(s.as_of, last);
  assert.deepEqual(s.jobs.map((j) => j.id).sort(), ['snap_0', 'snap_1', 'snap_2', 'snap_3']);
  assert.equal(s.jobs[0].job_type, 'snaptype');
  assert.equal(s.jobs[0].user_id, 'u3');
  await c.close();
});

test('protocol violations on raw sockets close with the right code', async () => {
  const expectClose = async (bytes, code, what) => {
    const r = await Raw.open(port);
    const head = await r.upgrade();
    assert.match(head, /^HTTP\/1\.1 101 /, what);
    await r.write(bytes);
    const f = await r.frame((x) => x.opcode === 8);
    assert.ok(f, `${what}: a close frame`);
    assert.equal(f.code, code, what);
    await r.ended;  // the server closes TCP after its close frame
    return f;
  };
  // Client frames must be masked.
  await expectClose(frame(1, '{"op":"ping"}', { mask: null }), 1002, 'unmasked');
  // Over 64 KiB: refused on the header, before any payload.
  await expectClose(frame(1, Buffer.alloc(0), { length: 65537 }), 1009, 'oversize');
  // Exactly 64 KiB is allowed (and then not JSON).
  {
    const r = await Raw.open(port);
    await r.upgrade();
    await r.write(frame(1, Buffer.alloc(65536, 0x20)));
    const f = await r.frame((x) => x.opcode === 1 && /bad_request/.test(x.text));
    assert.ok(f, '64 KiB text is read');
    r.destroy();
  }
  // Invalid UTF-8 in a text frame.
  await expectClose(frame(1, Buffer.from([0x7b, 0xc3, 0x28, 0x7d])), 1007, 'invalid utf-8');
  // Reserved opcode, fragmented control frame.
  await expectClose(frame(3, 'x'), 1002, 'reserved opcode');
  await expectClose(frame(9, 'x', { fin: false }), 1002, 'fragmented ping');
  assert.ok(await metric(port, 'reactor_ws_protocol_errors_total') >= 5);
});

test('ping frames are answered, the close handshake completes', async () => {
  const r = await Raw.open(port);
  await r.upgrade();
  await r.write(frame(9, 'hello'));
  const pong = await r.frame((x) => x.opcode === 10);
  assert.equal(pong.payload.toString(), 'hello');
  const code = Buffer.alloc(2);
  code.writeUInt16BE(4000);
  await r.write(frame(8, Buffer.concat([code, Buffer.from('bye')])));
  const f = await r.frame((x) => x.opcode === 8);
  assert.equal(f.code, 4000, 'the peer code is echoed');
  await r.ended;
  assert.ok(r.isClosed);

  // A close without a code is answered with 1000; `ws` sees a clean close.
  const c = await Client.open(port);
  assert.deepEqual(await c.close(1000), { code: 1000, reason: '' });
});

test('HTTP: endpoints, 404, 405, 400, 426, keep-alive, header limit', async () => {
  assert.equal((await http(port, 'GET', '/healthz')).status, 200);
  assert.equal((await http(port, 'GET', '/readyz')).status, 200);
  const m = await http(port, 'GET', '/metrics');
  assert.equal(m.status, 200);
  assert.match(m.headers['content-type'], /text\/plain/);
  assert.match(m.body, /^reactor_subscribers /m);
  assert.match(m.body, /^reactor_delivery_latency_seconds_bucket/m);
  assert.ok(m.body.split('\n').filter((l) => l && !l.startsWith('#')).every((l) => l.startsWith('reactor_')));
  assert.equal((await http(port, 'GET', '/nope')).status, 404);
  const post = await http(port, 'POST', '/healthz', { headers: { 'Content-Length': 0 } });
  assert.equal(post.status, 405);
  assert.match(post.headers.allow, /GET/);
  assert.equal((await http(port, 'HEAD', '/healthz')).body, '');
  assert.equal((await http(port, 'POST', '/ws', { headers: { 'Content-Length': 0 } })).status, 405);
  assert.equal((await http(port, 'GET', '/ws')).status, 426);
  assert.equal((await http(port, 'GET', '/ws', { headers: { Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Version': 13, 'Sec-WebSocket-Key': 'short' } })).status, 400);
  assert.equal((await http(port, 'GET', '/', { raw: 'GARBAGE\r\n\r\n' })).status, 400);
  assert.equal((await http(port, 'GET', '/', { raw: 'GET /healthz HTTP/1.1\r\n\r\n' })).status, 400, 'no Host');
  const big = await http(port, 'GET', '/healthz', { headers: { 'X-Big': 'x'.repeat(9000) } });
  assert.equal(big.status, 431);

  // Keep-alive: three requests, pipelined, on one connection.
  const r = await Raw.open(port);
  await r.write('GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /readyz HTTP/1.1\r\nHost: a\r\n\r\n');
  await r.until((b) => (b.toString().match(/HTTP\/1\.1 200/g) ?? []).length === 2);
  await r.write('GET /nope HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  await r.ended;
  const t = r.text();
  assert.equal((t.match(/HTTP\/1\.1 /g) ?? []).length, 3);
  assert.match(t, /Connection: keep-alive/i);
  const third = parseResponse(t.slice(t.lastIndexOf('HTTP/1.1 ')));
  assert.equal(third.status, 404);
});

test('--allow-anonymous: a non-loopback listen without a secret is a usage error', async () => {
  const code = await new Promise((resolve) => {
    execFile(BIN, ['serve', '--database-url', url, '--listen', '0.0.0.0:0'], (err) => resolve(err ? err.code : 0));
  });
  assert.equal(code, 2);
});

test('shutdown: every client gets 1001, then the process exits 0', async () => {
  const a = await Client.open(port);
  const b = await Client.open(port);
  await a.subscribe('x', {});
  const exit = reactor.stop('SIGTERM');
  const [ca, cb] = await Promise.all([a.closedPromise, b.closedPromise]);
  assert.equal(ca.code, 1001);
  assert.equal(cb.code, 1001);
  assert.equal((await exit).code, 0);
});
