// Events per second over the last minute: one bucket per wall-clock second, drawn on a
// canvas. Counting is a number increment; drawing happens at most once per frame.

export class Rate {
  constructor(seconds = 60) {
    this.seconds = seconds;
    this.buckets = new Array(seconds).fill(0);
    this.head = 0;      // the second the last bucket stands for
  }

  // Adds `n` events at `nowMs`.
  add(n, nowMs) {
    this.advance(nowMs);
    this.buckets[this.buckets.length - 1] += n;
  }

  advance(nowMs) {
    const sec = Math.floor(nowMs / 1000);
    if (this.head === 0) this.head = sec;
    const shift = Math.min(sec - this.head, this.seconds);
    for (let i = 0; i < shift; i++) {
      this.buckets.shift();
      this.buckets.push(0);
    }
    if (sec > this.head) this.head = sec;
  }

  // The last complete second (the current one is still filling).
  current(nowMs) {
    this.advance(nowMs);
    return this.buckets[this.buckets.length - 2];
  }

  peak() {
    return Math.max(...this.buckets);
  }
}

export function drawSparkline(canvas, rate, nowMs) {
  rate.advance(nowMs);
  const dpr = globalThis.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (w === 0 || h === 0) return;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  // The current second is still filling: leave it out so the line does not dip.
  const values = rate.buckets.slice(0, -1);
  const max = Math.max(1, ...values);
  const step = w / (values.length - 1);
  const y = (v) => h - 2 - (v / max) * (h - 6);
  const style = getComputedStyle(canvas);
  const line = style.getPropertyValue('--spark-line').trim() || '#5b9cf6';
  const fill = style.getPropertyValue('--spark-fill').trim() || 'rgba(91,156,246,0.15)';
  ctx.beginPath();
  ctx.moveTo(0, h);
  values.forEach((v, i) => ctx.lineTo(i * step, y(v)));
  ctx.lineTo(w, h);
  ctx.closePath();
  ctx.fillStyle = fill;
  ctx.fill();
  ctx.beginPath();
  values.forEach((v, i) => (i === 0 ? ctx.moveTo(0, y(v)) : ctx.lineTo(i * step, y(v))));
  ctx.strokeStyle = line;
  ctx.lineWidth = 1.5;
  ctx.lineJoin = 'round';
  ctx.stroke();
}

// This page's delay, commit to screen: for each event drawn, the time from its `at` (the
// server's clock) to the frame that drew it. The last one and the median of the last
// `n` (100).
export class Lag {
  constructor(n = 100) {
    this.n = n;
    this.values = [];
    this.last = null;
  }

  add(ms) {
    if (!Number.isFinite(ms)) return;
    this.values.push(ms);
    if (this.values.length > this.n) this.values.splice(0, this.values.length - this.n);
    this.last = ms;
  }

  p50() {
    if (this.values.length === 0) return null;
    const v = this.values.slice().sort((a, b) => a - b);
    return v[Math.floor((v.length - 1) / 2)];
  }
}

// "35 ms", "1.2 s", "4 min".
export function formatMs(ms) {
  if (ms === null || !Number.isFinite(ms)) return '—';
  const a = Math.abs(ms);
  if (a < 1000) return `${Math.round(ms)} ms`;
  if (a < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60000)} min`;
}

// "0 B", "12 KiB", "3.5 MiB".
export function formatBytes(n) {
  if (n === null || !Number.isFinite(n)) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${Math.round(n / 1024)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
