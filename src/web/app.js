// The reactor's dashboard: wiring of the store, the connection, the view and the
// controls. See docs/dashboard.md.

import { JobStore, STATUSES, normalizeFilter, serverTotals } from './store.js';
import { Client } from './client.js';
import { View, formatTime } from './view.js';
import { Rate, Lag, drawSparkline, formatMs, formatBytes } from './sparkline.js';
import { Timeline } from './timeline.js';
import { TimeTravel } from './travel.js';
import { JobPanel } from './panel.js';

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'reactor.token';

const store = new JobStore({ capacity: 10000 });
const view = new View({ store, maxRows: 500 });
const rate = new Rate(60);
const lag = new Lag(100);
let drawnAts = [];    // `at` of the events received since the last frame (at most 100)
let lastCounts = null;  // the server's last `counts` message
// A replay keeps every event for time travel; its state at the scrubber is the store's.
const timeline = new Timeline({ jobCapacity: store.capacity });
const travel = new TimeTravel({ timeline, store, view });
view.hooks.push(() => travel.draw());

// ---- filters: the form, the URL hash (so that a view can be shared), the server ----

function filterFromHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  return normalizeFilter({
    job_type: p.get('job_type') ?? '', status: p.get('status') ?? '', user_id: p.get('user_id') ?? '',
  });
}

// The hash carries the filter and the job whose timeline is open (`job=`).
function filterToHash(f) {
  const p = new URLSearchParams();
  if (f.job_type) p.set('job_type', f.job_type.join(','));
  if (f.status) p.set('status', f.status.join(','));
  if (f.user_id) p.set('user_id', f.user_id);
  if (panel?.job) p.set('job', panel.job.id);
  const h = p.toString();
  history.replaceState(null, '', h ? `#${h}` : location.pathname + location.search);
}

function filterFromForm() {
  const statuses = STATUSES.filter((s) => $(`f-${s}`).checked);
  return normalizeFilter({ job_type: $('f-type').value, status: statuses, user_id: $('f-user').value });
}

function showFilter(f) {
  $('f-type').value = (f.job_type || []).join(', ');
  $('f-user').value = f.user_id || '';
  for (const s of STATUSES) $(`f-${s}`).checked = !!(f.status && f.status.includes(s));
  const active = Object.keys(f).length > 0;
  $('filters').classList.toggle('active', active);
  $('f-clear').disabled = !active;
}

let filter = filterFromHash();
store.filter = filter;
showFilter(filter);

function applyFilter(f) {
  if (JSON.stringify(f) === JSON.stringify(filter)) return;
  filter = f;
  filterToHash(f);
  showFilter(f);
  client.setFilter(f);
  if (client.mode === 'replay') {
    store.filter = f;
    travel.refilter();
  }
  showTotals();
}

// The tiles: the server's whole-database counts when it sends them, else the view's.
function showTotals() {
  view.totals = client.mode === 'replay' ? null : serverTotals(lastCounts, filter);
  view.countsNote = client.mode === 'replay' ? 'counts at this point of the replay'
    : (lastCounts && filter.user_id ? 'counts of the jobs in view (database totals cannot filter by user)' : 'counts of the jobs in view');
  view.totalsSeq++;
  view.invalidate();
}

// ---- connection state in the header ----

const STATE_TEXT = {
  idle: 'stopped',
  connecting: 'connecting',
  loading: 'loading snapshot',
  waiting: 'waiting for the database',
  live: 'live',
  auth: 'token needed',
};

function drawState() {
  const st = client.state;
  const box = $('conn');
  box.dataset.state = st;
  let text = STATE_TEXT[st] ?? st;
  if (st === 'live' && client.mode === 'replay') text = 'replay';
  if (st === 'reconnecting') {
    const s = Math.max(0, Math.ceil((client.retryAt - Date.now()) / 1000));
    text = `reconnecting in ${s}s`;
  }
  if ($('conn-text').textContent !== text) $('conn-text').textContent = text;
}

let gaps = 0;
function showGap(msg) {
  gaps++;
  const when = formatTime(new Date().toISOString(), { millis: true });
  const box = $('gap');
  box.hidden = false;
  box.title = `The server could not resume after event ${msg.after}; the table was reloaded from a fresh snapshot.`;
  $('gap-text').textContent = gaps > 1 ? `resynced after gap ×${gaps} · last ${when}` : `resynced after gap · ${when}`;
}

// ---- the connection ----

const wsUrl = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
const client = new Client({
  url: wsUrl,
  store,
  token: sessionStorage.getItem(TOKEN_KEY),
  onState: () => { drawState(); view.invalidate(); },
  onGap: showGap,
  onAuthNeeded: (why) => {
    $('auth').hidden = false;
    $('auth-why').textContent = why;
    $('auth-token').focus();
  },
  onWelcome: (m) => { $('server').textContent = m.server || '—'; },
  onSnapshot: () => {
    $('auth').hidden = true;
    if (!panel.job) panelFromHash();
    view.invalidate();
  },
  onEvent: (ev) => {
    rate.add(1, Date.now());
    if (typeof ev.at === 'string') {
      drawnAts.push(ev.at);
      if (drawnAts.length > 200) drawnAts = drawnAts.slice(-100);
    }
    panel.live(ev);
    view.invalidate();
  },
  onCounts: (m) => {
    lastCounts = m;
    showTotals();
  },
  onPong: (p) => {
    $('queue').textContent = p ? formatBytes(p.queueBytes) : '—';
    $('queue').title = p ? `round trip ${formatMs(p.rttMs)}` : 'this server does not answer pings';
  },
  onReplay: () => {
    $('auth').hidden = true;
    store.filter = filter;
    $('f-hint').textContent = 'filters apply to the replay in this page';
    $('lag-box').hidden = true;  // a replayed event's `at` is history, not a delay
    travel.enter();
    showTotals();
    if (!panel.job) panelFromHash();
  },
  onReplayEvent: (ev) => {
    rate.add(1, Date.now());
    travel.add(ev);
  },
  onReplayGap: (m) => {
    timeline.gapAfter = m.after;
    timeline.seq++;
    view.invalidate();
  },
  onError: (text) => {
    const now = new Date();
    $('last-error').textContent = `${formatTime(now.toISOString(), { millis: true })} ${text}`;
    $('last-error').title = `${now.toISOString()} ${text}`;
  },
});

// ---- a job's timeline: a click on its row ----

const panel = new JobPanel({ client, timeline, store });
travel.onMove = () => panel.fromTimeline();
panel.onClose = () => filterToHash(filter);
$('rows').addEventListener('click', (e) => {
  const tr = e.target.closest('tr');
  if (!tr || !tr.dataset.job) return;
  for (const t of $('rows').querySelectorAll('tr.selected')) t.classList.remove('selected');
  tr.classList.add('selected');
  panel.open({ id: tr.dataset.job, source: tr.dataset.source });
  filterToHash(filter);
});

// A link with #job=ID opens that job's timeline once the connection is up.
function panelFromHash() {
  const id = new URLSearchParams(location.hash.slice(1)).get('job');
  if (id && panel.job?.id !== id) panel.open({ id, source: 'scheduled_jobs' });
  else if (!id && panel.job) panel.close();
}

// ---- controls ----

$('filters').addEventListener('submit', (e) => {
  e.preventDefault();
  applyFilter(filterFromForm());
});
for (const s of STATUSES) $(`f-${s}`).addEventListener('change', () => applyFilter(filterFromForm()));
$('f-clear').addEventListener('click', () => applyFilter({}));
window.addEventListener('hashchange', () => {
  applyFilter(filterFromHash());
  panelFromHash();
});

// A click on a count tile filters by that status (again: clears it).
for (const s of STATUSES) {
  $(`tile-${s}`).addEventListener('click', () => {
    const only = filter.status && filter.status.length === 1 && filter.status[0] === s;
    applyFilter(normalizeFilter({ ...filter, status: only ? [] : [s] }));
  });
}

$('auth').addEventListener('submit', (e) => {
  e.preventDefault();
  const token = $('auth-token').value.trim();
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
  $('auth').hidden = true;
  client.setToken(token);
});

// ---- per-frame and per-second work ----

const canvas = $('spark');
let lastSparkSecond = 0;
view.hooks.push(() => {
  const now = Date.now();
  // The delay of the events this frame draws.
  if (drawnAts.length) {
    for (const at of drawnAts.slice(-100)) lag.add(now - Date.parse(at));
    drawnAts = [];
    $('lag-p50').textContent = formatMs(lag.p50());
    $('lag-last').textContent = formatMs(lag.last);
  }
  const sec = Math.floor(now / 1000);
  if (sec !== lastSparkSecond) {
    lastSparkSecond = sec;
    drawSparkline(canvas, rate, now);
    $('rate-now').textContent = rate.current(now).toLocaleString('en-US');
    $('rate-peak').textContent = rate.peak().toLocaleString('en-US');
  }
});

// The countdown and the sparkline move with time even when no event comes.
setInterval(() => {
  drawState();
  view.invalidate();
}, 250);

// Whether the reactor is listening on PostgreSQL (/readyz: no database work).
async function pollReady() {
  let text = 'unknown';
  let ok = false;
  try {
    const r = await fetch('/readyz', { cache: 'no-store' });
    ok = r.ok;
    text = ok ? 'listening' : 'not listening';
  } catch {
    text = 'reactor unreachable';
  }
  $('db').textContent = text;
  $('db-box').dataset.ok = ok ? 'yes' : 'no';
}
pollReady();
setInterval(pollReady, 3000);

client.start();
window.addEventListener('resize', () => { lastSparkSecond = 0; view.invalidate(); });
