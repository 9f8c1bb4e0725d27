// The dashboard's connection: the reactor-client package (src/clients/js/index.js,
// served at /clients/js/index.js from the same binary) feeding a JobStore. This file
// only adds what is the dashboard's own:
//
// - Subscription "jobs" carries the filter; it starts with a snapshot, and the package
//   resumes it with `since` after a reconnect and re-snapshots it after a gap.
// - With a status filter, subscription "exits" carries the same filter with the other
//   statuses, so that a job leaving the filtered statuses leaves the table too.
// - The header's states: connecting, loading (the snapshot), live, reconnecting,
//   waiting (the server could not take a snapshot), auth (a token is needed).
// - A replaying reactor (welcome `mode: "replay"`, or an older one refusing the snapshot
//   because it replays) has no snapshots: the page subscribes with `since: 0`, unfiltered,
//   and hands every event to the timeline (onReplayEvent), which filters and folds them
//   itself (src/web/timeline.js).
//
// The WebSocket class, the timers and the random source are parameters, so that tests
// can drive it.

import { ReactorClient, BACKOFF_MIN_MS, BACKOFF_MAX_MS } from '../clients/js/index.js';
import { STATUSES, matches } from './store.js';

export { BACKOFF_MIN_MS, BACKOFF_MAX_MS };
export const SNAPSHOT_LIMIT = 5000;  // the server's cap (src/hub)
export const PING_EVERY_MS = 5000;   // how often the header asks for this connection's queue
export const REQUEST_TIMEOUT_MS = 15000;
const COUNTS_ID = 'counts';          // echoed by the server's refusal

// The package's client, with the messages the dashboard handles itself (counts and
// their refusal, pong) handed to it first; history and action go through the package.
class Connection extends ReactorClient {
  _handle(msg) {
    if (this.onOther && this.onOther(msg)) return;
    super._handle(msg);
  }

  send(obj) {
    if (!this.isOpen()) return false;
    this._send(obj);
    return true;
  }
}

export class Client {
  constructor({
    url, store, WebSocket = globalThis.WebSocket,
    setTimeout = (fn, ms) => globalThis.setTimeout(fn, ms),
    clearTimeout = (t) => globalThis.clearTimeout(t), now = () => Date.now(), random = Math.random,
    token = null,
    onState = () => {}, onGap = () => {}, onAuthNeeded = () => {}, onEvent = () => {},
    onSnapshot = () => {}, onWelcome = () => {}, onError = () => {},
    onReplay = () => {}, onReplayEvent = () => {}, onReplayGap = () => {},
    onCounts = () => {}, onPong = () => {},
  }) {
    Object.assign(this, {
      store, onState, onGap, onAuthNeeded, onEvent, onSnapshot, onWelcome, onError, onReplay, onReplayEvent, onReplayGap,
      onCounts, onPong, setTimeout, clearTimeout, now,
    });
    this.counts = 'off';           // off | asked | on | refused (a user token, a replay, an older server)
    this.pingTimer = null;
    this.pingSent = 0;
    this.mode = 'live';            // 'replay' once the server said it replays a journal
    this.filter = store.filter;
    this.state = 'idle';
    this.early = [];               // "exits" events that came before the snapshot
    this.waiting = false;          // the last snapshot request was refused
    this.rc = new Connection({
      url, WebSocket, token, setTimeout, clearTimeout, now, random, requestTimeoutMs: REQUEST_TIMEOUT_MS,
      onClose: () => this.closed(),
      onState: (s) => this.drawState(s),
      onEvent: (ev) => this.applyEvent(ev),
      onWelcome: (m) => this.welcome(m),
      onError: (text, msg) => this.handleError(text, msg),
      onAuthNeeded: (why) => this.onAuthNeeded(why),
    });
    this.rc.onOther = (msg) => this.other(msg);
    this.subscribe();
  }

  get retryAt() { return this.rc.retryAt; }
  get connections() { return this.rc.connections; }
  get jobs() { return this.rc.subscription('jobs'); }

  start() { this.rc.start(); }
  stop() { this.rc.stop(1000, 'bye'); }
  setToken(token) { this.rc.setToken(token); }
  reconnectNow() { this.rc.reconnectNow(); }

  // New filter: re-subscribe with it and a fresh snapshot. In a replay the timeline
  // filters (it has every event): nothing to ask the server.
  setFilter(filter) {
    this.filter = filter;
    if (this.mode === 'replay') return;
    this.subscribe();
  }

  welcome(m) {
    if (m && m.mode === 'replay') this.enterReplay();
    // Whole-database counts: only a live server has them (a user token is refused).
    if (this.mode === 'live' && this.rc.send({ op: 'counts', id: COUNTS_ID })) this.counts = 'asked';
    else this.counts = 'refused';
    this.armPing();
    this.onWelcome(m);
  }

  // ---- requests answered by id: history, action (the package's) ----

  // The package's answer, or its refusal as a value the panel shows: {type: 'error',
  // code, message, id}; a closed connection reads `unavailable`.
  settle(request) {
    return request.then((m) => m, (e) => ({
      type: 'error', code: e.code === 'closed' ? 'unavailable' : (e.code || 'unavailable'), message: e.message, id: e.id,
    }));
  }

  history(jobId, { before, limit = 100, source } = {}) {
    return this.settle(this.rc.history(jobId, {
      before: typeof before === 'number' ? before : undefined,
      limit,
      source: source && source !== 'scheduled_jobs' ? source : undefined,
    }));
  }

  action(action, jobId, arg) { return this.settle(this.rc.action(action, jobId, arg)); }

  // The messages the package does not know. True: handled here.
  other(msg) {
    if (!msg || typeof msg !== 'object') return false;
    if (msg.type === 'counts') {
      this.counts = 'on';
      this.onCounts(msg);
      return true;
    }
    if (msg.type === 'pong') {
      this.onPong({ queueBytes: typeof msg.queue_bytes === 'number' ? msg.queue_bytes : null, rttMs: this.now() - this.pingSent });
      return true;
    }
    // A server without the op: no more pings on this connection.
    if (msg.type === 'error' && msg.id === undefined && /'ping'/.test(msg.message || '')) {
      if (this.pingTimer !== null) this.clearTimeout(this.pingTimer);
      this.pingTimer = null;
      this.onPong(null);
      return true;
    }
    // The refusal of {"op":"counts"}: a user's token (forbidden), a replay (unavailable),
    // or a server that does not know the op (its error carries no id). The page keeps
    // its own counts; not an error to show. "authenticate first" goes on to the package
    // (it asks for a token).
    if (msg.type === 'error' && this.counts === 'asked'
        && (msg.id === COUNTS_ID || (msg.id === undefined && /'counts'/.test(msg.message || '')))) {
      this.counts = 'refused';
      this.onCounts(null);
      return !/^authenticate first/.test(msg.message || '');
    }
    return false;
  }

  armPing() {
    if (this.pingTimer !== null) this.clearTimeout(this.pingTimer);
    this.pingTimer = this.setTimeout(() => {
      this.pingTimer = null;
      this.pingSent = this.now();
      if (this.rc.send({ op: 'ping' })) this.armPing();
    }, PING_EVERY_MS);
  }

  closed() {
    if (this.pingTimer !== null) this.clearTimeout(this.pingTimer);
    this.pingTimer = null;
    if (this.counts === 'on') this.onCounts(null);
    this.counts = 'off';
  }

  // The whole replay from its start (the server's history ring), every event.
  enterReplay() {
    if (this.mode === 'replay') return;
    this.mode = 'replay';
    this.early = [];
    this.waiting = false;
    if (this.rc.subscription('exits')) this.rc.unsubscribe('exits');
    this.rc.subscribe('jobs', {
      filter: {}, since: 0,
      // No snapshot to fall back on: the timeline starts where the server's ring did.
      resnapshotOnGap: false,
      onGap: (m) => this.onReplayGap(m),
      onSubscribed: () => this.drawState(this.rc.state),
    });
    this.onReplay();
    this.drawState(this.rc.state);
  }

  subscribe() {
    const f = this.filter;
    this.early = [];
    this.rc.subscribe('jobs', {
      filter: f, snapshot: true,
      onSnapshot: (m) => this.applySnapshot(m),
      onGap: (m) => this.onGap(m),
      onSubscribed: () => this.drawState(this.rc.state),
    });
    if (f.status) {
      const others = STATUSES.filter((s) => !f.status.includes(s));
      this.rc.subscribe('exits', {
        filter: { ...f, status: others.length ? others : ['-'] },
        // A gap here may have lost a job's exit: the table is reloaded instead.
        resnapshotOnGap: false,
        onGap: (m) => { this.onGap(m); this.resnapshot(); },
      });
    } else if (this.rc.subscription('exits')) {
      this.rc.unsubscribe('exits');
    }
  }

  resnapshot() {
    this.early = [];
    this.jobs?.resnapshot();
  }

  applySnapshot(msg) {
    const early = this.early;
    this.early = [];
    this.waiting = false;
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
    this.drawState(this.rc.state);
    this.onSnapshot(msg);
  }

  keyOf(ev) {
    return `${ev.source || 'scheduled_jobs'}\u0000${ev.job_id}`;
  }

  // Every event once (the package de-duplicates by id).
  applyEvent(ev) {
    if (this.mode === 'replay') {
      this.onReplayEvent(ev);
      return;
    }
    if (this.jobs?.snapshotPending) {
      // Only "exits" events arrive now (the server holds "jobs" until its snapshot);
      // they are weighed against the snapshot once it is here.
      if (!matches(this.filter, ev)) this.early.push(ev);
      if (typeof ev.id === 'number' && ev.id > this.store.lastEventId) this.store.lastEventId = ev.id;
      return;
    }
    this.store.apply(ev);
    this.onEvent(ev);
  }

  handleError(text, msg) {
    if (msg && /replay/.test(msg.message || '') && (this.mode === 'replay' || this.jobs?.snapshotPending)) {
      // A replaying reactor has no database to take snapshots from (a server that says
      // so in its welcome gets this answer to the first subscription too).
      this.enterReplay();
      return;
    }
    this.onError(text);
    if (msg && this.jobs?.snapshotPending && /snapshot/.test(msg.message || '')) {
      // The package asks again after a backoff.
      this.waiting = true;
      this.drawState(this.rc.state);
    }
  }

  // The package's state, with the dashboard's own: loading and waiting.
  drawState(s) {
    let st = s;
    if (s === 'open') st = 'connecting';
    if (s === 'live' || s === 'open') {
      if (this.jobs?.snapshotPending) st = this.waiting ? 'waiting' : 'loading';
      else if (this.jobs?.subscribed || this.jobs?.snapshots > 0 || this.jobs?.live) st = 'live';
    }
    if (st === this.state) return;
    this.state = st;
    this.onState(st, this);
  }
}
