// The dashboard's model: every job it knows, keyed by source and id, in the order of
// their last change (a Map keeps insertion order; a change re-inserts), with counts by
// status kept as rows come and go. Pure: no DOM, no clock, no network.

export const STATUSES = ['pending', 'running', 'completed', 'failed', 'cancelled', 'expired'];

const DEFAULT_SOURCE = 'scheduled_jobs';

export function jobKey(source, id) {
  return `${source || DEFAULT_SOURCE}\u0000${id}`;
}

function asText(v) {
  if (v === null || v === undefined) return null;
  return typeof v === 'string' ? v : JSON.stringify(v);
}

// A filter as the server takes it (CONTRACT section 5), from loose form values:
// job types and statuses as arrays, empty values left out.
export function normalizeFilter({ job_type = [], status = [], user_id = '' } = {}) {
  const list = (v) => (Array.isArray(v) ? v : String(v).split(','))
    .map((s) => String(s).trim()).filter((s) => s.length > 0);
  const f = {};
  const types = [...new Set(list(job_type))];
  const statuses = [...new Set(list(status))];
  if (types.length) f.job_type = types;
  if (statuses.length) f.status = statuses;
  if (String(user_id).trim()) f.user_id = String(user_id).trim();
  return f;
}

// True when an event or row with these values passes `filter` (normalizeFilter's shape).
export function matches(filter, { job_type, status, user_id }) {
  if (filter.job_type && !filter.job_type.includes(job_type)) return false;
  if (filter.status && !filter.status.includes(status)) return false;
  if (filter.user_id && filter.user_id !== user_id) return false;
  return true;
}

// The tiles' numbers from a `counts` message ({as_of, counts: {status: {job_type: n}}},
// totals of the whole database) under `filter`: only the filtered job types count; the
// status filter leaves the tiles alone (they choose it). A user filter cannot be applied
// to totals by type: null, and the tiles count the jobs in view.
export function serverTotals(msg, filter = {}) {
  if (!msg || typeof msg.counts !== 'object' || msg.counts === null || filter.user_id) return null;
  const byStatus = {};
  const byType = {};
  for (const [status, types] of Object.entries(msg.counts)) {
    if (!types || typeof types !== 'object') continue;
    byType[status] = {};
    let sum = 0;
    for (const [type, n] of Object.entries(types)) {
      if (typeof n !== 'number' || (filter.job_type && !filter.job_type.includes(type))) continue;
      byType[status][type] = n;
      sum += n;
    }
    byStatus[status] = sum;
  }
  return { byStatus, byType, asOf: msg.as_of, types: filter.job_type ? filter.job_type.join(', ') : '' };
}

export class JobStore {
  // capacity: the most jobs kept; beyond it the least recently changed are forgotten
  // (and the counts say so).
  // trackChanges: false for a fold nobody draws (the timeline's), whose changed set
  // nobody would take.
  constructor({ capacity = 10000, trackChanges = true } = {}) {
    this.capacity = capacity;
    this.trackChanges = trackChanges;
    this.filter = {};
    this.jobs = new Map();
    this.counts = Object.fromEntries(STATUSES.map((s) => [s, 0]));
    this.other = 0;            // rows whose status is none of STATUSES (attached tables)
    this.partial = false;      // the snapshot was cut at the server's limit, or rows were evicted
    this.seq = 0;              // bumps on every change: the view redraws when it moved
    this.changed = new Set();  // keys changed since the view last took them
    this.lastEventId = 0;
    this.events = 0;
  }

  get size() { return this.jobs.size; }

  // Replaces everything with a snapshot: rows of reactor.scheduled_jobs, newest
  // `updated_at` first. `limit`: the server's cap, reached = the view is partial.
  reset(rows, { filter = this.filter, limit = Infinity } = {}) {
    this.filter = filter;
    this.jobs.clear();
    for (const s of STATUSES) this.counts[s] = 0;
    this.other = 0;
    this.changed.clear();
    this.partial = rows.length >= limit;
    for (let i = rows.length - 1; i >= 0; i--) {
      const r = rows[i];
      if (!r || r.id === undefined || r.id === null) continue;
      // The job's newest event as the snapshot saw it (servers before it was sent: none).
      const last = r.last_event && typeof r.last_event === 'object' ? r.last_event : {};
      const text = (v) => (typeof v === 'string' ? v : null);
      const row = {
        key: jobKey(DEFAULT_SOURCE, String(r.id)),
        id: String(r.id),
        source: DEFAULT_SOURCE,
        type: r.job_type ?? null,
        user: r.user_id ?? null,
        status: r.status ?? null,
        progress: r.progress_percent ?? null,
        message: r.progress_message ?? null,
        attempt: typeof last.attempt === 'number' ? last.attempt : null,  // not a column
        error: asText(r.last_error),
        scheduledFor: r.scheduled_for ?? null,
        updated: r.updated_at ?? null,
        cause: text(last.cause),
        actor: text(last.actor),
        action: text(last.action),
        // Events at or below it are already in the row: a repeat delivered later is stale.
        eventId: typeof last.id === 'number' ? last.id : 0,
      };
      this.insert(row);
    }
    this.evict();
    this.seq++;
  }

  // Applies one event (docs/events.md). Returns what happened: 'upsert', 'remove',
  // 'stale' (a repeat or older than the row), 'ignored' (no job, or outside the filter).
  apply(ev) {
    if (typeof ev.id === 'number' && ev.id > this.lastEventId) this.lastEventId = ev.id;
    this.events++;
    if (ev.job_id === undefined || ev.job_id === null) return 'ignored';
    const key = jobKey(ev.source, String(ev.job_id));
    const row = this.jobs.get(key);
    // Per job, ids grow in commit order, so an id at or below the row's is a repeat
    // (a resume may send some again).
    if (row && row.eventId && typeof ev.id === 'number' && ev.id <= row.eventId) return 'stale';
    if (!matches(this.filter, ev)) {
      // A job that left the filtered statuses: its row goes.
      if (row) {
        this.remove(key);
        this.seq++;
        return 'remove';
      }
      return 'ignored';
    }
    const next = row ? { ...row } : {
      key, id: String(ev.job_id), source: ev.source || DEFAULT_SOURCE, eventId: 0,
      type: null, user: null, status: null, progress: null, message: null, attempt: null,
      error: null, scheduledFor: null, updated: null, cause: null, actor: null, action: null,
    };
    // Every event carries the job's whole state after the change, whatever its kind.
    if ('status' in ev) next.status = ev.status;
    if ('job_type' in ev) next.type = ev.job_type;
    if ('user_id' in ev) next.user = ev.user_id;
    if ('attempt' in ev) next.attempt = ev.attempt;
    if ('error' in ev) next.error = asText(ev.error);
    if ('scheduled_for' in ev) next.scheduledFor = ev.scheduled_for;
    if ('progress' in ev) next.progress = ev.progress;
    if ('message' in ev) next.message = ev.message;
    // The cause of the change (migration 006): worker, retry, schedule, timeout, expiry,
    // user (with the actor and the action) or sql. Older events have none: nothing shown.
    next.cause = typeof ev.cause === 'string' ? ev.cause : null;
    next.actor = typeof ev.actor === 'string' ? ev.actor : null;
    next.action = typeof ev.action === 'string' ? ev.action : null;
    next.kind = ev.kind;
    next.updated = ev.at ?? next.updated;
    if (typeof ev.id === 'number') next.eventId = ev.id;
    if (row) this.remove(key);
    this.insert(next);
    this.evict();
    this.seq++;
    return 'upsert';
  }

  // Replaces everything with a state the timeline kept (src/web/timeline.js): its rows
  // (shared, never modified: apply() makes a new row for every change) in the order of
  // their last change, the ones outside `filter` left out. Nothing flashes.
  load({ jobs, lastEventId = 0, events = 0, partial = false }, filter = this.filter) {
    this.filter = filter;
    this.jobs = new Map();
    for (const s of STATUSES) this.counts[s] = 0;
    this.other = 0;
    const all = Object.keys(filter).length === 0;
    for (const row of jobs.values()) {
      if (all || matches(filter, { job_type: row.type, status: row.status, user_id: row.user })) this.insert(row);
    }
    this.changed = new Set();
    this.lastEventId = lastEventId;
    this.events = events;
    this.partial = partial;
    this.seq++;
  }

  // What load() takes: this state, to be kept while this store goes on changing.
  save() {
    return { jobs: new Map(this.jobs), lastEventId: this.lastEventId, events: this.events, partial: this.partial };
  }

  // The `n` most recently changed rows, newest first.
  newest(n) {
    const out = [];
    const all = Array.from(this.jobs.values());
    for (let i = all.length - 1; i >= 0 && out.length < n; i--) out.push(all[i]);
    return out;
  }

  // Keys changed since the last call.
  takeChanged() {
    const c = this.changed;
    this.changed = new Set();
    return c;
  }

  insert(row) {
    this.jobs.set(row.key, row);
    if (this.trackChanges) this.changed.add(row.key);
    if (row.status in this.counts) this.counts[row.status]++;
    else this.other++;
  }

  remove(key) {
    const row = this.jobs.get(key);
    if (!row) return;
    this.jobs.delete(key);
    if (row.status in this.counts) this.counts[row.status]--;
    else this.other--;
  }

  evict() {
    while (this.jobs.size > this.capacity) {
      this.remove(this.jobs.keys().next().value);
      this.partial = true;
    }
  }
}
