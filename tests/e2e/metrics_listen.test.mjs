// --metrics-listen: /metrics on an operator's address of its own, gone from --listen.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freshDatabase } from './lib.mjs';
import { serve, http, Client } from './wslib.mjs';

test('--metrics-listen serves /metrics, /healthz and /readyz there, and /metrics no longer on --listen', { timeout: 30000 }, async () => {
  const url = await freshDatabase('metrics_listen');
  const reactor = await serve(url, ['--metrics-listen', '127.0.0.1:0']);
  try {
    await reactor.waitFor(/metrics listening on 127\.0\.0\.1:\d+/, 10000, true);
    const mport = Number(reactor.stderr.match(/metrics listening on 127\.0\.0\.1:(\d+)/)[1]);
    assert.notEqual(mport, reactor.port);
    const m = await http(mport, 'GET', '/metrics');
    assert.equal(m.status, 200);
    assert.match(m.body, /^reactor_postgres_connected 1$/m);
    assert.equal((await http(mport, 'GET', '/healthz')).status, 200);
    assert.equal((await http(mport, 'GET', '/readyz')).status, 200);
    assert.equal((await http(mport, 'GET', '/')).status, 404, 'no dashboard there');
    const up = await http(mport, 'GET', '/ws', {
      headers: { Upgrade: 'websocket', Connection: 'Upgrade, close', 'Sec-WebSocket-Version': '13',
                 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' } });
    assert.equal(up.status, 404, 'no WebSocket there');
    assert.equal((await http(reactor.port, 'GET', '/metrics')).status, 404, '/metrics is not on --listen');
    assert.equal((await http(reactor.port, 'GET', '/healthz')).status, 200);
    const c = await Client.open(reactor.port);  // subscribers as before
    c.terminate();
  } finally {
    const exit = await reactor.stop();
    assert.equal(exit.code, 0);
  }
});
