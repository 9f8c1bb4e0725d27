// The dashboard's side of the WebSocket protocol (CONTRACT section 5): one connection,
// kept open by itself, feeding a JobStore.
//
// - Subscription "jobs" carries the filter; it starts with a snapshot and resumes
//   with `since` = the last event id after a reconnect.
// - With a status filter, subscription "exits" carries the same filter with the other
//   statuses, so that a job leaving the filtered statuses leaves the table too.
// - A gap re-subscribes with a fresh snapshot and is reported (onGap).
// - While the server is away it retries after 0.5 s, doubling to 10 s.
// - A `forbidden` answer or a 1008 close means a token is needed (onAuthNeeded).
//
// The WebSocket class and the timers are parameters, so that tests can drive it.

import { STATUSES, matches } from './store.js';

export const BACKOFF_MIN_MS = 500;
export const BACKOFF_MAX_MS = 10000;
export const SNAPSHOT_LIMIT = 5000;  // the server's cap (src/hub)

export class Client {
  constructor({
    url, store, WebSocket = globalThis.WebSocket,
    setTimeout = (fn, ms) => globalThis.setTimeout(fn, ms),
    clearTimeout = (t) => globalThis.clearTimeout(t), now = () => Date.now(), token = null,
    onState = () => {}, onGap = () => {}, onAuthNeeded = () => {}, onEvent = () => {},
    onSnapshot = () => {}, onWelcome = () => {}, onError = () => {},
  }) {
    Object.assign(this, {
      url, store, WebSocket, setTimeout, clearTimeout, now, token,
      onState, onGap, onAuthNeeded, onEvent, onSnapshot, onWelcome, onError,
    });
    this.filter = store.filter;
    this.ws = null;
    this.state = 'idle';
    this.backoff = BACKOFF_MIN_MS;
    this.retryAt = 0;
    this.timer = null;
    this.snapshotTimer = null;
    this.snapshotBackoff = BACKOFF_MIN_MS;
    this.hasSnapshot = false;      // the store holds a snapshot this connection may resume
    this.snapshotPending = false;
    this.early = [];               // "exits" events that came before the snapshot
    this.authNeeded = false;
    this.stopped = false;
    this.connections = 0;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    this.clearTimers();
    if (this.ws) this.ws.close(1000, 'bye');
    this.ws = null;
    this.setState('idle');
  }

  setToken(token) {
    this.token = token || null;
    this.authNeeded = false;
    if (this.isOpen()) {
      if (this.token) this.send({ op: 'auth', token: this.token });
      this.subscribe({ fresh: !this.hasSnapshot });
    } else if (this.state !== 'connecting') {
      this.reconnectNow();
    }
  }

  // New filter: re-subscribe with it and a fresh snapshot.
  setFilter(filter) {
    this.filter = filter;
    this.hasSnapshot = false;
    if (this.isOpen() && !this.authNeeded) this.subscribe({ fresh: true });
  }

  isOpen() {
    return this.ws !== null && this.ws.readyState === 1;
  }

  reconnectNow() {
    this.clearTimers();
    this.backoff = BACKOFF_MIN_MS;
    this.connect();
  }

  connect() {
    if (this.stopped) return;
    this.clearTimers();
    this.setState('connecting');
    let ws;
    try {
      ws = new this.WebSocket(this.url);
    } catch (e) {
      this.onError(String(e));
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.connections++;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      if (this.token) this.send({ op: 'auth', token: this.token });
      this.subscribe({ fresh: !this.hasSnapshot });
    };
    ws.onmessage = (m) => {
      if (ws !== this.ws) return;
      let msg;
      try {
        msg = JSON.parse(m.data);
      } catch {
        this.onError('unreadable message from the server');
        return;
      }
      this.handle(msg);
    };
    ws.onclose = (e) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.snapshotPending = false;
      this.clearTimers();
      if (e.code !== 1000) this.onError(`connection closed (${e.code}${e.reason ? `: ${e.reason}` : ''})`);
      if (e.code === 1008) {
        // The token was refused or has expired: wait for a new one.
        this.authNeeded = true;
        this.onAuthNeeded(e.reason || 'the server refused the token');
        this.setState('auth');
        return;
      }
      this.scheduleReconnect();
    };
    ws.onerror = () => {};  // onclose follows with the code
  }

  scheduleReconnect() {
    if (this.stopped) return;
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    this.retryAt = this.now() + delay;
    this.setState('reconnecting');
    this.timer = this.setTimeout(() => { this.timer = null; this.connect(); }, delay);
  }

  clearTimers() {
    if (this.timer !== null) this.clearTimeout(this.timer);
    if (this.snapshotTimer !== null) this.clearTimeout(this.snapshotTimer);
    this.timer = null;
    this.snapshotTimer = null;
  }

  send(obj) {
    if (this.isOpen()) this.ws.send(JSON.stringify(obj));
  }

  // fresh: a new snapshot (first time, new filter, after a gap); else resume `since`.
  subscribe({ fresh }) {
    const f = this.filter;
    const since = this.store.lastEventId;
    if (fresh) {
      this.snapshotPending = true;
      this.early = [];
      this.send({ op: 'subscribe', id: 'jobs', filter: f, snapshot: true });
    } else {
      this.send({ op: 'subscribe', id: 'jobs', filter: f, since });
    }
    if (f.status) {
      const others = STATUSES.filter((s) => !f.status.includes(s));
      const exits = { ...f, status: others.length ? others : ['-'] };
      this.send(fresh ? { op: 'subscribe', id: 'exits', filter: exits }
                      : { op: 'subscribe', id: 'exits', filter: exits, since });
      this.exits = true;
    } else if (this.exits) {
      this.send({ op: 'unsubscribe', id: 'exits' });
      this.exits = false;
    }
  }

  handle(msg) {
    switch (msg.type) {
      case 'welcome':
        this.onWelcome(msg);
        return;
      case 'subscribed':
        if (msg.id === 'jobs') {
          this.backoff = BACKOFF_MIN_MS;
          this.setState(this.snapshotPending ? 'loading' : 'live');
        }
        return;
      case 'snapshot':
        if (msg.id !== 'jobs') return;
        this.applySnapshot(msg);
        return;
      case 'event':
        this.applyEvent(msg.event);
        return;
      case 'gap':
        this.onGap(msg);
        this.hasSnapshot = false;
        this.subscribe({ fresh: true });
        return;
      case 'error':
        this.handleError(msg);
        return;
      default:
        return;  // unsubscribed, pong, and anything newer
    }
  }

  applySnapshot(msg) {
    const early = this.early;
    this.early = [];
    this.store.reset(Array.isArray(msg.jobs) ? msg.jobs : [], { filter: this.filter, limit: SNAPSHOT_LIMIT });
    if (typeof msg.as_of === 'number' && msg.as_of > this.store.lastEventId) this.store.lastEventId = msg.as_of;
    // An "exits" event that overtook the snapshot counts only if it is newer than the
    // row the snapshot shows.
    for (const ev of early) {
      const row = this.store.jobs.get(this.keyOf(ev));
      if (!row) continue;
      const at = Date.parse(ev.at);
      const updated = Date.parse(row.updated);
      if (Number.isFinite(at) && Number.isFinite(updated) && at > updated) this.store.apply(ev);
    }
    this.snapshotPending = false;
    this.snapshotBackoff = BACKOFF_MIN_MS;
    this.hasSnapshot = true;
    this.setState('live');
    this.onSnapshot(msg);
  }

  keyOf(ev) {
    return `${ev.source || 'scheduled_jobs'}\u0000${ev.job_id}`;
  }

  applyEvent(ev) {
    if (!ev || typeof ev !== 'object') return;
    if (this.snapshotPending) {
      // Only "exits" events arrive now (the server holds "jobs" until its snapshot);
      // they are weighed against the snapshot once it is here.
      if (!matches(this.filter, ev)) this.early.push(ev);
      if (typeof ev.id === 'number' && ev.id > this.store.lastEventId) this.store.lastEventId = ev.id;
      return;
    }
    this.store.apply(ev);
    this.onEvent(ev);
  }

  handleError(msg) {
    if (this.snapshotPending && /replay/.test(msg.message || '')) {
      // A replaying reactor has no database to take snapshots from: follow the stream
      // from here, the table filling as events come.
      this.snapshotPending = false;
      this.early = [];
      this.store.reset([], { filter: this.filter });
      this.hasSnapshot = true;
      this.send({ op: 'subscribe', id: 'jobs', filter: this.filter });
      this.setState('live');
      return;
    }
    this.onError(`${msg.code}: ${msg.message}`);
    if (msg.code === 'forbidden') {
      this.authNeeded = true;
      this.snapshotPending = false;
      this.onAuthNeeded(msg.message);
      this.setState('auth');
      return;
    }
    if (this.snapshotPending && /snapshot/.test(msg.message || '')) {
      // The server could not take the snapshot (its database is away): ask again.
      const delay = this.snapshotBackoff;
      this.snapshotBackoff = Math.min(this.snapshotBackoff * 2, BACKOFF_MAX_MS);
      this.setState('waiting');
      this.snapshotTimer = this.setTimeout(() => {
        this.snapshotTimer = null;
        if (this.isOpen()) this.subscribe({ fresh: true });
      }, delay);
    }
  }

  setState(s) {
    this.state = s;
    this.onState(s, this);
  }
}
