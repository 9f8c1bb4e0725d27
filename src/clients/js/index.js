// reactor-client: the client side of reactor's WebSocket protocol (docs/protocol.md),
// for browsers and Node 20+. No dependencies. One connection, kept open by itself:
//
// - authenticates with an `auth` message (never a token in the URL) and, given
//   `refreshToken`, renews the token with another `auth` before it expires;
// - subscriptions with filters, a snapshot first or a resume with `since`;
// - after a drop it reconnects (any replica behind a load balancer) with exponential
//   backoff and jitter, and resumes every subscription from the last event it received;
// - events are de-duplicated by id (a resume may repeat events: docs/protocol.md);
// - a `gap` (history cannot fill the resume) re-snapshots the subscription.
//
// The WebSocket class, the timers, the clock and the random source are parameters, so
// that Node 20 (no global WebSocket: pass the `ws` package's class) and tests can drive it.

export const VERSION = '0.1.0';
export const BACKOFF_MIN_MS = 500;
export const BACKOFF_MAX_MS = 10000;
export const DEDUP_WINDOW = 65536;

// The WebSocket close codes the server uses (docs/protocol.md).
export const CloseCode = Object.freeze({
  NORMAL: 1000, GOING_AWAY: 1001, PROTOCOL_ERROR: 1002, INVALID_DATA: 1007,
  POLICY: 1008, TOO_BIG: 1009, INTERNAL: 1011, SLOW_CONSUMER: 1013,
});

// Does `event` pass `filter` (the server's rules: every key given must match; lists
// match any of their values; a user_id never matches a null user_id)?
export function matchesFilter(filter, event) {
  if (!filter) return true;
  const list = (v) => (Array.isArray(v) ? v : String(v).split(',').map((s) => s.trim()).filter(Boolean));
  if (filter.job_id !== undefined && event.job_id !== filter.job_id) return false;
  if (filter.user_id !== undefined && (event.user_id == null || event.user_id !== filter.user_id)) return false;
  if (filter.job_type !== undefined && !list(filter.job_type).includes(event.job_type)) return false;
  if (filter.status !== undefined && !list(filter.status).includes(event.status)) return false;
  return true;
}

// The `exp` claim of a JWT (seconds since the epoch), or null. Not a verification.
export function tokenExpiry(token) {
  try {
    const part = String(token).split('.')[1];
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const pad = b64 + '='.repeat((4 - (b64.length % 4)) % 4);
    const text = typeof atob === 'function' ? atob(pad) : Buffer.from(pad, 'base64').toString('latin1');
    const exp = JSON.parse(text).exp;
    return Number.isFinite(exp) ? exp : null;
  } catch {
    return null;
  }
}

// A bounded set of recently seen ids: the oldest is forgotten first.
class IdWindow {
  constructor(size) { this.size = size; this.set = new Set(); }
  add(id) {
    if (this.set.has(id)) return false;
    this.set.add(id);
    if (this.set.size > this.size) this.set.delete(this.set.values().next().value);
    return true;
  }
  clear() { this.set.clear(); }
}

class Subscription {
  constructor(client, id, opts) {
    this.client = client;
    this.id = id;
    this.filter = opts.filter ?? {};
    this.wantSnapshot = Boolean(opts.snapshot);
    this.resnapshotOnGap = opts.resnapshotOnGap ?? true;
    this.onEvent = opts.onEvent ?? (() => {});
    this.onSnapshot = opts.onSnapshot ?? (() => {});
    this.onGap = opts.onGap ?? (() => {});
    this.onSubscribed = opts.onSubscribed ?? (() => {});
    // The resume cursor: the id of the last event received while this subscription was
    // live (a stream position, docs/protocol.md "Resume"); null = no base yet.
    this.cursor = opts.since ?? null;
    this.snapshotPending = false;
    this.subscribed = false;
    this.live = false;        // the cursor follows the connection's events
    // Ids this subscription has handed out: a resume repeats events (its own, or on
    // the connection those another subscription already had).
    this.seen = new IdWindow(client.dedupWindow);
    this.gaps = 0;
    this.snapshots = 0;
  }

  // The subscribe message for the current state: a snapshot when there is no base yet
  // (or one was asked for), else a resume from the cursor, else live from now.
  message() {
    const m = { op: 'subscribe', id: this.id, filter: this.filter };
    this.snapshotPending = false;
    if (this.wantSnapshot && this.cursor === null) {
      m.snapshot = true;
      this.snapshotPending = true;
      this.live = false;    // from its snapshot on
    } else if (this.cursor !== null) {
      m.since = this.cursor;
      this.live = false;    // from the server's answer on (events sent before it are older)
    } else {
      this.live = true;     // live from now: any event after this message is a position
    }
    return m;
  }

  // Takes a fresh snapshot now (and on reconnects until it has arrived).
  resnapshot() {
    this.wantSnapshot = true;
    this.cursor = null;
    this.client._send(this.message());
  }

  unsubscribe() { this.client.unsubscribe(this.id); }
}

export class ReactorClient {
  constructor({
    url, WebSocket = globalThis.WebSocket, token = null, refreshToken = null,
    refreshMarginMs = 30000, backoffMinMs = BACKOFF_MIN_MS, backoffMaxMs = BACKOFF_MAX_MS,
    jitter = 0.5, random = Math.random, dedupWindow = DEDUP_WINDOW,
    setTimeout = (fn, ms) => globalThis.setTimeout(fn, ms),
    clearTimeout = (t) => globalThis.clearTimeout(t), now = () => Date.now(),
    onState = () => {}, onEvent = () => {}, onWelcome = () => {}, onError = () => {},
    onAuthNeeded = () => {}, onClose = () => {}, maxRequests = 64, requestTimeoutMs = 15000,
  } = {}) {
    if (!url) throw new TypeError('reactor-client: url is required');
    if (typeof WebSocket !== 'function') {
      throw new TypeError('reactor-client: no WebSocket implementation (Node 20: pass the `ws` package\'s WebSocket)');
    }
    Object.assign(this, {
      url, WebSocket, token, refreshToken, refreshMarginMs, backoffMinMs, backoffMaxMs, jitter,
      random, setTimeout, clearTimeout, now, onState, onEvent, onWelcome, onError, onAuthNeeded, onClose,
    });
    this.subs = new Map();
    this.dedupWindow = dedupWindow;
    this.seen = new IdWindow(dedupWindow);
    this.ws = null;
    this.state = 'idle';
    this.attempt = 0;           // failed connection attempts since the last success
    this.retryAt = 0;
    this.retryTimer = null;
    this.refreshTimer = null;
    this.stopped = true;
    this.authNeeded = false;
    this.connections = 0;
    this.lastEventId = null;    // the last event received (any subscription)
    this.server = null;
    this.stats = { events: 0, duplicates: 0, gaps: 0, snapshots: 0, reconnects: 0, refreshes: 0 };
    // Requests awaiting their answer (action, history), by id; at most `maxRequests`.
    this.requests = new Map();
    this.maxRequests = maxRequests;
    this.requestTimeoutMs = requestTimeoutMs;
    this.nextRequest = 0;
    this.onCounts = null;   // set by watchCounts()
  }

  // An operator's action on a job (docs/protocol.md, "Actions"): resolves with the `ack`
  // ({event_id, …}); rejects with an Error whose `code` is the server's (forbidden,
  // not_found, conflict, bad_request, unavailable) or `closed` when the connection went
  // before the answer (the action may have been done: its event says so).
  action(action, jobId, arg = undefined) {
    const m = { op: 'action', action, job_id: String(jobId) };
    if (arg !== undefined) m.arg = String(arg);
    return this._request(m);
  }

  // A job's events, newest first (docs/protocol.md, "A job's history"): resolves with
  // {events, more}; the next page is `history(jobId, {before: last id})`.
  history(jobId, { before, limit, source } = {}) {
    const m = { op: 'history', job_id: String(jobId) };
    if (before !== undefined) m.before = before;
    if (limit !== undefined) m.limit = limit;
    if (source !== undefined) m.source = source;
    return this._request(m);
  }

  // The totals by status × job type (docs/protocol.md, "Counts"): `onCounts(message)` on
  // each `counts` message, asked again on every connection. null stops them.
  watchCounts(onCounts) {
    const was = this.onCounts;
    this.onCounts = onCounts || null;
    if (this.onCounts) this._send({ op: 'counts' });
    else if (was) this._send({ op: 'counts', on: false });
  }

  _request(m) {
    if (!this.isOpen() || this.authNeeded) {
      return Promise.reject(Object.assign(new Error('not connected'), { code: 'closed' }));
    }
    if (this.requests.size >= this.maxRequests) {
      return Promise.reject(Object.assign(new Error(`more than ${this.maxRequests} requests waiting`), { code: 'busy' }));
    }
    const id = `r${++this.nextRequest}`;
    return new Promise((resolve, reject) => {
      const timer = this.setTimeout(() => {
        if (!this.requests.delete(id)) return;
        reject(Object.assign(new Error(`no answer in ${this.requestTimeoutMs / 1000} s`), { code: 'timeout', id }));
      }, this.requestTimeoutMs);
      this.requests.set(id, { resolve, reject, timer });
      this._send({ ...m, id });
    });
  }

  // The request `id` answered: its timer stopped, its entry gone (undefined: not ours, or
  // answered already / timed out).
  _takeRequest(id) {
    const r = id !== undefined ? this.requests.get(id) : undefined;
    if (!r) return undefined;
    this.requests.delete(id);
    this.clearTimeout(r.timer);
    return r;
  }

  _failRequests(why) {
    const waiting = [...this.requests.entries()];
    this.requests.clear();
    for (const [id, r] of waiting) {
      this.clearTimeout(r.timer);
      r.reject(Object.assign(new Error(why), { code: 'closed', id }));
    }
  }

  start() {
    if (!this.stopped) return this;
    this.stopped = false;
    this._connect();
    return this;
  }

  stop(code = 1000, reason = 'bye') {
    this.stopped = true;
    this._clearTimers();
    this._failRequests('client stopped');
    const ws = this.ws;
    this.ws = null;
    if (ws) { try { ws.close(code, reason); } catch { /* already closing */ } }
    this._setState('idle');
  }

  isOpen() { return this.ws !== null && this.ws.readyState === 1; }

  // Opens (or replaces) subscription `id`. Options: filter, snapshot (take one first),
  // since (resume from this event id), resnapshotOnGap (default true), onEvent(event),
  // onSnapshot(message), onGap(message), onSubscribed(message).
  subscribe(id, opts = {}) {
    const sub = new Subscription(this, String(id), opts);
    this.subs.set(sub.id, sub);
    if (this.isOpen() && !this.authNeeded) this._send(sub.message());
    return sub;
  }

  unsubscribe(id) {
    if (!this.subs.delete(String(id))) return;
    this._send({ op: 'unsubscribe', id: String(id) });
  }

  subscription(id) { return this.subs.get(String(id)); }

  // A new token: sent at once on an open connection (an `auth` renewal), used on every
  // connection after. After a 1008 close it reconnects.
  setToken(token) {
    this.token = token || null;
    const wasNeeded = this.authNeeded;
    this.authNeeded = false;
    if (this.isOpen()) {
      if (this.token) this._send({ op: 'auth', token: this.token });
      if (wasNeeded) for (const s of this.subs.values()) this._send(s.message());
      this._armRefresh();
    } else if (this.state !== 'connecting' && !this.stopped) {
      this.reconnectNow();
    }
  }

  reconnectNow() {
    this._clearTimers();
    this.attempt = 0;
    this._connect();
  }

  // The delay before reconnect attempt `attempt` (0-based): doubling from the minimum
  // to the maximum, less up to `jitter` of it at random, so that clients dropped
  // together (a replica going away) do not all come back in the same instant.
  backoffDelay(attempt) {
    const base = Math.min(this.backoffMaxMs, this.backoffMinMs * 2 ** Math.min(attempt, 30));
    return Math.round(base * (1 - this.jitter * this.random()));
  }

  _connect() {
    if (this.stopped) return;
    this._clearTimers();
    this._setState('connecting');
    let ws;
    try {
      ws = new this.WebSocket(this.url);
    } catch (e) {
      this.onError(`cannot connect: ${e && e.message ? e.message : e}`);
      this._scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.connections++;
    if (this.connections > 1) this.stats.reconnects++;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this._setState('open');
      if (this.token) this._send({ op: 'auth', token: this.token });
      for (const s of this.subs.values()) { s.subscribed = false; this._send(s.message()); }
      if (this.onCounts) this._send({ op: 'counts' });
      this._armRefresh();
    };
    ws.onmessage = (m) => {
      if (ws !== this.ws) return;
      let msg;
      try {
        msg = JSON.parse(typeof m.data === 'string' ? m.data : String(m.data));
      } catch {
        this.onError('unreadable message from the server');
        return;
      }
      this._handle(msg);
    };
    ws.onclose = (e) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this._clearTimers();
      this._failRequests('connection closed before the answer');
      for (const s of this.subs.values()) { s.subscribed = false; s.snapshotPending = false; s.live = false; }
      const code = e && typeof e.code === 'number' ? e.code : 1006;
      const reason = (e && e.reason) || '';
      this.onClose({ code, reason });
      if (code !== 1000) this.onError(`connection closed (${code}${reason ? `: ${reason}` : ''})`);
      if (code === CloseCode.POLICY) {
        // The token was refused or has expired: a new one, or wait for setToken().
        if (this.refreshToken && !this.refreshing) {
          this._refresh().then((ok) => {
            if (ok && !this.stopped && this.ws === null) this._scheduleReconnect();
            else if (!ok) this._needAuth(reason || 'the server refused the token');
          });
          return;
        }
        this._needAuth(reason || 'the server refused the token');
        return;
      }
      this._scheduleReconnect();
    };
    ws.onerror = () => {};  // onclose follows with the code
  }

  _needAuth(why) {
    this.authNeeded = true;
    this.onAuthNeeded(why);
    this._setState('auth');
  }

  _scheduleReconnect() {
    if (this.stopped) return;
    const delay = this.backoffDelay(this.attempt);
    this.attempt++;
    this.retryAt = this.now() + delay;
    this._setState('reconnecting');
    this.retryTimer = this.setTimeout(() => { this.retryTimer = null; this._connect(); }, delay);
  }

  // Renews the token `refreshMarginMs` before its exp (at the latest half-way through
  // what is left of it) with an `auth` message on the open connection.
  _armRefresh() {
    if (this.refreshTimer !== null) { this.clearTimeout(this.refreshTimer); this.refreshTimer = null; }
    if (!this.refreshToken || !this.token) return;
    const exp = tokenExpiry(this.token);
    if (exp === null) return;
    const left = exp * 1000 - this.now();
    const delay = Math.max(0, left - Math.min(this.refreshMarginMs, left / 2));
    this.refreshTimer = this.setTimeout(async () => {
      this.refreshTimer = null;
      if (await this._refresh() && this.isOpen()) {
        this._send({ op: 'auth', token: this.token });
        this._armRefresh();
      }
    }, delay);
  }

  async _refresh() {
    this.refreshing = true;
    try {
      const t = await this.refreshToken();
      if (!t) return false;
      this.token = t;
      this.stats.refreshes++;
      return true;
    } catch (e) {
      this.onError(`token refresh failed: ${e && e.message ? e.message : e}`);
      return false;
    } finally {
      this.refreshing = false;
    }
  }

  _clearTimers() {
    if (this.retryTimer !== null) this.clearTimeout(this.retryTimer);
    if (this.refreshTimer !== null) this.clearTimeout(this.refreshTimer);
    this.retryTimer = null;
    this.refreshTimer = null;
  }

  _send(obj) {
    if (this.isOpen()) this.ws.send(JSON.stringify(obj));
  }

  _handle(msg) {
    switch (msg.type) {
      case 'welcome':
        this.server = msg.server ?? null;
        if (this.subs.size === 0) this._connected();
        this.onWelcome(msg);
        return;
      case 'subscribed': {
        const s = this.subs.get(msg.id);
        if (!s) return;
        s.subscribed = true;
        if (!s.snapshotPending) {
          // Live from now: the stream position to resume from is the server's last event.
          if (s.cursor === null && typeof msg.last_event_id === 'number') s.cursor = msg.last_event_id;
          s.live = true;
        }
        this._connected();
        s.onSubscribed(msg);
        return;
      }
      case 'snapshot': {
        const s = this.subs.get(msg.id);
        if (!s) return;
        s.snapshotPending = false;
        s.live = true;
        s.cursor = typeof msg.as_of === 'number' ? msg.as_of : (this.lastEventId ?? 0);
        s.snapshots++;
        this.stats.snapshots++;
        s.onSnapshot(msg);
        return;
      }
      case 'event':
        this._event(msg.event);
        return;
      case 'gap': {
        this.stats.gaps++;
        const s = this.subs.get(msg.id);
        if (!s) return;
        s.gaps++;
        s.onGap(msg);
        if (s.resnapshotOnGap) s.resnapshot();
        return;
      }
      case 'error': {
        const r = this._takeRequest(msg.id);
        if (r) {
          r.reject(Object.assign(new Error(msg.message), { code: msg.code, id: msg.id }));
          return;
        }
        this._error(msg);
        return;
      }
      case 'ack':
      case 'history': {
        const r = this._takeRequest(msg.id);
        if (r) r.resolve(msg);
        return;
      }
      case 'counts':
        if (this.onCounts) this.onCounts(msg);
        return;
      default:
        return;  // unsubscribed, pong, and anything newer
    }
  }

  _connected() {
    if (this.state === 'live') return;
    this.attempt = 0;
    this._setState('live');
  }

  // De-duplication is by id, for the client's onEvent and for each subscription's: a
  // repeat (after a resume) is dropped; it still is a stream position.
  _event(ev) {
    if (!ev || typeof ev !== 'object') return;
    const hasId = typeof ev.id === 'number';
    if (!hasId || this.seen.add(ev.id)) {
      if (hasId) this.lastEventId = ev.id;
      this.stats.events++;
      this.onEvent(ev);
    } else {
      this.stats.duplicates++;
    }
    for (const s of this.subs.values()) {
      if (s.snapshotPending) continue;  // the server holds its events until the snapshot
      if (!matchesFilter(s.filter, ev)) continue;
      if (hasId && !s.seen.add(ev.id)) continue;
      s.onEvent(ev);
    }
    if (hasId) this._advance(ev.id);
  }

  _advance(id) {
    for (const s of this.subs.values()) if (s.live) s.cursor = id;
  }

  _error(msg) {
    this.onError(`${msg.code}: ${msg.message}`, msg);
    if (msg.code === 'forbidden' && /^authenticate first/.test(msg.message || '')) {
      this._needAuth(msg.message);
      return;
    }
    // A snapshot the server could not take (its database is away): ask again after a
    // backoff. A replaying reactor has none to give: the application decides (onError).
    if (/snapshot/.test(msg.message || '') && !/replay/.test(msg.message || '')) {
      const pending = [...this.subs.values()].filter((s) => s.snapshotPending);
      if (pending.length === 0) return;
      const delay = this.backoffDelay(this.attempt);
      this.setTimeout(() => {
        for (const s of pending) if (this.subs.get(s.id) === s && s.cursor === null && this.isOpen()) this._send(s.message());
      }, delay);
    }
  }

  _setState(s) {
    if (this.state === s) return;
    this.state = s;
    this.onState(s, this);
  }
}

export default ReactorClient;
