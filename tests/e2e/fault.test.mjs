// The delivery guarantee under faults (docs/delivery.md): 4 writers make 20 000 status
// changes across 1 000 jobs, in transactions that commit out of id order, while the
// reactor's backend is killed every 300 ms and PostgreSQL is restarted once. Afterwards
// the journal holds every reactor.job_events id exactly once, and per job in the
// table's order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  freshDatabase, connect, startReactor, readJournal, eventually, restartPostgres,
  killReactorBackends, tempDir, sleep, statusWriter,
} from './lib.mjs';

const JOBS = 1000;
const CHANGES = 20000;
const WRITERS = 4;

test('no event lost, none repeated, per-job order kept across kills and a restart', { timeout: 240000 }, async () => {
  const url = await freshDatabase('fault');
  const journal = path.join(tempDir(), 'journal.ndjson');
  const reactor = startReactor(['serve', '--database-url', url, '--listen', '127.0.0.1:0',
    '--record', journal, '--no-scheduler', '--log-level', 'info']);
  await reactor.ready;

  const setup = await connect(url);
  await setup.query(`INSERT INTO reactor.scheduled_jobs (id, job_type, frequency_type, frequency_config, enabled)
                     SELECT 'job_' || g, 'fault_test', 'once', '{}', false FROM generate_series(0, ${JOBS - 1}) g`);
  await setup.end();

  const state = { committed: 0, errors: 0 };
  const writers = Array.from({ length: WRITERS }, (_, i) => statusWriter(url, state, { seed: 7919 * (i + 1), prefix: 'job_', jobs: JOBS, changes: CHANGES, sleepEvery: 4 }));

  let kills = 0;
  let killerClient = null;
  let restarted = false;
  const killer = (async () => {
    while (state.committed < CHANGES) {
      await sleep(300);
      try {
        if (!killerClient) killerClient = await connect(url);
        kills += await killReactorBackends(killerClient);
      } catch {
        killerClient = null;
      }
      if (!restarted && state.committed > CHANGES * 0.4) {
        restarted = true;
        killerClient = null;
        await restartPostgres();
      }
    }
  })();
  await Promise.all([...writers, killer]);
  try { await killerClient?.end(); } catch { /* ignore */ }

  const check = await connect(url);
  const { rows } = await check.query('SELECT id::int AS id, job_id FROM reactor.job_events ORDER BY id');
  await check.end();
  assert.ok(rows.length >= CHANGES + JOBS, `expected at least ${CHANGES + JOBS} events, table has ${rows.length}`);
  assert.ok(kills >= 5, `the reactor's backend was killed only ${kills} times`);
  assert.ok(restarted);

  const tableIds = new Set(rows.map((r) => r.id));
  const entries = await eventually(async () => {
    const j = await readJournal(journal);
    const ids = new Set(j.map((e) => e.event.id));
    for (const id of tableIds) if (!ids.has(id)) return null;
    return j;
  }, { timeout: 60000, what: 'every job_events id in the journal' });

  const count = new Map();
  for (const e of entries) count.set(e.event.id, (count.get(e.event.id) ?? 0) + 1);
  const repeated = [...count].filter(([, n]) => n > 1);
  assert.deepEqual(repeated, [], 'ids delivered more than once');
  assert.equal(entries.length, tableIds.size, 'journal has events the table does not');

  const perJobTable = new Map();
  for (const r of rows) (perJobTable.get(r.job_id) ?? perJobTable.set(r.job_id, []).get(r.job_id)).push(r.id);
  const perJobJournal = new Map();
  for (const e of entries) (perJobJournal.get(e.event.job_id) ?? perJobJournal.set(e.event.job_id, []).get(e.event.job_id)).push(e.event.id);
  for (const [job, ids] of perJobTable) assert.deepEqual(perJobJournal.get(job), ids, `order of ${job}`);

  const reconnects = (reactor.stderr.match(/connection lost/g) ?? []).length;
  console.log(`# ${rows.length} events, ${kills} backend kills, 1 restart, ${reconnects} reconnects, ${state.errors} writer retries`);
  assert.ok(reconnects >= kills, 'every kill was noticed');
  const exit = await reactor.stop('SIGTERM');
  assert.equal(exit.code, 0);
});
