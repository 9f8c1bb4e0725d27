// Drawing the JobStore: at most once per animation frame, and only what changed since
// the last frame. Events never touch the DOM; they mark the view dirty.

import { STATUSES } from './store.js';

const pad = (n, w = 2) => String(n).padStart(w, '0');

// "14:03:07.412" for today, "11-20 14:03:07" otherwise (local time); the full ISO
// text stays in the cell's title.
export function formatTime(iso, { millis = false, nowMs = Date.now() } = {}) {
  if (!iso) return '';
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return String(iso);
  const d = new Date(t);
  const now = new Date(nowMs);
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  const sameDay = d.getFullYear() === now.getFullYear() && d.getMonth() === now.getMonth()
    && d.getDate() === now.getDate();
  if (!sameDay) return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hms}`;
  return millis ? `${hms}.${pad(d.getMilliseconds(), 3)}` : hms;
}

const fmtInt = (n) => n.toLocaleString('en-US');

// The cause badge of a row or an event (migration 006): "retry", "user · alice"; no
// cause (an older event, a snapshot row): nothing.
export function causeText({ cause, actor, action }) {
  if (!cause) return { text: '', title: '' };
  if (cause === 'user') {
    const who = actor || '?';
    return { text: `user · ${who}`, title: `${action ? `${action} by` : 'by'} ${who}` };
  }
  return { text: cause, title: `cause: ${cause}` };
}

// Writing the same text again still costs a style and layout pass: skip it.
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function el(tag, cls) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  return e;
}

export class View {
  constructor({ store, root = document, maxRows = 500 }) {
    this.store = store;
    this.maxRows = maxRows;
    this.$ = (id) => root.getElementById(id);
    this.tbody = this.$('rows');
    this.table = this.$('jobs');
    this.nextTableAt = 0;
    this.busyUntil = 0;
    this.rows = new Map();  // key -> { tr, cells, row }
    this.drawnSeq = -1;
    this.frame = 0;
    this.flashes = 0;
    this.hooks = [];        // extra per-frame work (sparkline, header)
    // Whole-database counts from the server (the `counts` op), or null: then the tiles
    // count the jobs in view. { byStatus, byType: {status: {type: n}}, asOf }.
    this.totals = null;
    this.totalsSeq = 0;
    this.drawnTotals = -1;
    this.countsNote = 'counts of the jobs in view';
    this.counts = Object.fromEntries(STATUSES.map((s) => [s, this.$(`count-${s}`)]));
    // A flash is over once its animation ends; the class goes, so that nothing restarts it.
    this.tbody.addEventListener('animationend', (e) => {
      const tr = e.target.closest('tr');
      if (tr) tr.classList.remove('flash-a', 'flash-b');
    });
  }

  // Asks for a frame; many calls before it are one frame.
  invalidate() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  draw() {
    for (const h of this.hooks) h();
    const s = this.store;
    if (s.seq === this.drawnSeq && this.totalsSeq === this.drawnTotals) return;
    this.drawnSeq = s.seq;
    this.drawnTotals = this.totalsSeq;
    const t = this.totals;
    for (const st of STATUSES) {
      setText(this.counts[st], fmtInt(t ? (t.byStatus[st] ?? 0) : s.counts[st]));
      const tile = this.counts[st].parentElement;
      const types = t ? Object.entries(t.byType[st] ?? {}).sort((a, b) => b[1] - a[1]) : [];
      const title = t ? (types.length ? types.map(([k, n]) => `${k}: ${fmtInt(n)}`).join('\n') : 'none') : '';
      if (tile.title !== title) tile.title = title;
    }
    setText(this.$('counts-src'), t ? `database totals as of event ${t.asOf}${t.types ? ` · job type ${t.types}` : ''}` : this.countsNote);
    this.$('counts-src').dataset.source = t ? 'server' : 'view';
    setText(this.$('count-total'), fmtInt(s.size));
    const capped = s.partial && !t;
    if (this.$('cap-note').hidden === capped) this.$('cap-note').hidden = !capped;
    setText(this.$('last-id'), s.lastEventId ? String(s.lastEventId) : '—');
    this.drawTable();
  }

  drawTable() {
    const s = this.store;
    // At high rates the table is redrawn less often than every frame (below), so that
    // layout never crowds out input and scrolling. Counts and the last event id still
    // move every frame.
    const now = performance.now();
    if (now < this.nextTableAt) {
      this.drawnSeq = -1;  // come back next frame
      this.invalidate();
      return;
    }
    const changed = s.takeChanged();
    const rows = s.newest(this.maxRows);
    const keep = new Set();
    const trs = [];
    // Many changes at once (a snapshot, a burst): no flashes, no transitions.
    if (changed.size > 40) this.busyUntil = now + 2000;
    const busy = now < this.busyUntil;
    this.table.classList.toggle('busy', busy);
    const flash = !busy;
    let flashes = 0;
    for (const row of rows) {
      keep.add(row.key);
      let entry = this.rows.get(row.key);
      if (!entry) {
        entry = this.makeRow(row);
        this.rows.set(row.key, entry);
      }
      if (entry.row !== row) {
        this.fill(entry, row);
        entry.row = row;
      }
      if (flash && changed.has(row.key) && flashes < 40) {
        flashes++;
        entry.flip = !entry.flip;
        entry.tr.classList.toggle('flash-a', entry.flip);
        entry.tr.classList.toggle('flash-b', !entry.flip);
      }
      trs.push(entry.tr);
    }
    for (const [key, entry] of this.rows) {
      if (!keep.has(key)) {
        entry.tr.remove();
        this.rows.delete(key);
      }
    }
    // Usually a few rows went to the top: move only those. A row taken out of the
    // document and put back restarts its animations and transitions, so the rows that
    // stay in place must not be touched.
    let cursor = this.tbody.firstChild;
    for (const tr of trs) {
      if (tr === cursor) {
        cursor = cursor.nextSibling;
        continue;
      }
      this.tbody.insertBefore(tr, cursor);
    }
    setText(this.$('shown'), rows.length < s.size
      ? `showing the ${fmtInt(rows.length)} most recently changed of ${fmtInt(s.size)} jobs`
      : `${fmtInt(s.size)} jobs`);
    if (this.$('empty').hidden !== rows.length > 0) this.$('empty').hidden = rows.length > 0;
    // The script's time is only part of a redraw (style, layout and paint follow it), so
    // under a burst the table is paced outright: five redraws a second are as many as
    // anyone can read at a thousand changes a second.
    const took = performance.now() - now;
    if (busy) this.nextTableAt = now + 200;
    else this.nextTableAt = took > 8 ? now + Math.min(250, 4 * took) : 0;
  }

  makeRow(row) {
    const tr = el('tr');
    tr.setAttribute('role', 'row');
    const cells = {};
    for (const name of ['id', 'type', 'user', 'status', 'cause', 'progress', 'attempt', 'error', 'scheduled', 'updated']) {
      const td = el('td', `c-${name}`);
      td.setAttribute('role', 'cell');
      cells[name] = td;
      tr.appendChild(td);
    }
    cells.badge = el('span', 'badge');
    cells.status.appendChild(cells.badge);
    const bar = el('div', 'bar');
    cells.fill = el('div', 'fill');
    bar.appendChild(cells.fill);
    cells.pct = el('span', 'pct');
    const prog = el('div', 'prog');
    prog.append(bar, cells.pct);
    cells.progress.appendChild(prog);
    tr.dataset.job = row.id;
    tr.dataset.source = row.source;
    return { tr, cells, row: null, flip: false };
  }

  fill(entry, row) {
    const { tr, cells } = entry;
    const old = entry.row || {};
    tr.dataset.status = row.status ?? '';
    if (old.id !== row.id) {
      cells.id.textContent = row.id;
      cells.id.title = row.source === 'scheduled_jobs' ? row.id : `${row.source}: ${row.id}`;
    }
    if (old.type !== row.type) cells.type.textContent = row.type ?? '';
    if (old.user !== row.user) cells.user.textContent = row.user ?? '—';
    if (old.status !== row.status) {
      cells.badge.textContent = row.status ?? '?';
      cells.badge.className = `badge s-${row.status ?? 'unknown'}`;
    }
    if (old.cause !== row.cause || old.actor !== row.actor || old.action !== row.action) {
      const { text, title } = causeText(row);
      cells.cause.textContent = '';
      cells.cause.title = title;
      if (text) {
        const b = el('span', `cause k-${row.cause}`);
        b.textContent = text;
        cells.cause.appendChild(b);
      }
    }
    if (old.progress !== row.progress || old.message !== row.message || old.status !== row.status) {
      const p = typeof row.progress === 'number' ? Math.max(0, Math.min(100, row.progress)) : null;
      cells.fill.style.width = p === null ? '0%' : `${p}%`;
      cells.fill.className = `fill s-${row.status ?? 'unknown'}`;
      cells.pct.textContent = p === null ? '' : `${p}%`;
      cells.progress.title = row.message ?? '';
    }
    if (old.attempt !== row.attempt) cells.attempt.textContent = row.attempt ?? '';
    if (old.error !== row.error) {
      cells.error.textContent = row.error ?? '';
      cells.error.title = row.error ?? '';
    }
    if (old.scheduledFor !== row.scheduledFor) {
      cells.scheduled.textContent = formatTime(row.scheduledFor);
      cells.scheduled.title = row.scheduledFor ?? '';
    }
    if (old.updated !== row.updated) {
      cells.updated.textContent = formatTime(row.updated, { millis: true });
      cells.updated.title = row.updated ?? '';
    }
  }
}
