// The operator's console in a real browser (Debian's headless Chromium through
// playwright-core) against a live reactor and PostgreSQL: actions from a job's panel and
// their round trip through the event (cause user, the actor), a user's token refused on
// another user's job, the timeline of a job with retries (live and from the history op,
// paged), the tiles equal to the database's totals by status and job type while jobs
// are written, and the header's delay and queue.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { mkdirSync } from 'node:fs';
import { ROOT, freshDatabase, connect, startReactor, sleep } from './lib.mjs';
import { signJwt } from './wslib.mjs';
import { browser, portOf, STATUSES } from './browserlib.mjs';

const WITHIN = 1000;
const SECRET = 'dashboard-console-secret';

async function serve(url, extra = []) {
  const r = startReactor(['serve', '--database-url', url, '--listen', '127.0.0.1:0', '--no-scheduler', ...extra]);
  await r.ready;
  await r.waitFor(/listening on/, 5000, true);
  return r;
}

const jwt = (claims) => signJwt({ exp: Math.floor(Date.now() / 1000) + 600, ...claims }, SECRET);

// Opens the page and gives it a token (kept in sessionStorage before the first connection).
async function open(page, base, token, hash = '') {
  await page.goto(`${base}/style.css`);  // the origin, for its sessionStorage
  await page.evaluate((t) => sessionStorage.setItem('reactor.token', t), token);
  await page.goto(`${base}/${hash}`);
  await page.waitForFunction(() => document.getElementById('conn').dataset.state === 'live', null, { timeout: 5000 });
}

async function insertJob(db, id, type, user = 'u1', extra = '') {
  await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, user_id, frequency_type, frequency_config${extra ? ', retry_on_failure, retry_max_attempts, retry_backoff_seconds' : ''})
                  VALUES ($1, $2, $3, 'once', '{}'${extra ? `, ${extra}` : ''})`, [id, type, user]);
}

const startJob = async (db, id) => (await db.query("SELECT reactor.start_job($1, 'manual') AS e", [id])).rows[0].e;

async function rowIs(page, id, want, timeout = WITHIN) {
  try {
    await page.waitForFunction(([id, want]) => {
      const tr = document.querySelector(`#rows tr[data-job="${CSS.escape(id)}"]`);
      return tr && (want.status === undefined || tr.dataset.status === want.status)
        && (want.cause === undefined || tr.querySelector('.c-cause').textContent === want.cause);
    }, [id, want], { timeout });
  } catch {
    const got = await page.evaluate((id) => {
      const tr = document.querySelector(`#rows tr[data-job="${CSS.escape(id)}"]`);
      return tr && { status: tr.dataset.status, cause: tr.querySelector('.c-cause').textContent };
    }, id);
    assert.fail(`row ${id}: wanted ${JSON.stringify(want)} within ${timeout} ms, the page shows ${JSON.stringify(got)}`);
  }
}

function panelLines(page) {
  return page.$$eval('#p-events li', (lis) => lis.map((li) => ({
    id: Number(li.dataset.id),
    change: li.querySelector('.e-change').textContent,
    cause: li.querySelector('.cause')?.textContent ?? '',
    facts: Array.from(li.querySelectorAll('.e-facts span')).map((x) => x.textContent).join(' | '),
  })));
}

async function panelIds(page, ids, what, timeout = WITHIN) {
  try {
    await page.waitForFunction((ids) => Array.from(document.querySelectorAll('#p-events li'))
      .map((li) => li.dataset.id).join() === ids.join(), ids.map(String), { timeout });
  } catch {
    assert.fail(`${what}: the panel shows ${JSON.stringify(await panelLines(page))}, wanted ids ${ids}`);
  }
}

async function result(page, kind, re, what) {
  try {
    await page.waitForFunction((kind) => document.getElementById('p-result').dataset.kind === kind, kind, { timeout: 5000 });
  } catch {
    assert.fail(`${what}: the panel says ${await page.getAttribute('#p-result', 'data-kind')}: ${await page.textContent('#p-result')}`);
  }
  assert.match(await page.textContent('#p-result'), re, what);
}

const eventIds = async (db, job) => (await db.query(
  "SELECT id::int FROM reactor.job_events WHERE payload->>'job_id' = $1 ORDER BY id DESC", [job])).rows.map((r) => r.id);

test('dashboard: actions round trip with cause and actor; a user is refused another user\'s job; a job\'s retries', { timeout: 90000 }, async () => {
  const url = await freshDatabase('dashboard_console');
  const db = await connect(url);
  await insertJob(db, 'p1', 'alpha', 'u1');
  await insertJob(db, 'theirs', 'alpha', 'u2');
  await insertJob(db, 'mine', 'alpha', 'u1');
  const reactor = await serve(url, ['--jwt-secret', SECRET, '--allow-user-actions']);
  const base = `http://127.0.0.1:${portOf(reactor)}`;

  // ---- an operator (role admin, sub ops-alice) cancels a pending job from its panel ----
  const page = await browser();
  await open(page, base, jwt({ sub: 'ops-alice', role: 'admin' }));
  await rowIs(page, 'p1', { status: 'pending' }, 3000);
  await page.click('#rows tr[data-job="p1"] .c-id');
  await page.waitForFunction(() => location.hash.includes('job=p1'));
  const [created] = await eventIds(db, 'p1');
  await panelIds(page, [created], 'p1 from the history op', 3000);
  assert.deepEqual((await panelLines(page))[0], { id: created, change: 'new → pending', cause: 'sql', facts: '' });
  // An action that changes no status: an event of kind action, in the panel and the row.
  await page.selectOption('#p-priority', 'high');
  await page.click('#p-actions button[data-action="set_priority"]');
  await result(page, 'ack', /^set_priority high: done \(event \d+\)$/, 'set_priority');
  const prioEvent = Number(/event (\d+)/.exec(await page.textContent('#p-result'))[1]);
  await panelIds(page, [prioEvent, created], 'p1 after set_priority');
  assert.deepEqual((await panelLines(page))[0], { id: prioEvent, change: 'set_priority high', cause: 'user · ops-alice', facts: '' });
  await rowIs(page, 'p1', { status: 'pending', cause: 'user · ops-alice' });
  assert.equal((await db.query("SELECT priority FROM reactor.scheduled_jobs WHERE id = 'p1'")).rows[0].priority, 'high');
  await page.click('#p-actions button[data-action="cancel"]');
  await result(page, 'ack', /^cancel: done \(event \d+\)$/, 'cancel');
  const cancelEvent = Number(/event (\d+)/.exec(await page.textContent('#p-result'))[1]);
  await rowIs(page, 'p1', { status: 'cancelled', cause: 'user · ops-alice' });
  assert.equal(await page.getAttribute('#rows tr[data-job="p1"] .c-cause', 'title'), 'cancel by ops-alice');
  await panelIds(page, [cancelEvent, prioEvent, created], 'p1 after the cancel');
  assert.deepEqual((await panelLines(page))[0], { id: cancelEvent, change: 'pending → cancelled', cause: 'user · ops-alice', facts: '' });
  assert.equal((await db.query("SELECT status FROM reactor.scheduled_jobs WHERE id = 'p1'")).rows[0].status, 'cancelled');
  // Not applicable any more: the server's conflict is shown.
  await page.click('#p-actions button[data-action="cancel"]');
  await result(page, 'error', /^cancel: conflict: /, 'cancel of a cancelled job');
  await page.click('#p-close');
  await page.waitForFunction(() => !location.hash.includes('job='));
  // After a reload the row comes from the snapshot: its cause from the row's last_event.
  await open(page, base, jwt({ sub: 'ops-alice', role: 'admin' }));
  await rowIs(page, 'p1', { status: 'cancelled', cause: 'user · ops-alice' }, 3000);
  assert.equal(await page.getAttribute('#rows tr[data-job="p1"] .c-cause', 'title'), 'cancel by ops-alice');

  // ---- the timeline of a job with retries: live in the open panel, then from history ----
  await insertJob(db, 'flaky', 'beta', 'u1', 'true, 2, 0');
  await rowIs(page, 'flaky', { status: 'pending', cause: 'sql' });
  await page.click('#rows tr[data-job="flaky"] .c-id');
  await panelIds(page, await eventIds(db, 'flaky'), 'flaky, new', 3000);
  for (const err of ['err one', 'err two', 'err three']) {
    const e = await startJob(db, 'flaky');
    await sleep(120);  // each run lasts a little
    await db.query('SELECT reactor.fail_job($1, $2, $3)', ['flaky', e, err]);
  }
  await rowIs(page, 'flaky', { status: 'failed', cause: 'worker' });
  const ids = await eventIds(db, 'flaky');
  assert.equal(ids.length, 7);
  await panelIds(page, ids, 'flaky, live');
  const live = await panelLines(page);
  const want = [
    ['running → failed', 'worker', /^attempt 3 \| ran \d+ ms \| err three$/],
    ['pending → running', 'worker', /^attempt 3 \| err two$/],
    ['running → pending', 'retry', /^attempt 2 \| ran \d+ ms \| err two$/],
    ['pending → running', 'worker', /^attempt 2 \| err one$/],
    ['running → pending', 'retry', /^attempt 1 \| ran \d+ ms \| err one$/],
    ['pending → running', 'worker', /^attempt 1$/],
    ['new → pending', 'sql', /^$/],
  ];
  for (const [i, [change, cause, facts]] of want.entries()) {
    assert.equal(live[i].change, change, `event ${i}`);
    assert.equal(live[i].cause, cause, `event ${i}`);
    assert.match(live[i].facts, facts, `event ${i}`);
  }
  for (const i of [0, 2, 4]) assert.ok(Number(/ran (\d+) ms/.exec(live[i].facts)[1]) >= 100, live[i].facts);
  // The same from the database (the history op), on a reload that opens it from the link.
  await page.reload();
  await page.waitForFunction(() => document.getElementById('panel').dataset.job === 'flaky', null, { timeout: 5000 });
  await panelIds(page, ids, 'flaky from history', 3000);
  assert.deepEqual(await panelLines(page), live);

  // ---- paging: 150 more events, 100 at a time ----
  await insertJob(db, 'long', 'gamma', 'u1');
  await startJob(db, 'long');
  await db.query("SELECT reactor.update_job_progress('long', g % 100, 'step ' || g) FROM generate_series(1, 150) g");
  const long = await eventIds(db, 'long');
  assert.equal(long.length, 152);
  // Once the page has had them live (else the live ones would fill the panel as well).
  await page.waitForFunction((id) => document.getElementById('last-id').textContent === String(id), long[0], { timeout: 3000 });
  await page.goto(`${base}/#job=long`);
  await panelIds(page, long.slice(0, 100), 'long, first page', 5000);
  assert.equal(await page.isVisible('#p-older'), true);
  await page.click('#p-older');
  await panelIds(page, long, 'long, both pages', 3000);
  assert.equal(await page.isHidden('#p-older'), true);

  // ---- a user's token: their own job works, another user's job is refused ----
  const user = await browser();
  await open(user, base, jwt({ sub: 'u1' }), '#job=theirs');
  await user.waitForFunction(() => document.getElementById('panel').dataset.job === 'theirs', null, { timeout: 5000 });
  await user.click('#p-actions button[data-action="cancel"]');
  await result(user, 'error', /^cancel: forbidden: /, "a user's cancel of another user's job");
  assert.equal((await db.query("SELECT status FROM reactor.scheduled_jobs WHERE id = 'theirs'")).rows[0].status, 'pending');
  assert.equal((await user.$$('#p-events li')).length, 0, "another user's events in the panel");
  assert.equal(await user.isVisible('#rows tr[data-job="theirs"]'), false);
  // The user's token gets no totals: the tiles count the jobs in view, and say so.
  assert.equal(await user.getAttribute('#counts-src', 'data-source'), 'view');
  await user.click('#p-close');
  await user.click('#rows tr[data-job="mine"] .c-id');
  await user.click('#p-actions button[data-action="disable"]');
  await result(user, 'ack', /^disable: done/, "a user's action on their own job");
  await rowIs(user, 'mine', { cause: 'user · u1' });
  assert.equal((await db.query("SELECT enabled FROM reactor.scheduled_jobs WHERE id = 'mine'")).rows[0].enabled, false);

  if (ROOT) {
    mkdirSync(path.join(ROOT, 'build'), { recursive: true });
    await page.goto(`${base}/#job=flaky`);
    await panelIds(page, ids, 'for the screenshot', 3000);
    await page.screenshot({ path: path.join(ROOT, 'build', 'dashboard-console.png') });
  }
  assert.deepEqual(page.errors, []);
  assert.deepEqual(user.errors, []);
  await db.end();
  await reactor.stop();
});

async function dbTotals(db) {
  const r = await db.query('SELECT status, job_type, count(*)::int AS n FROM reactor.scheduled_jobs GROUP BY status, job_type');
  const byStatus = Object.fromEntries(STATUSES.map((s) => [s, 0]));
  const byType = {};
  for (const { status, job_type: t, n } of r.rows) {
    byStatus[status] += n;
    (byType[status] ??= {})[t] = n;
  }
  return { byStatus, byType };
}

async function tiles(page) {
  return page.evaluate((statuses) => Object.fromEntries(statuses.map((s) => [s, {
    n: Number(document.getElementById(`count-${s}`).textContent.replace(/,/g, '')),
    title: document.getElementById(`tile-${s}`).title,
  }])), STATUSES);
}

// The tiles equal the database's totals (and each tooltip its types) within `timeout`.
async function tilesEqualDatabase(page, db, what, timeout = WITHIN) {
  const want = await dbTotals(db);
  const deadline = Date.now() + timeout;
  let got;
  for (;;) {
    got = await tiles(page);
    const wrong = STATUSES.filter((s) => {
      const types = Object.entries(want.byType[s] ?? {}).sort((a, b) => b[1] - a[1] || 0);
      const title = types.length ? types.map(([k, n]) => `${k}: ${n.toLocaleString('en-US')}`) : ['none'];
      return got[s].n !== want.byStatus[s] || got[s].title.split('\n').sort().join() !== title.sort().join();
    });
    if (wrong.length === 0) return;
    if (Date.now() > deadline) {
      assert.fail(`${what}: tiles ${JSON.stringify(got)} vs the database ${JSON.stringify(want)}`);
    }
    await sleep(50);
  }
}

test('dashboard: the tiles are the database totals by status and job type while jobs are written; delay and queue', { timeout: 90000 }, async () => {
  const url = await freshDatabase('dashboard_counts');
  const db = await connect(url);
  // More jobs than a snapshot brings (5 000): the page cannot count them itself.
  await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, user_id, frequency_type, frequency_config)
                  SELECT 'bulk_' || g, (ARRAY['alpha','beta','gamma'])[1 + g % 3], 'u' || (g % 4), 'once', '{}'
                    FROM generate_series(1, 6000) g`);
  const reactor = await serve(url);
  const page = await browser();
  await page.goto(`http://127.0.0.1:${portOf(reactor)}/`);
  await page.waitForFunction(() => document.getElementById('conn').dataset.state === 'live', null, { timeout: 5000 });
  await tilesEqualDatabase(page, db, 'at load', 3000);
  assert.equal(await page.getAttribute('#counts-src', 'data-source'), 'server');
  assert.match(await page.textContent('#counts-src'), /^database totals as of event \d+$/);
  assert.equal(await page.textContent('#count-total'), '5,000', 'jobs in view: the snapshot\'s');

  // Jobs written meanwhile, in rounds: after each round the tiles equal the database.
  const admin = await connect(url);
  let k = 0;
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 40; i++, k++) {
      const id = `bulk_${1 + ((k * 37) % 6000)}`;
      if (k % 4 === 0) await admin.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, user_id) VALUES ($1, 'delta', 'u9')`, [`new_${k}`]);
      else if (k % 4 === 1) await admin.query("SELECT reactor.start_job($1, 'manual')", [id]).catch(() => {});
      else if (k % 4 === 2) await admin.query("UPDATE reactor.scheduled_jobs SET status = 'cancelled' WHERE id = $1 AND status = 'pending'", [id]);
      else await admin.query("UPDATE reactor.scheduled_jobs SET status = 'failed' WHERE id = $1 AND status = 'running'", [id]);
    }
    await tilesEqualDatabase(page, db, `after round ${round}`);
  }
  const maxId = (await db.query('SELECT max(id)::int AS m FROM reactor.job_events')).rows[0].m;
  await page.waitForFunction((id) => document.getElementById('counts-src').textContent === `database totals as of event ${id}`,
    maxId, { timeout: WITHIN });
  // A job-type filter: the tiles are that type's totals.
  await page.fill('#f-type', 'delta');
  await page.click('#f-apply');
  const delta = (await dbTotals(db)).byType.pending.delta;
  await page.waitForFunction((n) => document.getElementById('count-pending').textContent === String(n), delta, { timeout: 3000 });
  assert.match(await page.textContent('#counts-src'), /· job type delta$/);

  // The header: this page's delay, and the server's queue after a ping (every 5 s).
  await page.waitForFunction(() => /^\d+ ms|^\d+\.\d s$/.test(document.getElementById('lag-p50').textContent), null, { timeout: 3000 });
  await page.waitForFunction(() => /^\d+ (B|KiB)$/.test(document.getElementById('queue').textContent), null, { timeout: 7000 });
  assert.deepEqual(page.errors, []);
  await admin.end();
  await db.end();
  await reactor.stop();
});
