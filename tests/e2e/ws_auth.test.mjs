// Authorization (CONTRACT section 5): HS256 tokens by header, query or `auth` message;
// forged, expired and `none` tokens; expiry while connected (1008 unless a fresh token
// came); filters naming another user; and per-user isolation over 5 000 random events
// with three users and an admin. Hostile claims (docs/security.md): an `exp` that used
// to overflow the expiry timer, nbf/iat in the future, claims of the wrong type, the
// leeway, --jwt-audience and --jwt-issuer.
//
// The shared reactor runs with --jwt-leeway-s 0 so that expiry is exact; the leeway's
// default has its own reactor below.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { freshDatabase, connect, eventually } from './lib.mjs';
import { serve, Client, signJwt, nowS, metric, insertJobs, sleep, http } from './wslib.mjs';

const SECRET = 'e2e-secret-0123456789';
let url, reactor, db, port;
const tok = (sub, extra = {}) => signJwt({ sub, role: 'authenticated', exp: nowS() + 600, ...extra }, SECRET);

before(async () => {
  url = await freshDatabase('ws_auth');
  reactor = await serve(url, ['--jwt-secret', SECRET, '--jwt-leeway-s', '0']);
  port = reactor.port;
  db = await connect(url);
});
after(async () => { await db?.end(); await reactor?.stop(); });

test('a token by header, by query and by auth message', async () => {
  const h = await Client.open(port, { headers: { Authorization: `Bearer ${tok('u1')}` } });
  assert.equal((await h.subscribe('s')).type, 'subscribed');
  const q = await Client.open(port, { path: `/ws?access_token=${tok('u1')}` });
  assert.equal((await q.subscribe('s')).type, 'subscribed');

  const m = await Client.open(port);
  const refused = await m.subscribe('s');
  assert.equal(refused.type, 'error');
  assert.equal(refused.code, 'forbidden');
  m.send({ op: 'auth', token: tok('u1') });
  assert.equal((await m.subscribe('s2')).type, 'subscribed');

  await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, user_id) VALUES ('a1', 't', 'u1'), ('a2', 't', 'u2'), ('a3', 't', NULL)`);
  for (const c of [h, q, m]) {
    const ev = await c.next((x) => x.type === 'event');
    assert.equal(ev.event.job_id, 'a1');
  }
  await sleep(300);
  for (const c of [h, q, m]) assert.deepEqual(c.events().map((e) => e.job_id), ['a1']);
  await Promise.all([h.close(), q.close(), m.close()]);
});

test('forged, expired, unsigned and subject-less tokens are refused with 401', async () => {
  const before = await metric(port, 'reactor_auth_failures_total');
  const bad = {
    forged: signJwt({ sub: 'u1', exp: nowS() + 600 }, 'another-secret'),
    expired: signJwt({ sub: 'u1', exp: nowS() - 5 }, SECRET),
    none: `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'u1', role: 'admin' })).toString('base64url')}.`,
    nosub: signJwt({ role: 'authenticated', exp: nowS() + 600 }, SECRET),
    garbage: 'not.a.token',
  };
  for (const [what, t] of Object.entries(bad)) {
    const c = new Client(port, { headers: { Authorization: `Bearer ${t}` } });
    const res = await c.unexpected;
    assert.equal(res.status, 401, what);
    assert.ok(!res.body.includes(t), `${what}: the token is not echoed`);
  }
  const q = new Client(port, { path: `/ws?access_token=${bad.forged}` });
  assert.equal((await q.unexpected).status, 401);
  assert.equal(await metric(port, 'reactor_auth_failures_total'), before + 6);
});

test('a bad token in an auth message closes with 1008', async () => {
  const c = await Client.open(port);
  c.send({ op: 'auth', token: signJwt({ sub: 'u1', exp: nowS() + 600 }, 'forged') });
  assert.equal((await c.closedPromise).code, 1008);
  const d = await Client.open(port, { headers: { Authorization: `Bearer ${tok('u1')}` } });
  d.send({ op: 'auth', token: signJwt({ sub: 'u1', exp: nowS() - 1 }, SECRET) });
  assert.equal((await d.closedPromise).code, 1008);
});

test('expiry: 1008 when the token runs out, unless a fresh one arrived', async () => {
  const short = signJwt({ sub: 'u1', exp: nowS() + 2 }, SECRET);
  const a = await Client.open(port, { headers: { Authorization: `Bearer ${short}` } });
  const b = await Client.open(port, { headers: { Authorization: `Bearer ${short}` } });
  await a.subscribe('s');
  await b.subscribe('s');
  b.send({ op: 'auth', token: tok('u1') });  // renewed for 10 minutes
  const t0 = Date.now();
  const closed = await a.closedPromise;
  assert.equal(closed.code, 1008);
  assert.match(closed.reason, /expired/);
  assert.ok(Date.now() - t0 < 4000, 'closed at expiry, not at some later ping');
  await sleep(1500);
  assert.equal(b.closed, null, 'the renewed connection is still open');
  b.send({ op: 'ping' });
  await b.after((m) => m.type === 'pong');
  // A renewal cannot switch users.
  b.send({ op: 'auth', token: tok('u2') });
  assert.equal((await b.after((m) => m.type === 'error')).code, 'forbidden');
  await b.close();
});

test("a filter naming another user's jobs is forbidden", async () => {
  const c = await Client.open(port, { headers: { Authorization: `Bearer ${tok('u1')}` } });
  const e = await c.subscribe('x', { filter: { user_id: 'u2' } });
  assert.equal(e.type, 'error');
  assert.equal(e.code, 'forbidden');
  assert.equal((await c.subscribe('mine', { filter: { user_id: 'u1' } })).type, 'subscribed');
  const q = await Client.open(port, { path: `/ws?user_id=u2&access_token=${tok('u1')}` });
  assert.equal((await q.next((m) => m.type === 'error')).code, 'forbidden');
  const admin = await Client.open(port, { headers: { Authorization: `Bearer ${tok('root', { role: 'admin' })}` } });
  assert.equal((await admin.subscribe('x', { filter: { user_id: 'u2' } })).type, 'subscribed');
  await Promise.all([c.close(), q.close(), admin.close()]);
});

test('isolation: three users and an admin over 5 000 random events', { timeout: 120000 }, async () => {
  const users = ['iso_u1', 'iso_u2', 'iso_u3'];
  const clients = {};
  for (const u of users) clients[u] = await Client.open(port, { headers: { Authorization: `Bearer ${tok(u)}` } });
  clients.admin = await Client.open(port, { path: `/ws?access_token=${signJwt({ role: 'service_role', exp: nowS() + 600 }, SECRET)}` });
  for (const u of users) await clients[u].subscribe('all');
  await clients.admin.subscribe('all', { filter: { job_type: 'iso' } });
  const base = Number((await db.query('SELECT coalesce(max(id), 0) AS m FROM reactor.job_events')).rows[0].m);

  // 200 jobs (a quarter without a user), then random status and progress changes,
  // some moving a job to another user.
  await insertJobs(db, 200, { prefix: 'iso', users: [...users, null], type: 'iso' });
  let rnd = 12345;  // mulberry32: reproducible, and its low bits are random too
  const next = (n) => {
    rnd = (rnd + 0x6d2b79f5) | 0;
    let t = Math.imul(rnd ^ (rnd >>> 15), 1 | rnd);
    t ^= t + Math.imul(t ^ (t >>> 7), 61 | t);
    return ((t ^ (t >>> 14)) >>> 0) % n;
  };
  const count = async () => Number((await db.query('SELECT count(*) AS n FROM reactor.job_events WHERE id > $1', [base])).rows[0].n);
  let total = 200;
  while (total < 5000) {
    const n = Math.min(1 + next(40), 5000 - total);
    const ids = [...new Set(Array.from({ length: n }, () => `iso_${next(200)}`))];
    const kind = next(10);
    if (kind < 6) {
      await db.query(`UPDATE reactor.scheduled_jobs SET status = CASE status WHEN 'pending' THEN 'running'
                        WHEN 'running' THEN (ARRAY['completed','failed'])[1 + (random() * 1)::int] ELSE 'pending' END
                       WHERE id = ANY($1)`, [ids]);
    } else if (kind < 9) {
      await db.query(`UPDATE reactor.scheduled_jobs SET progress_percent = (random() * 100)::int WHERE id = ANY($1)`, [ids]);
    } else {
      await db.query(`UPDATE reactor.scheduled_jobs SET user_id = $2, status = CASE status WHEN 'pending' THEN 'running' ELSE 'pending' END
                       WHERE id = ANY($1)`, [ids, next(4) === 3 ? null : users[next(3)]]);
    }
    total = await count();
  }
  const { rows } = await db.query('SELECT id::int, user_id FROM reactor.job_events WHERE id > $1 ORDER BY id', [base]);
  assert.ok(rows.length >= 5000, `${rows.length} events`);
  const last = rows[rows.length - 1].id;
  await clients.admin.next((m) => m.type === 'event' && m.event.id === last, 60000, 'the last event at the admin');
  const want = Object.fromEntries(users.map((u) => [u, rows.filter((r) => r.user_id === u).map((r) => r.id)]));
  for (const u of users) {
    const lastMine = want[u][want[u].length - 1];
    await clients[u].next((m) => m.type === 'event' && m.event.id === lastMine, 30000, `the last event of ${u}`);
  }
  await sleep(500);
  const sorted = (a) => [...a].sort((x, y) => x - y);
  assert.deepEqual(sorted(clients.admin.eventIds()), rows.map((r) => r.id), 'the admin gets every event once');
  for (const u of users) {
    const got = clients[u].eventIds();
    assert.equal(new Set(got).size, got.length, `${u}: no repeats`);
    assert.deepEqual(sorted(got), want[u], `${u} gets exactly their own events`);
    assert.ok(clients[u].events().every((e) => e.user_id === u));
  }
  const counts = users.map((u) => `${u}=${want[u].length}`).join(' ');
  console.log(`# isolation: ${rows.length} events, ${counts}, unowned=${rows.filter((r) => r.user_id === null).length}`);
  await Promise.all(Object.values(clients).map((c) => c.close()));
});

test('a connection that never authenticates is closed with 1008 after the handshake time', async () => {
  const r = await serve(url, ['--jwt-secret', SECRET, '--handshake-timeout-ms', '700']);
  try {
    const silent = await Client.open(r.port);
    const prompt = await Client.open(r.port);
    prompt.send({ op: 'auth', token: tok('u1') });
    const closed = await silent.closedPromise;
    assert.equal(closed.code, 1008);
    assert.match(closed.reason, /authentication/);
    await sleep(800);
    assert.equal(prompt.closed, null, 'the connection that authenticated in time stays');
    assert.equal((await prompt.subscribe('s')).type, 'subscribed');
    assert.equal(await metric(r.port, 'reactor_ws_auth_timeouts_total'), 1);
    await prompt.close();
  } finally {
    await r.stop();
  }
});

// Signed with SECRET, the claims exactly as written (JSON.stringify would round a large
// number to a double first).
const rawTok = (claimsJson) => signJwt(claimsJson, SECRET);
// The HTTP answer to an upgrade with this token: {status, body}; 101 when it opened.
async function refusal(p, token) {
  const c = new Client(p, { headers: { Authorization: `Bearer ${token}` } });
  return c.opened.then(() => { c.terminate(); return { status: 101, body: '' }; }, () => c.unexpected);
}
const within = (promise, ms, what) => Promise.race([
  promise,
  new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)),
]);

test('regression: exp = 18446744073709552 is refused (401) and the loop stays responsive', async () => {
  // exp * 1000 overflowed int64 in the expiry timer: a 0 ms timer re-armed forever, and
  // /healthz, new connections and SIGTERM went unanswered.
  const r = await serve(url, ['--jwt-secret', SECRET]);
  try {
    const huge = rawTok('{"sub":"u1","exp":18446744073709552}');
    const res = await within(refusal(r.port, huge), 2000, 'upgrade');
    assert.equal(res.status, 401);
    assert.match(res.body, /exp is beyond the year 9999/);
    assert.ok(!res.body.includes(huge));
    // The same token in an `auth` message, and by query string.
    const m = await Client.open(r.port);
    m.send({ op: 'auth', token: huge });
    const closed = await within(m.closedPromise, 2000, 'auth message');
    assert.equal(closed.code, 1008);
    assert.match(closed.reason, /exp is beyond the year 9999/);
    const q = new Client(r.port, { path: `/ws?access_token=${huge}` });
    assert.equal((await within(q.unexpected, 2000, 'query token')).status, 401);
    // The loop still answers at once, and stops on SIGTERM.
    const t0 = Date.now();
    assert.equal((await within(http(r.port, 'GET', '/healthz'), 1000, '/healthz')).status, 200);
    console.log(`# /healthz answered in ${Date.now() - t0} ms after the hostile tokens`);
    const ok = await Client.open(r.port, { headers: { Authorization: `Bearer ${tok('u1')}` } });
    assert.equal((await ok.subscribe('s')).type, 'subscribed');
    const t1 = Date.now();
    const exited = await within(r.stop('SIGTERM'), 5000, 'SIGTERM');
    assert.deepEqual(exited, { code: 0, signal: null });
    console.log(`# stopped ${Date.now() - t1} ms after SIGTERM`);
  } finally {
    await r.stop('SIGKILL');
  }
});

test('nbf and iat in the future, and time claims of the wrong type, are refused with 401 and a reason', async () => {
  const now = nowS();
  const cases = {
    'token not yet valid': rawTok(`{"sub":"u1","nbf":${now + 3600},"exp":${now + 7200}}`),
    'token issued in the future': rawTok(`{"sub":"u1","iat":${now + 3600}}`),
    'exp is not a number': rawTok(`{"sub":"u1","exp":"${now + 600}"}`),
    'exp is not an integer': rawTok(`{"sub":"u1","exp":${now + 600}.5}`),
    'exp is negative': rawTok('{"sub":"u1","exp":-1}'),
    'nbf is beyond the year 9999': rawTok('{"sub":"u1","nbf":253402300800}'),
    'sub is not a string': rawTok(`{"sub":7,"exp":${now + 600}}`),
  };
  const before = await metric(port, 'reactor_auth_failures_total');
  for (const [reason, t] of Object.entries(cases)) {
    const res = await refusal(port, t);
    assert.equal(res.status, 401, reason);
    assert.ok(res.body.includes(reason), `${reason}: got ${res.body}`);
  }
  assert.equal(await metric(port, 'reactor_auth_failures_total'), before + Object.keys(cases).length);
  // Just inside the limits they pass.
  const fine = rawTok(`{"sub":"u1","nbf":${now - 1},"iat":${now - 1},"exp":${now + 600}}`);
  const c = await Client.open(port, { headers: { Authorization: `Bearer ${fine}` } });
  await c.close();
});

test('the leeway (default 30 s), --jwt-audience and --jwt-issuer (by environment)', async () => {
  const r = await serve(url, ['--jwt-secret', SECRET],
    { env: { REACTOR_JWT_AUDIENCE: 'reactor', REACTOR_JWT_ISSUER: 'https://auth.example' } });
  try {
    const now = nowS();
    const claims = (extra) => ({ sub: 'u1', aud: 'reactor', iss: 'https://auth.example', exp: now + 600, ...extra });
    // Accepted: a token that expired 5 s ago (clock skew), nbf 10 s ahead, aud in an array.
    for (const extra of [{ exp: now - 5 }, { nbf: now + 10 }, { aud: ['web', 'reactor'] }, {}]) {
      const c = await Client.open(r.port, { headers: { Authorization: `Bearer ${signJwt(claims(extra), SECRET)}` } });
      await c.close();
    }
    const refused = {
      'token expired': { exp: now - 60 },
      'token not yet valid': { nbf: now + 60 },
      'token audience does not match': { aud: 'other' },
      'token has no aud': { aud: undefined },
      'token issuer does not match': { iss: 'https://evil.example' },
      'token has no iss': { iss: undefined },
    };
    for (const [reason, extra] of Object.entries(refused)) {
      const res = await refusal(r.port, signJwt(claims(extra), SECRET));
      assert.equal(res.status, 401, reason);
      assert.ok(res.body.includes(reason), `${reason}: got ${res.body}`);
    }
    // Accepted inside the leeway, the connection lives until exp + leeway, then 1008.
    const late = signJwt(claims({ exp: nowS() - 28 }), SECRET);  // signed now: 2 to 3 s to live
    const c = await Client.open(r.port, { headers: { Authorization: `Bearer ${late}` } });
    const closed = await c.closedPromise;
    assert.equal(closed.code, 1008);
    assert.match(closed.reason, /expired/);
  } finally {
    await r.stop();
  }
});
