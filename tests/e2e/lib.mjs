// Shared helpers for the end-to-end tests: a fresh database per test in the sandbox
// PostgreSQL that tools/test started, the real reactor binary, journal reading.
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFile } from 'node:fs/promises';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import pg from 'pg';

export const BIN = process.env.REACTOR_BIN;
export const ROOT = process.env.REACTOR_ROOT;
const run = promisify(execFile);

if (!BIN || !process.env.DATABASE_URL) {
  throw new Error('run through tools/test (needs REACTOR_BIN and DATABASE_URL)');
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function tempDir(prefix = 'reactor-e2e-') {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

export function dbUrl(name) {
  const u = new URL(process.env.DATABASE_URL);
  u.pathname = '/' + name;
  return u.toString();
}

let dbCounter = 0;
// A new database with the migrations applied by `reactor migrate`.
export async function freshDatabase(label) {
  const name = `e2e_${label}_${process.pid}_${++dbCounter}`.replace(/[^a-z0-9_]/gi, '_').toLowerCase();
  const admin = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name}`);
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = dbUrl(name);
  await run(BIN, ['migrate', '--database-url', url, '--log-level', 'warn']);
  return url;
}

export async function connect(url) {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => {});  // connections are killed on purpose in some tests
  await c.connect();
  return c;
}

// Every reactor a test file started is killed when the file's tests end, pass or fail,
// so a failed assertion never leaves a process holding the test runner open.
const started = new Set();
after(() => { for (const c of started) c.kill('SIGKILL'); });

// Starts `reactor ARGS...`; resolves once a stderr line matches `readyPattern`.
export function startReactor(args, { env = {}, readyPattern = /postgres: catching up -> ready/ } = {}) {
  const child = spawn(BIN, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  started.add(child);
  child.on('exit', () => started.delete(child));
  const proc = { child, stderr: '', stdout: '', exited: null };
  const waiters = [];
  child.stdout.on('data', (d) => { proc.stdout += d; });
  child.stderr.on('data', (d) => {
    proc.stderr += d;
    for (const w of [...waiters]) if (w.re.test(proc.stderr.slice(w.from))) { waiters.splice(waiters.indexOf(w), 1); w.resolve(); }
  });
  proc.exitPromise = new Promise((resolve) => child.on('exit', (code, signal) => { proc.exited = { code, signal }; resolve(proc.exited); }));
  // Waits for `re` to appear in stderr written after this call (or anywhere if fromStart).
  proc.waitFor = (re, ms = 15000, fromStart = false) => new Promise((resolve, reject) => {
    const from = fromStart ? 0 : proc.stderr.length;
    if (fromStart && re.test(proc.stderr)) return resolve();
    const t = setTimeout(() => reject(new Error(`timeout waiting for ${re} in reactor log:\n${proc.stderr.slice(-3000)}`)), ms);
    waiters.push({ re, from, resolve: () => { clearTimeout(t); resolve(); } });
    proc.exitPromise.then(() => { clearTimeout(t); reject(new Error(`reactor exited ${JSON.stringify(proc.exited)} while waiting for ${re}:\n${proc.stderr.slice(-3000)}`)); });
  });
  proc.stop = async (signal = 'SIGTERM') => {
    if (!proc.exited) child.kill(signal);
    return proc.exitPromise;
  };
  proc.ready = readyPattern ? proc.waitFor(readyPattern, 20000, true) : Promise.resolve();
  return proc;
}

// Journal lines as parsed objects. A last line without its newline is still being written
// (the reactor appends from libuv's thread pool) and is left for the next read.
export async function readJournal(file) {
  let text;
  try { text = await readFile(file, 'utf8'); } catch { return []; }
  const lines = text.split('\n');
  lines.pop();  // '' after the last newline, or the unfinished line
  return lines.filter((l) => l.length > 0).map((l) => JSON.parse(l));
}

// Polls until `fn` returns a truthy value.
export async function eventually(fn, { timeout = 30000, interval = 100, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await sleep(interval);
  }
  throw new Error(`timed out waiting for ${what}`);
}

export async function restartPostgres() {
  await run(path.join(ROOT, 'tools/pg-sandbox'), ['restart', process.env.PGSANDBOX_DIR]);
}

export async function killReactorBackends(client, appName = 'reactor') {
  const r = await client.query(
    "SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()",
    [appName]);
  return r.rows[0].n;
}

// A writer for the fault tests: transactions of 1-3 status changes on jobs
// `${prefix}${0..jobs-1}` (some sleeping before COMMIT, so ids commit out of order),
// until `state.committed` reaches `changes`; reconnects and retries through any failure.
export async function statusWriter(url, state, { seed, prefix, jobs, changes, sleepEvery = 4 }) {
  let rnd = seed;
  const next = () => { rnd = (rnd * 1103515245 + 12345) % 2147483648; return rnd >>> 8; };
  let client = null;
  while (state.committed < changes) {
    try {
      if (!client) client = await connect(url);
      const ids = [...new Set(Array.from({ length: 1 + (next() % 3) }, () => `${prefix}${next() % jobs}`))].sort();
      await client.query('BEGIN');
      for (const id of ids) {
        await client.query(`UPDATE reactor.scheduled_jobs SET status = CASE status WHEN 'pending' THEN 'running'
                              WHEN 'running' THEN 'completed' ELSE 'pending' END WHERE id = $1`, [id]);
      }
      if (sleepEvery && next() % sleepEvery === 0) await client.query('SELECT pg_sleep(0.002)');
      await client.query('COMMIT');
      state.committed += ids.length;
    } catch {
      state.errors++;
      try { await client?.end(); } catch { /* already gone */ }
      client = null;
      await sleep(50);
    }
  }
  try { await client?.end(); } catch { /* ignore */ }
}
