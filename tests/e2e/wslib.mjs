// WebSocket and HTTP clients for the end-to-end tests: the `ws` package for well-behaved
// clients, node:net with hand-built frames for everything a browser would never send.
import net from 'node:net';
import crypto from 'node:crypto';
import WebSocket from 'ws';
import { startReactor, sleep } from './lib.mjs';

export { WebSocket };

// `reactor serve` on a free port; resolves once it is caught up and listening.
export async function serve(url, args = [], opts = {}) {
  const proc = startReactor(['serve', '--database-url', url, '--listen', '127.0.0.1:0',
    '--no-scheduler', ...args], opts);
  await proc.waitFor(/listening on 127\.0\.0\.1:\d+/, 20000, true);
  proc.port = Number(proc.stderr.match(/listening on 127\.0\.0\.1:(\d+)/)[1]);
  await proc.ready;
  return proc;
}

// HS256 JWT signed with node:crypto (independent of the server's libjwt).
export function signJwt(claims, secret, { alg = 'HS256', typ = 'JWT' } = {}) {
  const b64 = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
  const head = b64({ alg, typ });
  const body = b64(claims);
  const sig = crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}
export const nowS = () => Math.floor(Date.now() / 1000);

// A `ws` client that records every message (parsed) and how the connection ended.
export class Client {
  constructor(port, { path = '/ws', headers = {}, ...options } = {}) {
    this.messages = [];
    this.waiters = [];
    this.closed = null;
    this.ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers, ...options });
    this.ws.on('message', (data, isBinary) => {
      const text = data.toString();
      let m;
      try { m = JSON.parse(text); } catch { m = { unparsed: text, isBinary }; }
      m.receivedAt = performance.now();
      this.messages.push(m);
      for (const w of [...this.waiters]) {
        if (w.pred(m)) { this.waiters.splice(this.waiters.indexOf(w), 1); w.resolve(m); }
      }
    });
    this.closedPromise = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => { this.closed = { code, reason: reason.toString() }; resolve(this.closed); });
    });
    this.ws.on('error', (e) => { this.error = e; });
    this.unexpected = new Promise((resolve) => this.ws.on('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    }));
    this.opened = new Promise((resolve, reject) => {
      this.ws.on('open', resolve);
      this.ws.on('error', reject);
      this.ws.on('unexpected-response', () => reject(new Error('unexpected response')));
    });
    this.opened.catch(() => {});  // a refusal is read through `unexpected`
  }

  static async open(port, opts) {
    const c = new Client(port, opts);
    await c.opened;
    await c.next((m) => m.type === 'welcome');
    return c;
  }

  send(obj) { this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj)); }

  // The first message (already received or to come) matching `pred`.
  next(pred, ms = 15000, what = 'a message') {
    const have = this.messages.find(pred);
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve: (m) => { clearTimeout(t); resolve(m); } };
      const t = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`timeout waiting for ${what}; last messages: ${JSON.stringify(this.messages.slice(-5))}`));
      }, ms);
      this.waiters.push(w);
    });
  }
  // The next message matching `pred` among those received after this call.
  after(pred, ms, what) {
    const from = this.messages.length;
    return this.next((m) => this.messages.indexOf(m) >= from && pred(m), ms, what);
  }

  async subscribe(id, extra = {}) {
    this.send({ op: 'subscribe', id, ...extra });
    return this.after((m) => (m.type === 'subscribed' && m.id === id) || m.type === 'error', 15000, `subscribed ${id}`);
  }

  events() { return this.messages.filter((m) => m.type === 'event').map((m) => m.event); }
  eventIds() { return this.events().map((e) => e.id); }

  close(code = 1000) { this.ws.close(code); return this.closedPromise; }
  terminate() { this.ws.terminate(); return this.closedPromise; }
}

// ---- raw TCP ----

// A client frame built by hand: `mask: null` sends it unmasked; `length` overrides the
// announced payload length (the payload itself is sent as given).
export function frame(opcode, payload = Buffer.alloc(0), { fin = true, mask = crypto.randomBytes(4), length } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const len = length ?? data.length;
  const head = [(fin ? 0x80 : 0) | opcode];
  const m = mask ? 0x80 : 0;
  if (len < 126) head.push(m | len);
  else if (len < 65536) head.push(m | 126, len >> 8, len & 255);
  else {
    head.push(m | 127);
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(len));
    head.push(...b);
  }
  let body = data;
  if (mask) {
    head.push(...mask);
    body = Buffer.from(data.map((x, i) => x ^ mask[i % 4]));
  }
  return Buffer.concat([Buffer.from(head), body]);
}

// Server frames in `buf` (unmasked): [{opcode, payload, code?, reason?}], and the rest.
export function parseFrames(buf) {
  const out = [];
  let off = 0;
  while (buf.length - off >= 2) {
    const op = buf[off] & 0x0f;
    let len = buf[off + 1] & 0x7f;
    let p = off + 2;
    if (len === 126) { if (buf.length - p < 2) break; len = buf.readUInt16BE(p); p += 2; }
    else if (len === 127) { if (buf.length - p < 8) break; len = Number(buf.readBigUInt64BE(p)); p += 8; }
    if (buf.length - p < len) break;
    const payload = buf.subarray(p, p + len);
    const f = { opcode: op, payload };
    if (op === 8 && len >= 2) { f.code = payload.readUInt16BE(0); f.reason = payload.subarray(2).toString(); }
    if (op === 1) f.text = payload.toString();
    out.push(f);
    off = p + len;
  }
  return { frames: out, rest: buf.subarray(off) };
}

// A raw connection: collects bytes, knows when the peer ended.
export class Raw {
  constructor(port) {
    this.buf = Buffer.alloc(0);
    this.sock = net.connect(port, '127.0.0.1');
    this.sock.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.wake?.(); });
    this.ended = new Promise((resolve) => {
      this.sock.on('close', () => { this.isClosed = true; this.wake?.(); resolve(); });
    });
    this.sock.on('error', (e) => { this.error = e; });
    this.connected = new Promise((resolve, reject) => { this.sock.on('connect', resolve); this.sock.on('error', reject); });
  }
  static async open(port) { const r = new Raw(port); await r.connected; return r; }
  write(b) { return new Promise((resolve) => this.sock.write(b, () => resolve())); }
  // Waits until `fn(buf)` is truthy (or the socket closed, or the time ran out).
  async until(fn, ms = 10000) {
    const end = Date.now() + ms;
    while (!fn(this.buf) && !this.isClosed && Date.now() < end) {
      await new Promise((r) => { this.wake = r; setTimeout(r, 50); });
    }
    return fn(this.buf);
  }
  text() { return this.buf.toString('latin1'); }
  // Sends an upgrade request to `path` and waits for the end of the response head.
  async upgrade(path = '/ws', extraHeaders = '') {
    const key = crypto.randomBytes(16).toString('base64');
    await this.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extraHeaders}\r\n`);
    await this.until((b) => b.indexOf('\r\n\r\n') >= 0);
    const at = this.buf.indexOf('\r\n\r\n');
    const head = this.buf.subarray(0, at).toString('latin1');
    this.buf = this.buf.subarray(at + 4);
    return head;
  }
  frames() { return parseFrames(this.buf).frames; }
  // Waits for a server frame matching `pred`.
  async frame(pred, ms = 10000) {
    await this.until((b) => parseFrames(b).frames.some(pred), ms);
    return this.frames().find(pred);
  }
  destroy() { this.sock.destroy(); }
}

// One HTTP request on a new connection: {status, headers, body, raw}. The connection
// is closed after the response unless keepAlive. The default Host is a loopback name:
// without a secret the reactor answers no other (docs/security.md).
export async function http(port, method, path, { headers = {}, raw } = {}) {
  const r = await Raw.open(port);
  const h = Object.entries({ Host: '127.0.0.1', Connection: 'close', ...headers }).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  await r.write(raw ?? `${method} ${path} HTTP/1.1\r\n${h}\r\n`);
  await r.ended;
  return parseResponse(r.text());
}

export function parseResponse(text) {
  const at = text.indexOf('\r\n\r\n');
  if (at < 0) return { status: 0, raw: text };
  const lines = text.slice(0, at).split('\r\n');
  const status = Number(lines[0].split(' ')[1]);
  const headers = {};
  for (const l of lines.slice(1)) {
    const c = l.indexOf(':');
    headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
  }
  const len = Number(headers['content-length'] ?? 0);
  const body = text.slice(at + 4, at + 4 + len);
  return { status, headers, body, raw: text, rest: text.slice(at + 4 + len) };
}

// The value of one sample in /metrics (labels as written, e.g. 'source="history"').
export async function metric(port, name, labels = '') {
  const r = await http(port, 'GET', '/metrics');
  const key = labels ? `${name}{${labels}} ` : `${name} `;
  const line = r.body.split('\n').find((l) => l.startsWith(key));
  return line === undefined ? undefined : Number(line.slice(key.length));
}

// Inserts `n` jobs ('prefix_0'...) spread over `users` (null = no user).
export async function insertJobs(db, n, { prefix = 'job', users = [null], type = 'e2e' } = {}) {
  await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, user_id, frequency_type, frequency_config, enabled)
                  SELECT $1 || '_' || g, $2, ($3::text[])[1 + g % cardinality($3::text[])], 'once', '{}', false
                    FROM generate_series(0, $4 - 1) g`, [prefix, type, users, n]);
}

// Cycles the status of job ids (one statement, one event per job).
export async function bump(db, ids) {
  await db.query(`UPDATE reactor.scheduled_jobs SET status = CASE status WHEN 'pending' THEN 'running'
                    WHEN 'running' THEN 'completed' ELSE 'pending' END WHERE id = ANY($1)`, [ids]);
}

export async function maxEventId(db) {
  return Number((await db.query('SELECT coalesce(max(id), 0) AS m FROM reactor.job_events')).rows[0].m);
}

export { sleep };
