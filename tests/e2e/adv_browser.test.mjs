// Hostile browsers (docs/security.md, "Threat model"): a page on another site must not
// read the event stream through the visitor's browser.
// - Cross-site WebSocket hijacking: an upgrade whose Origin is another site is refused
//   with 403, whether or not a secret is set; the same origin, a listed origin
//   (--allowed-origins) and no Origin at all (a non-browser client) are accepted.
// - DNS rebinding: without a secret, a Host that is not loopback, the --listen host or a
//   --public-host is refused with 421 on every path but /healthz and /readyz.
// Each refusal is counted in reactor_http_refused_total{reason=...} and logged.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { freshDatabase, startReactor } from './lib.mjs';
import { serve, Client, Raw, http, metric, signJwt, nowS } from './wslib.mjs';

let url;
const open = [];
before(async () => { url = await freshDatabase('adv_browser'); });
after(async () => { for (const r of open) await r.stop(); });

async function reactor(args = [], opts = {}) {
  const r = await serve(url, args, opts);
  open.push(r);
  return r;
}
const refused = (port, labels) => metric(port, 'reactor_http_refused_total', labels);

// An upgrade with these headers: the HTTP status (101 when it opened).
async function upgradeStatus(port, headers = {}) {
  const c = new Client(port, { headers });
  const result = await c.opened.then(() => 101, () => c.unexpected);
  if (result === 101) {
    await c.next((m) => m.type === 'welcome');
    await c.close();
    return { status: 101 };
  }
  return result;
}

test('no secret: another site\'s Origin is refused with 403; same origin and no Origin are served', async () => {
  const r = await reactor();
  const self = `http://127.0.0.1:${r.port}`;
  const base = await refused(r.port, 'reason="origin"');
  assert.equal(base, 0);

  const evil = await upgradeStatus(r.port, { Origin: 'https://evil.example' });
  assert.equal(evil.status, 403);
  assert.match(evil.body, /--allowed-origins/);
  // Same host, another port: another origin (a different local app).
  assert.equal((await upgradeStatus(r.port, { Origin: `http://127.0.0.1:${r.port + 1}` })).status, 403);
  assert.equal((await upgradeStatus(r.port, { Origin: 'null' })).status, 403);
  assert.equal(await refused(r.port, 'reason="origin"'), 3);
  assert.match(r.stderr, /refused 403 \(Origin 'https:\/\/evil\.example'\)/);
  assert.match(r.stderr, /http 127\.0\.0\.1:\d+: refused 403/, 'the log names the peer');

  assert.equal((await upgradeStatus(r.port, { Origin: self })).status, 101, 'same origin');
  assert.equal((await upgradeStatus(r.port, {})).status, 101, 'no Origin');
  // The query shortcut opens nothing for a cross-site page either.
  const q = new Client(r.port, { path: '/ws?since=0', headers: { Origin: 'https://evil.example' } });
  assert.equal((await q.unexpected).status, 403);
});

test('no secret: a rebound Host is refused with 421 everywhere but /healthz and /readyz', async () => {
  const r = await reactor();
  const Host = 'attacker.example:8080';
  for (const path of ['/', '/metrics', '/index.html', '/nope']) {
    const res = await http(r.port, 'GET', path, { headers: { Host } });
    assert.equal(res.status, 421, path);
    assert.match(res.body, /--public-host/);
    assert.ok(!res.body.includes('attacker'), 'the Host is not echoed');
  }
  // The WebSocket too, even from the "same origin" the rebinding page believes it is
  // (a raw request: the ws client always sends the URL's Host).
  const ws = await Raw.open(r.port);
  await ws.write(`GET /ws HTTP/1.1\r\nHost: ${Host}\r\nOrigin: http://${Host}\r\nUpgrade: websocket\r\n` +
    'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
  await ws.ended;
  assert.match(ws.text(), /^HTTP\/1\.1 421 Misdirected Request/);
  // Load balancers may send any Host to the health checks.
  assert.equal((await http(r.port, 'GET', '/healthz', { headers: { Host } })).status, 200);
  assert.equal((await http(r.port, 'GET', '/readyz', { headers: { Host } })).status, 200);
  // Loopback names with any port, and [::1], are the reactor's own.
  for (const ok of ['localhost:1234', `127.0.0.1:${r.port}`, '127.1.2.3', '[::1]:80']) {
    assert.equal((await http(r.port, 'GET', '/metrics', { headers: { Host: ok } })).status, 200, ok);
  }
  assert.equal((await http(r.port, 'GET', '/', { headers: { Host: '127.0.0.1.nip.io' } })).status, 421);
  assert.equal(await refused(r.port, 'reason="host"'), 6);
  assert.match(r.stderr, /refused 421 \(Host 'attacker\.example:8080'\)/);
});

test('--public-host admits a name; --allowed-origins (by environment) admits listed origins', async () => {
  const r = await reactor(['--public-host', 'attacker.example:8080,events.example.com'],
    { env: { REACTOR_ALLOWED_ORIGINS: 'https://app.example.com, http://localhost:3000' } });
  assert.equal((await http(r.port, 'GET', '/metrics', { headers: { Host: 'attacker.example:8080' } })).status, 200);
  assert.equal((await http(r.port, 'GET', '/metrics', { headers: { Host: 'events.example.com:9' } })).status, 200);
  assert.equal((await http(r.port, 'GET', '/metrics', { headers: { Host: 'attacker.example:9090' } })).status, 421);
  const ws = await Raw.open(r.port);
  await ws.write('GET /ws HTTP/1.1\r\nHost: attacker.example:8080\r\nOrigin: http://attacker.example:8080\r\n' +
    'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
  await ws.until((b) => b.indexOf('\r\n\r\n') >= 0);
  assert.match(ws.text(), /^HTTP\/1\.1 101 /, 'the named host, same origin');
  ws.destroy();

  assert.equal((await upgradeStatus(r.port, { Origin: 'https://app.example.com' })).status, 101);
  assert.equal((await upgradeStatus(r.port, { Origin: 'http://localhost:3000' })).status, 101);
  assert.equal((await upgradeStatus(r.port, { Origin: 'https://other.example.com' })).status, 403);
  assert.equal((await upgradeStatus(r.port, { Origin: 'http://app.example.com' })).status, 403, 'scheme counts');

  const any = await reactor(['--allowed-origins', '*']);
  assert.equal((await upgradeStatus(any.port, { Origin: 'https://anyone.example' })).status, 101);
});

test('with a secret: the Host is not checked, the Origin still is', async () => {
  const SECRET = 'browser-secret-0123456789';
  const r = await reactor(['--jwt-secret', SECRET]);
  const token = signJwt({ sub: 'u1', exp: nowS() + 600 }, SECRET);
  assert.equal((await http(r.port, 'GET', '/metrics', { headers: { Host: 'events.example.com' } })).status, 200);
  const evil = await upgradeStatus(r.port, { Origin: 'https://evil.example', Authorization: `Bearer ${token}` });
  assert.equal(evil.status, 403, 'a token does not make a cross-site page welcome');
  assert.equal((await upgradeStatus(r.port, { Origin: `http://127.0.0.1:${r.port}`, Authorization: `Bearer ${token}` })).status, 101);
  assert.equal(await refused(r.port, 'reason="origin"'), 1);
  assert.equal(await refused(r.port, 'reason="host"'), 0);

  // Given --public-host, the Host is checked with a secret too.
  const named = await reactor(['--jwt-secret', SECRET, '--public-host', 'events.example.com']);
  assert.equal((await http(named.port, 'GET', '/metrics', { headers: { Host: 'events.example.com' } })).status, 200);
  assert.equal((await http(named.port, 'GET', '/metrics', { headers: { Host: 'other.example.com' } })).status, 421);
});

test('bad flag values are usage errors (exit 2)', async () => {
  const cases = [
    [['--allowed-origins', 'app.example.com'], /--allowed-origins: 'app\.example\.com' is not an origin/],
    [['--public-host', 'http://x.example'], /--public-host: 'http:\/\/x\.example' is not host or host:port/],
    [['--jwt-audience', 'reactor'], /--jwt-audience needs --jwt-secret/],
    [['--jwt-leeway-s', '7200'], /--jwt-leeway-s: Value 7200 not in range 0 to 3600/],
  ];
  for (const [args, message] of cases) {
    const r = startReactor(['serve', '--database-url', url, '--listen', '127.0.0.1:0', ...args]);
    r.ready.catch(() => {});
    assert.deepEqual(await r.exitPromise, { code: 2, signal: null }, args.join(' '));
    assert.match(r.stderr, message);
  }
});
