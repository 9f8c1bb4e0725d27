// Helpers for the adversarial tests (adv_*.test.mjs): the reactor's resident memory,
// /healthz timing, and raw sockets that never read what the server sends.
import net from 'node:net';
import crypto from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { sleep } from './lib.mjs';
import { frame } from './wslib.mjs';

export const MiB = 1024 * 1024;

// Resident set size of `pid` in bytes (VmRSS of /proc/PID/status).
export function rss(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)\s+kB/m);
  return m ? Number(m[1]) * 1024 : NaN;
}

// Milliseconds for GET /healthz on a new connection to answer 200; `limit` when it has
// not within `limit` ms.
export async function healthzMs(port, limit = 1000) {
  const t0 = performance.now();
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => {});
  let buf = '';
  const answered = new Promise((resolve) => {
    sock.on('data', (d) => { buf += d; if (buf.startsWith('HTTP/1.1 200') && buf.includes('alive')) resolve(true); });
    sock.on('close', () => resolve(false));
  });
  sock.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
  const ok = await Promise.race([answered, sleep(limit).then(() => false)]);
  sock.destroy();
  return ok ? performance.now() - t0 : limit;
}

// A client that connects (and upgrades to WebSocket when `upgrade`), then never reads
// again: the kernel's receive buffer fills and the server's writes stop.
export async function neverReader(port, { upgrade = false, path = '/ws', headers = '' } = {}) {
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => {});
  await once(sock, 'connect');
  if (upgrade) {
    const key = crypto.randomBytes(16).toString('base64');
    sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${headers}\r\n`);
    let head = '';
    await new Promise((resolve, reject) => {
      const onData = (d) => {
        head += d.toString('latin1');
        if (head.includes('\r\n\r\n')) { sock.off('data', onData); resolve(); }
      };
      sock.on('data', onData);
      sock.on('close', () => reject(new Error('closed during the upgrade')));
    });
    if (!head.startsWith('HTTP/1.1 101')) throw new Error(`upgrade refused: ${head.split('\r\n')[0]}`);
  }
  sock.pause();
  return sock;
}

// Writes `chunk` again and again until `stop()`, honouring backpressure (nothing piles
// up in this process when the server stops reading). Resolves with the bytes written.
export async function flood(sock, chunk, stop) {
  let bytes = 0;
  while (!stop() && !sock.destroyed) {
    if (sock.writableNeedDrain) { await sleep(10); continue; }
    sock.write(chunk);
    bytes += chunk.length;
    await new Promise((r) => setImmediate(r));
  }
  return bytes;
}

// Writes `buf` once, after waiting (until `stop()`) for the socket to drain. False when
// it was not written.
export async function writeWhenReady(sock, buf, stop) {
  while (sock.writableNeedDrain && !stop() && !sock.destroyed) await sleep(10);
  if (stop() || sock.destroyed) return false;
  sock.write(buf);
  await new Promise((r) => setImmediate(r));
  return true;
}

// `n` masked client frames of `opcode` carrying `payload`, in one buffer.
export function frames(opcode, payload, n) {
  return Buffer.concat(Array.from({ length: n }, () => frame(opcode, payload)));
}

// Runs `attack(stop)` for `ms` while probing the reactor every ~100 ms: /healthz on a new
// connection, the observer's ping round trip, and (with `event`) the latency of an event
// to the observer. Stops early once the reactor has grown by more than `maxGrowth`.
export async function underAttack(reactor, { attack, ms = 3000, ping, event, maxGrowth = 64 * MiB }) {
  const pid = reactor.child.pid;
  const base = rss(pid);
  let stopped = false;
  const stop = () => stopped;
  const running = attack(stop);
  const r = { growth: 0, healthz: 0, ping: 0, event: 0, probes: 0, ms: 0 };
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    r.healthz = Math.max(r.healthz, await healthzMs(reactor.port, 1000));
    if (ping) r.ping = Math.max(r.ping, await ping());
    if (event && r.probes % 5 === 0) r.event = Math.max(r.event, await event());
    r.growth = Math.max(r.growth, rss(pid) - base);
    r.probes++;
    if (r.growth > maxGrowth) break;
    await sleep(100);
  }
  r.ms = Date.now() - t0;
  stopped = true;
  await Promise.race([running, sleep(2000)]);
  r.growth = Math.max(r.growth, rss(pid) - base);
  r.growthMiB = +(r.growth / MiB).toFixed(1);
  return r;
}
