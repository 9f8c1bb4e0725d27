// A job's timeline, opened by a click on its row (docs/dashboard.md, "A job's
// timeline"): every event of the job, newest first, with the time each attempt ran; the
// operator's actions. Live: pages from the `history` op ("older"), then the job's events
// as they come. Replay: the job's events up to the scrubber, from the page's timeline.

import { jobKey } from './store.js';
import { formatTime, causeText } from './view.js';
import { mergeEvents, runDurations, formatDuration, changeText } from './jobhistory.js';

export const PAGE = 100;  // events per history request (the server's default; its max is 500)

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

export class JobPanel {
  constructor({ client, timeline, store, root = document }) {
    Object.assign(this, { client, timeline, store });
    this.$ = (id) => root.getElementById(id);
    this.job = null;          // { key, id, source }
    this.events = [];
    this.more = false;
    this.loading = false;
    this.limit = PAGE;        // replay: how many are shown
    this.generation = 0;      // answers for a job no longer shown are dropped
    this.onClose = () => {};
    this.$('p-close').addEventListener('click', () => this.close());
    this.$('p-older').addEventListener('click', () => this.older());
    for (const b of this.$('p-actions').querySelectorAll('button[data-action]')) {
      b.addEventListener('click', () => this.act(b.dataset.action));
    }
    document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && this.job) this.close(); });
  }

  get replay() { return this.client.mode === 'replay'; }

  open({ id, source }) {
    this.generation++;
    this.job = { id, source: source || 'scheduled_jobs', key: jobKey(source, id) };
    this.events = [];
    this.more = false;
    this.limit = PAGE;
    this.result('');
    // Below the header and the timeline bar.
    this.$('panel').style.top = `${Math.max(0, this.$('main').getBoundingClientRect().top)}px`;
    this.$('panel').hidden = false;
    this.$('panel').dataset.job = id;
    document.body.classList.add('with-panel');
    // Actions need the database, and act on reactor.scheduled_jobs.
    this.$('p-actions').hidden = this.replay || this.job.source !== 'scheduled_jobs';
    if (this.replay) this.fromTimeline();
    else this.load();
    this.draw();
  }

  close() {
    this.generation++;
    const was = this.job;
    this.job = null;
    this.$('panel').hidden = true;
    delete this.$('panel').dataset.job;
    document.body.classList.remove('with-panel');
    if (was) this.onClose();
  }

  // ---- live: the history op, then the stream ----

  async load(before) {
    const job = this.job;
    const gen = this.generation;
    this.loading = true;
    this.state('loading…');
    const reply = await this.client.history(job.id, { before, limit: PAGE, source: job.source });
    if (gen !== this.generation) return;
    this.loading = false;
    if (reply.type === 'error') {
      this.state(`history: ${reply.code}: ${reply.message}`, 'error');
    } else {
      this.events = mergeEvents(this.events, Array.isArray(reply.events) ? reply.events : []);
      this.more = Boolean(reply.more);
      this.state('');
    }
    this.draw();
  }

  older() {
    if (this.replay) {
      this.limit += PAGE;
      this.fromTimeline();
      return;
    }
    const ids = this.events.map((e) => e.id).filter((id) => typeof id === 'number');
    if (ids.length && !this.loading) this.load(Math.min(...ids));
  }

  // An event of the live stream.
  live(ev) {
    if (!this.job || this.replay || ev.job_id === undefined || ev.job_id === null) return;
    if (jobKey(ev.source, String(ev.job_id)) !== this.job.key) return;
    this.events = mergeEvents(this.events, [ev]);
    this.draw();
  }

  // ---- replay: the page's timeline up to the scrubber ----

  fromTimeline() {
    if (!this.job || !this.replay) return;
    const pos = this.store.position ?? this.timeline.end;
    const list = this.timeline.jobEvents(this.job.key, pos, this.limit + 1);
    this.more = list.length > this.limit;
    this.events = list.slice(0, this.limit);
    this.state(this.events.length ? '' : 'no event of this job up to this point of the replay');
    this.draw();
  }

  // ---- actions ----

  async act(action) {
    if (!this.job || this.replay) return;
    const job = this.job;
    const gen = this.generation;
    const arg = action === 'set_priority' ? this.$('p-priority').value : undefined;
    const buttons = this.$('p-actions').querySelectorAll('button');
    for (const b of buttons) b.disabled = true;
    this.result(`${action}…`, 'pending');
    const reply = await this.client.action(action, job.id, arg);
    for (const b of buttons) b.disabled = false;
    if (gen !== this.generation) return;
    if (reply.type === 'ack') {
      this.result(`${action}${arg ? ` ${arg}` : ''}: done${typeof reply.event_id === 'number' ? ` (event ${reply.event_id})` : ''}`, 'ack');
    } else {
      this.result(`${action}: ${reply.code}: ${reply.message}`, 'error');
    }
  }

  result(text, kind = '') {
    const r = this.$('p-result');
    r.textContent = text;
    r.dataset.kind = kind;
    r.hidden = !text;
  }

  state(text, kind = '') {
    const s = this.$('p-state');
    s.textContent = text;
    s.dataset.kind = kind;
    s.hidden = !text;
  }

  // ---- drawing ----

  draw() {
    if (!this.job) return;
    const row = this.store.jobs.get(this.job.key);
    const newest = this.events[0];
    const status = row?.status ?? newest?.status ?? null;
    this.$('p-id').textContent = this.job.id;
    this.$('p-id').title = this.job.source === 'scheduled_jobs' ? this.job.id : `${this.job.source}: ${this.job.id}`;
    const badge = this.$('p-status');
    badge.textContent = status ?? '?';
    badge.className = `badge s-${status ?? 'unknown'}`;
    const type = row?.type ?? newest?.job_type ?? '';
    const user = row?.user ?? newest?.user_id ?? '';
    const meta = [type, user && `user ${user}`, newest?.priority && `priority ${newest.priority}`,
      newest && newest.enabled === false ? 'disabled' : ''].filter(Boolean).join(' · ');
    this.$('p-meta').textContent = meta;
    const durations = runDurations(this.events);
    const list = this.$('p-events');
    const items = [];
    for (const ev of this.events) {
      const li = el('li', `ev s-${ev.status ?? 'unknown'}`);
      if (typeof ev.id === 'number') li.dataset.id = String(ev.id);
      li.dataset.kind = ev.kind ?? '';
      const time = el('span', 'e-time', formatTime(ev.at, { millis: true }));
      time.title = `${ev.at ?? ''}${typeof ev.id === 'number' ? ` · event ${ev.id}` : ''}`;
      const head = el('div', 'e-head');
      head.append(time, el('span', 'e-change', changeText(ev)));
      const { text, title } = causeText(ev);
      if (text) {
        const c = el('span', `cause k-${ev.cause}`, text);
        c.title = title;
        head.append(c);
      }
      li.append(head);
      const facts = [];
      if (ev.attempt !== null && ev.attempt !== undefined) facts.push(el('span', 'e-attempt', `attempt ${ev.attempt}`));
      if (ev.kind !== 'progress' && typeof ev.progress === 'number') facts.push(el('span', 'e-progress', `${ev.progress}%`));
      const d = typeof ev.id === 'number' ? durations.get(ev.id) : undefined;
      if (d !== undefined) facts.push(el('span', 'e-dur', `ran ${formatDuration(d)}`));
      if (ev.error !== null && ev.error !== undefined) {
        const text = typeof ev.error === 'string' ? ev.error : JSON.stringify(ev.error);
        const e = el('span', 'e-error', text);
        e.title = text;
        facts.push(e);
      }
      if (facts.length) {
        const f = el('div', 'e-facts');
        f.append(...facts);
        li.append(f);
      }
      items.push(li);
    }
    list.replaceChildren(...items);
    this.$('p-older').hidden = !this.more;
    this.$('p-older').disabled = this.loading;
    this.$('p-count').textContent = `${this.events.length} event${this.events.length === 1 ? '' : 's'}${this.more ? ', older ones not loaded' : ''}`;
  }
}
