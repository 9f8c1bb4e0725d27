// The timeline bar of a replay (docs/dashboard.md, "Time travel"): play, pause, speed,
// a scrubber, jump to a time or an event id, back to the latest. It moves the page's
// JobStore through the Timeline (src/web/timeline.js) and keeps `?at=` in the URL.
//
// Modes: 'follow' (at the end; new events are shown as they come), 'play' (paced by the
// events' `at`; becomes 'follow' at the end), 'pause' (stays where it is while the
// timeline grows).

import { parseMoment, playStep } from './timeline.js';
import { formatTime } from './view.js';

const URL_EVERY_MS = 500;  // browsers throttle history.replaceState: at most twice a second

const fmtInt = (n) => n.toLocaleString('en-US');

export class TimeTravel {
  constructor({ timeline, store, view, root = document, location = globalThis.location, history = globalThis.history }) {
    Object.assign(this, { timeline, store, view, location, history });
    this.$ = (id) => root.getElementById(id);
    this.mode = 'follow';
    this.speed = Number(this.$('tt-speed').value) || 100;
    this.vt = null;           // the virtual clock while playing (ms)
    this.target = null;       // a moment from `?at=` that has not come yet
    this.active = false;
    this.lastTick = 0;
    this.urlAt = 0;
    this.urlTimer = 0;
    this.drawn = '';
    this.onMove = () => {};   // the position changed (the job panel follows it)

    this.$('tt-play').addEventListener('click', () => (this.mode === 'play' ? this.pause() : this.play()));
    this.$('tt-speed').addEventListener('change', (e) => {
      this.speed = Number(e.target.value) || 1;
      this.vt = null;
    });
    this.$('tt-range').addEventListener('input', (e) => {
      this.target = null;
      this.mode = 'pause';
      this.moveTo(Number(e.target.value));
    });
    this.$('tt-end').addEventListener('click', () => this.follow());
    this.$('tt-jump').addEventListener('submit', (e) => {
      e.preventDefault();
      this.jump(this.$('tt-jump-to').value);
    });
  }

  // The server replays: show the bar; a `?at=` in the URL is where to stop.
  enter() {
    if (this.active) return;
    this.active = true;
    this.$('tt').hidden = false;
    document.body.dataset.mode = 'replay';
    const at = new URLSearchParams(this.location.search).get('at');
    if (at) {
      const m = parseMoment(at);
      if (m) {
        this.target = m;
        this.mode = 'pause';
      } else {
        this.note(`cannot read ?at=${at}: give an ISO time, id:N or start`);
      }
    }
    const r = this.timeline.resolve(this.target);
    if (r.found) this.target = null;
    this.seek(r.pos, { restore: true });
  }

  // An event of the replay came.
  add(ev) {
    const tl = this.timeline;
    tl.append(ev);
    if (this.target) {
      // Every earlier event was weighed when it came: only this one can be the moment.
      const m = this.target;
      const t = typeof ev.at === 'string' ? Date.parse(ev.at) : NaN;
      if (typeof m.id === 'number' && ev.id === m.id) {
        this.target = null;
        this.seek(tl.end);
      } else if (typeof m.ms === 'number' && t > m.ms) {
        this.target = null;
        this.seek(tl.end - 1);
      } else {
        this.seek(tl.end);
      }
    } else if (this.mode === 'follow') {
      this.seek(tl.end);
    } else if (this.store.position < tl.start) {
      this.seek(tl.start);  // the events the view stood on were let go
    }
    this.view.invalidate();
  }

  // A new filter: the same position, the other rows.
  refilter() {
    this.seek(this.store.position ?? this.timeline.end, { restore: true });
  }

  seek(p, opts) {
    const before = this.store.position;
    this.timeline.seek(this.store, p, opts);
    if (this.store.position !== before || (opts && opts.restore)) this.onMove(this.store.position);
    this.view.invalidate();
  }

  // A move by the user: the URL says where.
  moveTo(p) {
    this.seek(p);
    this.writeUrl();
  }

  jump(text) {
    const tl = this.timeline;
    const day = tl.end > tl.start ? tl.timeAt(tl.start) : Date.now();
    const m = parseMoment(text, day);
    if (!m) {
      this.note(`cannot read "${text}": give an ISO time, a time of day (06:00:05), id:N or start`);
      return;
    }
    const r = tl.resolve(m);
    this.target = r.found ? null : m;  // not there yet: stop there when it comes
    this.mode = 'pause';
    this.note('');
    this.moveTo(r.pos);
  }

  play() {
    if (this.store.position >= this.timeline.end) this.seek(this.timeline.start);
    this.target = null;
    this.mode = 'play';
    this.vt = null;
    this.lastTick = performance.now();
    const tick = (now) => {
      if (this.mode !== 'play') return;
      const dt = Math.min(250, now - this.lastTick);  // a hidden tab does not jump ahead
      this.lastTick = now;
      const r = playStep(this.timeline, { pos: this.store.position, vt: this.vt }, dt, this.speed);
      this.vt = r.vt;
      if (r.pos !== this.store.position) this.seek(r.pos);
      if (this.store.position >= this.timeline.end) this.mode = 'follow';
      this.writeUrl();
      this.view.invalidate();
      if (this.mode === 'play') requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    this.view.invalidate();
  }

  pause() {
    this.mode = 'pause';
    this.writeUrl(true);
    this.view.invalidate();
  }

  follow() {
    this.target = null;
    this.mode = 'follow';
    this.seek(this.timeline.end);
    this.writeUrl(true);
  }

  // ?at= follows the position (none while following the latest), at most twice a second.
  writeUrl(now = false) {
    const t = performance.now();
    if (!now && t - this.urlAt < URL_EVERY_MS) {
      if (!this.urlTimer) this.urlTimer = setTimeout(() => { this.urlTimer = 0; this.writeUrl(true); }, URL_EVERY_MS);
      return;
    }
    this.urlAt = t;
    const p = new URLSearchParams(this.location.search);
    if (this.mode === 'follow') p.delete('at');
    else p.set('at', this.timeline.momentOf(this.store.position));
    const q = p.toString().replace(/%3A/gi, ':');
    const url = `${this.location.pathname}${q ? `?${q}` : ''}${this.location.hash}`;
    if (url !== `${this.location.pathname}${this.location.search}${this.location.hash}`) this.history.replaceState(null, '', url);
  }

  note(text) {
    this.$('tt-msg').textContent = text;
    this.$('tt-msg').hidden = !text;
  }

  // Per frame (a View hook): the bar.
  draw() {
    if (!this.active) return;
    const tl = this.timeline;
    const pos = this.store.position ?? tl.end;
    const key = `${tl.seq}|${tl.start}|${pos}|${this.mode}|${tl.gapAfter}`;
    if (key === this.drawn) return;
    this.drawn = key;
    const bar = this.$('tt');
    bar.dataset.mode = this.mode;
    bar.dataset.pos = String(pos);
    bar.dataset.start = String(tl.start);
    bar.dataset.end = String(tl.end);
    const range = this.$('tt-range');
    range.min = String(tl.start);
    range.max = String(tl.end);
    if (document.activeElement !== range || this.mode === 'play') range.value = String(pos);
    this.$('tt-play').textContent = this.mode === 'play' ? '❚❚ pause' : '▶ play';
    this.$('tt-end').disabled = this.mode === 'follow';
    const last = pos > tl.start ? tl.event(pos - 1) : null;
    const id = last && typeof last.id === 'number' ? `event ${last.id}` : (pos > tl.start ? 'event' : 'before the first event');
    const when = last && last.at ? ` · ${formatTime(last.at, { millis: true })}` : '';
    this.$('tt-pos').textContent = `${id}${when} · ${fmtInt(pos)} of ${fmtInt(tl.end)}`;
    this.$('tt-pos').title = last && last.at ? last.at : '';
    const notes = [];
    if (tl.dropped > 0) {
      const first = tl.event(tl.start);
      notes.push(`starts at event ${first && first.id !== undefined ? first.id : '?'}${first && first.at ? ` (${formatTime(first.at, { millis: true })})` : ''}: ` +
        `the page keeps the last ${fmtInt(tl.capacity)} events, ${fmtInt(tl.dropped)} older ones were let go`);
    }
    if (tl.gapAfter !== null) notes.push('the server\u2019s history no longer reached back to the start of the replay: earlier events are missing');
    this.$('tt-note').textContent = notes.join(' · ');
    this.$('tt-note').hidden = notes.length === 0;
  }
}
