// `reactor --replay FILE` end to end: the built binary, hand-written journals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const BIN = process.env.REACTOR_BIN;
assert.ok(BIN, 'REACTOR_BIN must name the built reactor binary');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reactor-replay-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

function event(id, { status = 'running', user = 'u1', type = 'sync', job = `job_${id}` } = {}) {
  return JSON.stringify({
    id, kind: 'status', job_id: job, source: 'scheduled_jobs', status, old_status: 'pending',
    user_id: user, job_type: type, attempt: 1, progress: null, message: null, error: null,
    scheduled_for: '2026-11-21T06:00:00Z', at: '2026-11-21T06:00:00.012345Z',
  });
}

let n = 0;
function journal(lines) {
  const file = path.join(dir, `journal-${++n}.ndjson`);
  fs.writeFileSync(file, lines.join(''));
  return file;
}
const line = (t, ev) => `{"t":${t},"event":${ev}}\n`;

// Runs the binary; resolves with its exit code, stdout, stderr and wall time.
function run(args, { stdoutHook } = {}) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      stdout += d;
      if (stdoutHook) stdoutHook(child, stdout);
    });
    child.stdout.on('error', () => {});
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started });
    });
  });
}

const outLines = (s) => s.split('\n').filter((l) => l !== '');

test('each event is printed as recorded, in order, one per line', async () => {
  const events = [
    event(1),
    event(2, { status: 'failed' }),
    '{"job_id":"own","status":"processing","nested":{"a":[1,2]},"txt":"é ✓ \\"q\\" \\n \\u00e9"}',
    '{ "id" : 4 , "kind" : "due" , "source" : "scheduled_jobs" }',
    event(5),
  ];
  const file = journal(events.map((e, i) => line(1700000000000 + i, e)));
  const r = await run(['--replay', file]);
  assert.equal(r.stderr, '');
  assert.equal(r.code, 0);
  assert.equal(r.stdout, events.map((e) => `${e}\n`).join(''));
});

test('CRLF line ends, blank lines and a last line without a newline', async () => {
  const file = journal([
    line(1, event(1)).replace('\n', '\r\n'),
    '\n',
    '   \n',
    line(2, event(2)).trimEnd(),
  ]);
  const r = await run(['--replay', file]);
  assert.equal(r.stderr, '');
  assert.equal(r.code, 0);
  assert.deepEqual(outLines(r.stdout), [event(1), event(2)]);
});

test('--from/--to select by id, inclusive; filters narrow further', async () => {
  const lines = [];
  for (let i = 1; i <= 10; i++) {
    lines.push(line(i, event(i, {
      status: i % 2 ? 'failed' : 'completed',
      user: i <= 5 ? 'alice' : 'bob',
      type: i % 3 === 0 ? 'mail' : 'sync',
      job: i === 7 ? 'special' : `job_${i}`,
    })));
  }
  lines.push(line(11, '{"job_id":"foreign","status":"failed"}'));
  const file = journal(lines);
  const ids = (r) => outLines(r.stdout).map((l) => JSON.parse(l).id ?? JSON.parse(l).job_id);

  let r = await run(['--replay', file, '--from', '3', '--to', '6']);
  assert.equal(r.code, 0);
  assert.deepEqual(ids(r), [3, 4, 5, 6]);

  r = await run(['--replay', file, '--from', '8']);
  assert.deepEqual(ids(r), [8, 9, 10]);

  r = await run(['--replay', file, '--status', 'failed']);
  assert.deepEqual(ids(r), [1, 3, 5, 7, 9, 'foreign']);

  r = await run(['--replay', file, '--status', 'failed', '--from', '1']);
  assert.deepEqual(ids(r), [1, 3, 5, 7, 9]);

  r = await run(['--replay', file, '--job-type', 'mail,nothing']);
  assert.deepEqual(ids(r), [3, 6, 9]);

  r = await run(['--replay', file, '--user-id', 'bob', '--status', 'completed', '--status', 'x']);
  assert.deepEqual(ids(r), [6, 8, 10]);

  r = await run(['--replay', file, '--job-id', 'special']);
  assert.deepEqual(ids(r), [7]);

  r = await run(['--replay', file, '--to', '0']);
  assert.equal(r.code, 0);
  assert.equal(r.stdout, '');
});

test('malformed lines: named by number on stderr, skipped, exit 1', async () => {
  const file = journal([
    line(1, event(1)),
    'this is not json\n',
    line(3, event(3)),
    '{"t":"soon","event":{"id":4}}\n',
    '{"t":5,"event":[5]}\n',
    '{"t":6}\n',
    line(7, event(7)),
    '{"t":8,"event":{"id":8}',
  ]);
  const r = await run(['--replay', file]);
  assert.equal(r.code, 1);
  assert.deepEqual(outLines(r.stdout), [event(1), event(3), event(7)]);
  const errs = outLines(r.stderr);
  assert.equal(errs.length, 5, r.stderr);
  for (const [i, no] of [2, 4, 5, 6, 8].entries()) {
    assert.ok(errs[i].startsWith(`${file}:${no}: malformed journal line: `), errs[i]);
  }
  assert.match(errs[1], /"t" is not a number/);
  assert.match(errs[2], /"event" is not a JSON object/);
  assert.match(errs[3], /"event" is missing/);
});

test('--speed 1 keeps the recorded gaps (events 400 ms apart)', async () => {
  const file = journal([line(1000, event(1)), line(1400, event(2)), line(1800, event(3))]);
  const r = await run(['--replay', file, '--speed', '1']);
  assert.equal(r.code, 0);
  assert.equal(outLines(r.stdout).length, 3);
  assert.ok(r.ms >= 795, `took ${r.ms} ms for 800 ms of recording`);
});

test('--speed 2 still paces: 800 ms of recording take at least 400 ms', async () => {
  const file = journal([line(5000, event(1)), line(5800, event(2))]);
  const r = await run(['--replay', file, '--speed', '2']);
  assert.equal(r.code, 0);
  assert.ok(r.ms >= 395, `took ${r.ms} ms for 800 ms of recording at speed 2`);
});

test('--speed 0 (the default) does not pause, even across hours', { timeout: 20000 }, async () => {
  const hour = 3600 * 1000;
  const file = journal([line(0, event(1)), line(hour, event(2)), line(5 * hour, event(3))]);
  let r = await run(['--replay', file, '--speed', '0']);
  assert.equal(r.code, 0);
  assert.equal(outLines(r.stdout).length, 3);
  r = await run(['--replay', file]);
  assert.equal(r.code, 0);
  assert.equal(outLines(r.stdout).length, 3);
});

test('a missing file: a clear error and exit 1', async () => {
  const missing = path.join(dir, 'no-such-journal.ndjson');
  const r = await run(['--replay', missing]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, new RegExp(`cannot open ${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: no such file or directory`));
});

test('a negative --speed is a usage error (exit 2)', async () => {
  const file = journal([line(1, event(1))]);
  const r = await run(['--replay', file, '--speed', '-1']);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
});

test('stdout closed early (| head -1): the replay ends quietly', async () => {
  const lines = [];
  for (let i = 1; i <= 20000; i++) lines.push(line(i, event(i)));
  const file = journal(lines);
  const r = await new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', 'set -o pipefail; "$0" --replay "$1" | head -1', BIN, file],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  assert.equal(r.stderr, '');
  assert.equal(r.stdout, `${event(1)}\n`);
  assert.equal(r.code, 0, 'reactor must exit 0, not die of SIGPIPE');
});

test('a paced replay whose reader goes away stops at the next event, quietly', async () => {
  const file = journal([line(0, event(1)), line(100, event(2)), line(200, event(3)), line(60000, event(4))]);
  const r = await run(['--replay', file, '--speed', '1'], {
    stdoutHook: (child, out) => { if (out.includes('\n')) child.stdout.destroy(); },
  });
  assert.equal(r.code, 0);
  assert.equal(r.signal, null);
  assert.equal(r.stderr, '');
});

test('--replay --listen on a non-loopback address needs a secret or --allow-anonymous', async () => {
  const file = journal([line(1, event(1))]);
  const r = await run(['--replay', file, '--listen', '0.0.0.0:0']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--allow-anonymous/);
});
