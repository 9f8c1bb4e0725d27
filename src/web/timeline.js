// Time travel over a replay (docs/dashboard.md, "Time travel"): every event the page
// received, in order and bounded, and the state of the jobs at any point of it. Pure: no
// DOM, no clock, no network.
//
// A position p is a number of events: the state at p is the fold of the events before
// it (p = 0: nothing yet; p = end: everything received). Positions count from the start
// of the replay, so they stay put when the oldest events are let go; the timeline then
// starts at `start` > 0, whose state is kept whole (a checkpoint).
//
// Scrubbing is cheap because the fold is checkpointed: a copy of the folded state every
// max(checkpointMin, jobs) events (rows are shared between copies, never modified), so a
// jump copies one state and folds forward at most one interval; moving forward folds
// only the events in between. The copies together hold about as many rows as there are
// events.

import { JobStore, jobKey } from './store.js';

export const TIMELINE_CAPACITY = 200000;  // events kept in memory; past it the oldest go
export const CHECKPOINT_MIN = 1000;       // events between two checkpoints, at least
export const MAX_IDLE_MS = 2000;          // playing: the longest real pause between two events

export class Timeline {
  constructor({ capacity = TIMELINE_CAPACITY, checkpointMin = CHECKPOINT_MIN, jobCapacity = 10000 } = {}) {
    this.capacity = Math.max(4, capacity);
    this.checkpointMin = Math.max(1, checkpointMin);
    this.jobCapacity = jobCapacity;
    this.reset();
  }

  reset() {
    this.events = [];
    this.times = [];        // each event's `at` in ms (NaN when it has none)
    this.start = 0;         // the position of events[0]
    this.dropped = 0;       // events let go to stay within the capacity
    this.head = new JobStore({ capacity: this.jobCapacity, trackChanges: false });
    this.checkpoints = [{ at: 0, state: this.head.save() }];
    this.gapAfter = null;   // the server could not send the events after this id (its ring had let them go)
    this.seq = 0;           // bumps when events come or go
  }

  get end() { return this.start + this.events.length; }

  event(p) { return this.events[p - this.start]; }
  timeAt(p) { return this.times[p - this.start]; }

  // Adds the next event; returns how many of the oldest were let go.
  append(ev) {
    this.events.push(ev);
    const t = typeof ev.at === 'string' ? Date.parse(ev.at) : NaN;
    this.times.push(t);
    this.head.apply(ev);
    this.seq++;
    const last = this.checkpoints[this.checkpoints.length - 1];
    // At least four checkpoints fit in the capacity, so that the oldest can go a
    // quarter at a time.
    const every = Math.min(Math.max(this.checkpointMin, this.head.size), Math.floor(this.capacity / 4));
    if (this.end - last.at >= every) this.checkpoints.push({ at: this.end, state: this.head.save() });
    let gone = 0;
    while (this.events.length > this.capacity && this.checkpoints.length > 1) {
      // Up to the second checkpoint: its state becomes the state at the new start.
      const n = this.checkpoints[1].at - this.start;
      this.events.splice(0, n);
      this.times.splice(0, n);
      this.start += n;
      this.checkpoints.shift();
      gone += n;
    }
    this.dropped += gone;
    return gone;
  }

  // The checkpoint nearest before p.
  checkpointFor(p) {
    const cps = this.checkpoints;
    let lo = 0;
    let hi = cps.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (cps[mid].at <= p) lo = mid;
      else hi = mid - 1;
    }
    return cps[lo];
  }

  clamp(p) { return Math.max(this.start, Math.min(this.end, Math.round(p))); }

  // Moves `store` (a JobStore, the one the page draws) to position p with its filter:
  // folds forward from where the store is when that is no more work than starting from
  // the nearest checkpoint, else loads the checkpoint and folds from there. The store
  // remembers its position in `store.position`; `restore` forces a load (a new filter).
  seek(store, p, { restore = false } = {}) {
    p = this.clamp(p);
    const cp = this.checkpointFor(p);
    const pos = store.position;
    const forward = !restore && typeof pos === 'number' && pos >= this.start && pos <= p
      && (pos >= cp.at || p - pos <= cp.state.jobs.size + (p - cp.at));
    let from = pos;
    if (!forward) {
      store.load(cp.state);
      from = cp.at;
    }
    for (let i = from; i < p; i++) store.apply(this.event(i));
    store.position = p;
    return forward ? 'forward' : 'restored';
  }

  // The position just after the event with this id, or -1 when it is not in the timeline.
  positionOfId(id) {
    for (let i = 0; i < this.events.length; i++) if (this.events[i].id === id) return this.start + i + 1;
    return -1;
  }

  // The position of the first event from `from` on that happened after `ms` (end when
  // none did yet): the state at that moment. Events are in delivery (commit) order,
  // which is the order of their `at` but for transactions that overlapped.
  positionAtTime(ms, from = this.start) {
    let i = Math.max(0, from - this.start);
    while (i < this.times.length && !(this.times[i] > ms)) i++;
    return this.start + i;
  }

  // Resolves a moment (parseMoment's shape): { pos, found }; `found` false means the
  // moment has not come yet (an id not seen, a time after the last event): the position
  // is then the end, and more events may move it.
  resolve(moment) {
    if (!moment) return { pos: this.end, found: false };
    if (moment.start) return { pos: this.start, found: true };
    if (typeof moment.id === 'number') {
      const p = this.positionOfId(moment.id);
      return p < 0 ? { pos: this.end, found: false } : { pos: p, found: true };
    }
    const p = this.positionAtTime(moment.ms);
    return { pos: p, found: p < this.end };
  }

  // The events of one job before position p, newest first, at most `limit`.
  jobEvents(key, p = this.end, limit = Infinity) {
    const out = [];
    for (let i = this.clamp(p) - this.start - 1; i >= 0 && out.length < limit; i--) {
      const ev = this.events[i];
      if (ev.job_id !== undefined && ev.job_id !== null && jobKey(ev.source, String(ev.job_id)) === key) out.push(ev);
    }
    return out;
  }

  // A moment to put in a link: the last event's id before p ("id:4711"), or "start".
  momentOf(p) {
    p = this.clamp(p);
    for (let i = p - this.start - 1; i >= 0; i--) {
      const id = this.events[i].id;
      if (typeof id === 'number') return `id:${id}`;
      if (Number.isFinite(this.times[i])) return new Date(this.times[i]).toISOString();
    }
    return 'start';
  }
}

// `?at=` and the jump field: "id:4711" or "4711" (an event id), "start", an ISO time,
// or a time of day "06:00:05(.250)" on the day of `dayOfMs` (local time). null if none.
export function parseMoment(text, dayOfMs = NaN) {
  const s = String(text ?? '').trim();
  if (!s) return null;
  if (s === 'start') return { start: true };
  let m = /^(?:id:)?(\d+)$/.exec(s);
  if (m) return { id: Number(m[1]) };
  m = /^(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?$/.exec(s);
  if (m) {
    if (!Number.isFinite(dayOfMs)) return null;
    const d = new Date(dayOfMs);
    d.setHours(Number(m[1]), Number(m[2]), Number(m[3] ?? 0), Number((m[4] ?? '0').padEnd(3, '0')));
    return { ms: d.getTime() };
  }
  const ms = Date.parse(s);
  return Number.isFinite(ms) ? { ms } : null;
}

// Playing: a virtual clock runs `speed` times as fast as real time and the position
// follows the events' `at`. A pause between two events longer than MAX_IDLE_MS of real
// time is cut to that. Returns the new { pos, vt } after `dtMs` of real time.
export function playStep(tl, { pos, vt }, dtMs, speed) {
  pos = tl.clamp(pos);
  if (pos >= tl.end) return { pos, vt };
  const next = tl.timeAt(pos);
  if (typeof vt !== 'number' || !Number.isFinite(vt)) {
    const prev = pos > tl.start ? tl.timeAt(pos - 1) : NaN;
    vt = Number.isFinite(prev) ? prev : (Number.isFinite(next) ? next : 0);
  }
  if (Number.isFinite(next)) vt = Math.max(vt, next - MAX_IDLE_MS * speed);
  vt += dtMs * speed;
  while (pos < tl.end && !(tl.timeAt(pos) > vt)) pos++;
  return { pos, vt };
}
