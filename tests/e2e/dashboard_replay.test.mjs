// Time travel in a real browser (Debian's headless Chromium through playwright-core):
// `reactor --replay FILE --listen` serves journals written here with a known sequence;
// the page opened at `?at=` a moment shows the rows and counts exactly as they were
// then, scrubbing and jumping move to other moments, play advances, a paced replay
// extends the timeline, and an old journal (events without a cause) shows no cause.
// Saves build/dashboard-replay.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { ROOT, startReactor, tempDir } from './lib.mjs';
import { browser, portOf, STATUSES } from './browserlib.mjs';

// ---- journals ----

const T0 = Date.parse('2026-11-21T06:00:00Z');
const iso = (ms) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

// One event as reactor.emit_event writes it (jsonb key order), with the migration 006
// fields when `cause` is given.
function event(id, atMs, job, status, old, extra = {}) {
  const { cause, actor = null, action = null, ...rest } = extra;
  const e = {
    at: iso(atMs), id, kind: status === old ? 'progress' : 'status', error: null, job_id: job, result: null,
    source: 'scheduled_jobs', status, attempt: null, message: null, user_id: 'u1', deadline: null,
    job_type: job.startsWith('f') ? 'filler' : 'alpha', progress: null, old_status: old,
    scheduled_for: '2026-11-21T06:00:00Z', ...rest,
  };
  if (cause !== undefined) Object.assign(e, { actor, cause, action, enabled: true, priority: 'medium' });
  return e;
}

// The known sequence: a, b, c, d (one event a second, from 06:00:00), then 2 500
// events of 50 filler jobs (a millisecond apart, so that the page checkpoints its fold),
// then two more of the known jobs. `cause`: write the migration 006 fields.
function knownSequence({ cause = true } = {}) {
  const c = (k, more = {}) => (cause ? { cause: k, ...more } : {});
  const steps = [
    ['a', 'pending', null, c('sql')],
    ['b', 'pending', null, c('sql')],
    ['c', 'pending', null, c('sql')],
    ['a', 'running', 'pending', { attempt: 1, ...c('worker') }],
    ['b', 'running', 'pending', { attempt: 1, ...c('worker') }],
    ['a', 'running', 'running', { attempt: 1, progress: 50, message: 'half', ...c('worker') }],
    ['b', 'failed', 'running', { attempt: 1, error: 'disk full', ...c('worker') }],
    ['b', 'pending', 'failed', { attempt: 1, error: 'disk full', ...c('retry') }],
    ['a', 'completed', 'running', { attempt: 1, progress: 100, ...c('worker') }],
    ['c', 'cancelled', 'pending', c('user', { actor: 'alice', action: 'cancel' })],
    ['b', 'running', 'pending', { attempt: 2, ...c('worker') }],
    ['d', 'pending', null, c('schedule')],
    ['b', 'completed', 'running', { attempt: 2, progress: 100, ...c('worker') }],
    ['d', 'running', 'pending', { attempt: 1, ...c('worker') }],
  ];
  const events = steps.map(([job, st, old, extra], k) => event(101 + k, T0 + k * 1000, job, st, old, extra));
  const fillerAt = T0 + steps.length * 1000;
  const fstate = new Map();
  for (let i = 0; i < 2500; i++) {
    const job = `f${i % 50}`;
    const was = fstate.get(job) ?? null;
    const st = was === null ? 'pending' : (was === 'pending' ? 'running' : 'running');
    const extra = { ...c('worker'), progress: was === 'running' ? i % 100 : null };
    if (i >= 2450) { extra.progress = 100; }
    const final = i >= 2450 ? (i % 2 ? 'completed' : 'failed') : st;
    events.push(event(1000 + i, fillerAt + i, job, final, was, extra));
    fstate.set(job, final);
  }
  const lastAt = fillerAt + 3000;
  events.push(event(9001, lastAt, 'd', 'failed', 'running', { attempt: 1, error: 'timed out', ...c('timeout') }));
  events.push(event(9002, lastAt + 1000, 'a', 'pending', 'completed', { attempt: 1, ...c('user', { actor: 'bob', action: 'run_now' }) }));
  return events;
}

function writeJournal(file, events, tOf = (i) => 1763704800000 + i) {
  writeFileSync(file, events.map((e, i) => `{"t":${tOf(i)},"event":${JSON.stringify(e)}}\n`).join(''));
}

// The reference fold, written independently of src/web: job -> its last event's state,
// for the events before position p (unfiltered, or through `keep`).
function expected(events, p, keep = () => true) {
  const jobs = new Map();
  for (let i = 0; i < p; i++) {
    const e = events[i];
    const cause = e.cause === 'user' ? `user · ${e.actor}` : (e.cause ?? '');
    jobs.set(e.job_id, {
      status: e.status, progress: e.progress === null ? '' : `${e.progress}%`, error: e.error ?? '',
      attempt: e.attempt === null ? '' : String(e.attempt), cause,
    });
  }
  const rows = Object.fromEntries([...jobs].filter(([, r]) => keep(r)));
  const counts = Object.fromEntries(STATUSES.map((s) => [s, Object.values(rows).filter((r) => r.status === s).length]));
  return { rows, counts };
}

// ---- the page ----

function tableRows(page) {
  return page.evaluate(() => Object.fromEntries(Array.from(document.querySelectorAll('#rows tr')).map((tr) => [
    tr.dataset.job, {
      status: tr.dataset.status,
      progress: tr.querySelector('.pct').textContent,
      error: tr.querySelector('.c-error').textContent,
      attempt: tr.querySelector('.c-attempt').textContent,
      cause: tr.querySelector('.c-cause').textContent,
    }])));
}

async function shown(page) {
  const counts = {};
  for (const s of STATUSES) counts[s] = Number(await page.textContent(`#count-${s}`));
  return { rows: await tableRows(page), counts };
}

// Waits until the scrubber is at position p, then compares the table and the counts
// with the reference fold (exactly: every row, every count).
async function isAt(page, events, p, what, keep) {
  if (process.env.DASHBOARD_TRACE) console.log(new Date().toISOString(), what);
  try {
    await page.waitForFunction((p) => document.getElementById('tt').dataset.pos === String(p), p, { timeout: 5000 });
  } catch {
    assert.fail(`${what}: the scrubber is at ${await page.getAttribute('#tt', 'data-pos')}, wanted ${p}`);
  }
  const want = expected(events, p, keep);
  let got;
  const deadline = Date.now() + 2000;
  do {
    got = await shown(page);
    if (canonical(got) === canonical(want)) return;
    await new Promise((r) => setTimeout(r, 50));
  } while (Date.now() < deadline);
  assert.deepEqual(got, want, `${what}: the page at position ${p}`);
}

async function panelShows(page, ids, what) {
  try {
    await page.waitForFunction((ids) => Array.from(document.querySelectorAll('#p-events li'))
      .map((li) => li.dataset.id).join() === ids.join(), ids, { timeout: 3000 });
  } catch {
    assert.fail(`${what}: the panel shows ${JSON.stringify(await panelLines(page))}, wanted ids ${ids}`);
  }
}

function panelLines(page) {
  return page.$$eval('#p-events li', (lis) => lis.map((li) => ({
    id: li.dataset.id,
    change: li.querySelector('.e-change').textContent,
    cause: li.querySelector('.cause')?.textContent ?? '',
    facts: Array.from(li.querySelectorAll('.e-facts span')).map((x) => x.textContent).join(' '),
  })));
}

const canonical = ({ rows, counts }) => JSON.stringify([Object.entries(rows).sort(), counts]);

test('dashboard: time travel over a replay (?at=, jump, scrub, play, filter, latest)', { timeout: 60000 }, async () => {
  const events = knownSequence();
  const file = path.join(tempDir(), 'journal.ndjson');
  writeJournal(file, events);
  const replay = startReactor(['--replay', file, '--listen', '127.0.0.1:0'], { readyPattern: /replay finished/ });
  await replay.ready;
  const base = `http://127.0.0.1:${portOf(replay)}/`;
  const page = await browser();

  // ---- a link to a moment: 06:00:07.500 is after event 108 (b back to pending by a retry) ----
  await page.goto(`${base}?at=2026-11-21T06:00:07.500Z`);
  await page.waitForFunction((n) => document.getElementById('tt').dataset.end === String(n), events.length, { timeout: 10000 });
  assert.equal(await page.textContent('#conn-text'), 'replay');
  await isAt(page, events, 8, '?at=06:00:07.500');
  assert.equal(await page.getAttribute('#tt', 'data-mode'), 'pause');
  const at8 = await tableRows(page);
  assert.deepEqual([at8.b.status, at8.b.cause, at8.b.error], ['pending', 'retry', 'disk full']);
  assert.deepEqual([at8.a.status, at8.a.progress, at8.a.cause], ['running', '50%', 'worker']);
  assert.equal(await page.textContent('#last-id'), '108');
  assert.match(await page.textContent('#tt-pos'), /^event 108 · \d\d-\d\d \d\d:\d\d:\d\d · 8 of 2,516$/);

  // ---- jump to an event id: the user's cancel shows its actor ----
  await page.fill('#tt-jump-to', 'id:110');
  await page.click('#tt-jump button');
  await isAt(page, events, 10, 'jump to id:110');
  assert.equal((await tableRows(page)).c.cause, 'user · alice');
  assert.equal(await page.getAttribute('#rows tr[data-job="c"] .c-cause', 'title'), 'cancel by alice');
  await page.waitForFunction(() => location.search === '?at=id:110');

  // ---- scrub: back to position 3, then into the filler (a checkpoint restore) and back ----
  const scrub = (p) => page.$eval('#tt-range', (el, p) => {
    el.value = String(p);
    el.dispatchEvent(new Event('input', { bubbles: true }));
  }, p);
  await scrub(3);
  await isAt(page, events, 3, 'scrubbed to 3');
  await page.waitForFunction(() => location.search === '?at=id:103');
  await scrub(1777);
  await isAt(page, events, 1777, 'scrubbed to 1777');
  await scrub(2200);
  await isAt(page, events, 2200, 'scrubbed to 2200');
  await scrub(14);
  await isAt(page, events, 14, 'scrubbed back to 14');
  // A time of day on the replay's date, local time.
  const d = new Date(T0 + 12000);
  const hhmmss = [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
  await page.fill('#tt-jump-to', hhmmss);
  await page.click('#tt-jump button');
  await isAt(page, events, 13, `jump to ${hhmmss}`);

  // ---- a job's timeline: its events up to the scrubber, newest first, with run times ----
  await page.click('#rows tr[data-job="b"] .c-id');
  await panelShows(page, ['113', '111', '108', '107', '105', '102'], 'b at position 13');
  const lines = await panelLines(page);
  assert.deepEqual(lines[0], { id: '113', change: 'running → completed', cause: 'worker', facts: 'attempt 2 100% ran 2.00 s' });
  assert.deepEqual(lines[2], { id: '108', change: 'failed → pending', cause: 'retry', facts: 'attempt 1 disk full' });
  assert.deepEqual(lines[3], { id: '107', change: 'running → failed', cause: 'worker', facts: 'attempt 1 ran 2.00 s disk full' });
  assert.equal(await page.isHidden('#p-actions'), true, 'actions in a replay');
  await scrub(8);
  await isAt(page, events, 8, 'scrubbed to 8 with the panel open');
  await panelShows(page, ['108', '107', '105', '102'], 'b at position 8');
  await page.click('#p-close');
  assert.equal(await page.isHidden('#panel'), true);
  await scrub(13);

  // ---- a filter applies to the moment shown ----
  await page.click('label:has(#f-running)');
  await isAt(page, events, 13, 'running only', (r) => r.status === 'running');
  await page.click('#f-clear');
  await isAt(page, events, 13, 'filter cleared');

  // ---- play at 1x (events a second apart: the pause lands seconds before the end); it
  // pauses, then runs to the end at 1000x ----
  await scrub(2);
  await page.selectOption('#tt-speed', '1');
  await page.click('#tt-play');
  await page.waitForFunction(() => Number(document.getElementById('tt').dataset.pos) >= 6, null, { timeout: 10000 });
  await page.click('#tt-play');
  await page.waitForFunction(() => document.getElementById('tt').dataset.mode === 'pause', null, { timeout: 1000 });
  const paused = Number(await page.getAttribute('#tt', 'data-pos'));
  assert.ok(paused >= 6 && paused < events.length, `paused at ${paused}`);
  await isAt(page, events, paused, 'paused while playing');
  await page.selectOption('#tt-speed', '1000');
  await page.click('#tt-play');
  await page.waitForFunction(() => document.getElementById('tt').dataset.mode === 'follow', null, { timeout: 10000 });
  await isAt(page, events, events.length, 'played to the end');
  await page.waitForFunction(() => location.search === '');
  const end = await tableRows(page);
  assert.deepEqual([end.a.status, end.a.cause, end.d.cause], ['pending', 'user · bob', 'timeout']);

  // ---- a link by id, in a new load; "latest" goes to the end ----
  await page.goto(`${base}?at=id:1500#status=running`);
  await isAt(page, events, 14 + 1500 - 1000 + 1, '?at=id:1500 with a status filter', (r) => r.status === 'running');
  await page.click('#f-clear');
  await page.click('#tt-end');
  await isAt(page, events, events.length, 'latest');

  if (ROOT) {
    mkdirSync(path.join(ROOT, 'build'), { recursive: true });
    await page.goto(`${base}?at=id:111`);
    await isAt(page, events, 11, 'for the screenshot');
    await page.screenshot({ path: path.join(ROOT, 'build', 'dashboard-replay.png') });
  }
  assert.deepEqual(page.errors, []);
  assert.equal((await replay.stop('SIGINT')).code, 0);
});

test('dashboard: a paced replay extends the timeline; an old journal (no cause) shows none', { timeout: 60000 }, async () => {
  // Without the migration 006 fields. The first 2 514 events within a few milliseconds,
  // the last two 8 s later (t paces the replay). The browser starts first: the page must
  // load before the last two are replayed.
  const events = knownSequence({ cause: false });
  const n = events.length;
  const file = path.join(tempDir(), 'old.ndjson');
  writeJournal(file, events, (i) => 1763704800000 + (i < n - 2 ? Math.floor(i / 1000) : 8000 + i - n));
  const page = await browser();
  const replay = startReactor(['--replay', file, '--listen', '127.0.0.1:0', '--speed', '1'], { readyPattern: /listening on/ });
  await replay.ready;
  // Stopped at event 110: the timeline grows past it, the view stays.
  await page.goto(`http://127.0.0.1:${portOf(replay)}/?at=id:110`);
  await isAt(page, events, 10, 'old journal at id:110');
  const before = Number(await page.getAttribute('#tt', 'data-end'));
  assert.ok(before < n, `the whole replay was there already (${before})`);
  await page.waitForFunction((n) => document.getElementById('tt').dataset.end === String(n), n, { timeout: 20000 });
  await isAt(page, events, 10, 'old journal, still at id:110 after the replay went on');
  for (const r of Object.values(await tableRows(page))) assert.equal(r.cause, '', 'a cause shown for an event without one');
  await page.click('#rows tr[data-job="c"] .c-id');
  await panelShows(page, ['110', '103'], 'c in the old journal');
  assert.deepEqual((await panelLines(page)).map((l) => l.cause), ['', '']);
  assert.equal(await page.$$eval('#rows .cause', (l) => l.length), 0);
  // Following the latest: the rows as at the end, still no cause.
  await page.click('#tt-end');
  await isAt(page, events, n, 'old journal at the end');
  assert.equal(await page.$$eval('#rows .cause', (l) => l.length), 0);
  assert.deepEqual(page.errors, []);
  assert.equal((await replay.stop('SIGINT')).code, 0);
});
