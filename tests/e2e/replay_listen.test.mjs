// `reactor --replay FILE --listen`: the replayed stream is served over WebSocket with the
// same frames a live subscriber received.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import WebSocket from 'ws';
import { freshDatabase, connect, startReactor, readJournal, eventually, tempDir } from './lib.mjs';

const portOf = (proc) => Number(/listening on 127\.0\.0\.1:(\d+)/.exec(proc.stderr)[1]);

function collect(url) {
  const ws = new WebSocket(url);
  const events = [];
  ws.on('message', (data) => {
    const text = data.toString();
    if (JSON.parse(text).type === 'event') events.push(text);
  });
  return { ws, events, open: new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); }) };
}

test('a replay served with --listen sends the same frames as the live stream', { timeout: 60000 }, async () => {
  const url = await freshDatabase('replay_listen');
  const journal = path.join(tempDir(), 'journal.ndjson');
  const live = startReactor(['serve', '--database-url', url, '--listen', '127.0.0.1:0', '--record', journal, '--no-scheduler']);
  await live.ready;
  await live.waitFor(/listening on/, 5000, true);
  const client = collect(`ws://127.0.0.1:${portOf(live)}/ws?since=0`);
  await client.open;

  const db = await connect(url);
  await db.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, user_id) SELECT 'r' || g, 'export', 'u' || (g % 3) FROM generate_series(1, 20) g`);
  for (let i = 1; i <= 5; ++i) {
    const e = (await db.query(`SELECT reactor.start_job('r${i}', 'manual') AS e`)).rows[0].e;
    await db.query(`SELECT reactor.update_job_progress('r${i}', 50, 'half way "quoted" ✓')`);
    await db.query(`SELECT reactor.complete_job('r${i}', $1, '{"rows": 3}')`, [e]);
  }
  await db.end();
  const total = 20 + 5 * 3;
  await eventually(() => client.events.length >= total && readJournal(journal).then((j) => j.length >= total),
    { what: 'every live event' });
  client.ws.close();
  assert.equal((await live.stop('SIGTERM')).code, 0);

  const replay = startReactor(['--replay', journal, '--listen', '127.0.0.1:0'], { readyPattern: /replay finished/ });
  await replay.ready;
  const viewer = collect(`ws://127.0.0.1:${portOf(replay)}/ws?since=0`);
  await viewer.open;
  await eventually(() => viewer.events.length >= total, { what: 'the replayed events' });
  assert.deepEqual(viewer.events, client.events, 'replayed frames equal the live ones, in order');
  // stdout carried the same events, one JSON per line.
  const lines = replay.stdout.trim().split('\n');
  assert.equal(lines.length, total);
  assert.equal(`{"type":"event","event":${lines[0]}}`, client.events[0]);
  viewer.ws.close();
  assert.equal((await replay.stop('SIGINT')).code, 0);
});
