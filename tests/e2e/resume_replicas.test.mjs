// Resume exact on any replica (docs/delivery.md): a client hops between two replicas,
// resuming on each with the last event id it processed, while one replica's database
// connection is killed again and again (so it recovers events by catch-up and delivers
// them later than the other replica does) and writers commit out of id order. After
// de-duplication by id the client has every event, nothing else, and per job the order
// of the table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freshDatabase, connect, sleep, statusWriter, eventually } from './lib.mjs';
import { serve, Client, insertJobs, metric } from './wslib.mjs';

const backendPid = (proc) => {
  const all = [...proc.stderr.matchAll(/postgres: connecting -> listening \(connected to server \d+, backend pid (\d+)\)/g)];
  return all.length ? Number(all[all.length - 1][1]) : null;
};

test('a client hopping between two replicas, one of which keeps losing its database connection, misses nothing',
  { timeout: 150000 }, async () => {
    const url = await freshDatabase('resume_replicas');
    const db = await connect(url);
    await insertJobs(db, 40, { prefix: 'hop' });
    const a = await serve(url);
    const b = await serve(url);
    const startId = Number((await db.query('SELECT coalesce(max(id), 0) AS m FROM reactor.job_events')).rows[0].m);
    const seen = new Map();   // id -> event (first delivery)
    const order = [];         // ids in first-delivery order
    let last = startId;
    let hops = 0;
    let repeats = 0;
    let gaps = 0;
    let stop = false;

    // The writers: 3 000 changes, transactions of 1-3 jobs, some sleeping before COMMIT.
    const state = { committed: 0, errors: 0 };
    const writers = Promise.all([1, 2, 3].map((seed) =>
      statusWriter(url, state, { seed, prefix: 'hop_', jobs: 40, changes: 3000, sleepEvery: 3 })));
    // Replica A's event connection is killed every 250 ms.
    const killer = (async () => {
      while (!stop) {
        await sleep(250);
        const pid = backendPid(a);
        if (pid) await db.query('SELECT pg_terminate_backend($1)', [pid]).catch(() => {});
      }
    })();
    // The client: 200-600 ms on one replica, then the other, resuming with `since`.
    const hopper = (async () => {
      let on = 0;
      while (!stop) {
        const r = on === 0 ? a : b;
        const c = await Client.open(r.port);
        c.ws.on('message', () => {});
        c.send({ op: 'subscribe', id: 'all', since: last });
        const until = Date.now() + 200 + Math.floor(Math.random() * 400);
        let processed = 0;
        while (Date.now() < until || processed < c.messages.length) {
          for (; processed < c.messages.length; processed++) {
            const m = c.messages[processed];
            if (m.type === 'gap') gaps++;
            if (m.type !== 'event') continue;
            if (seen.has(m.event.id)) { repeats++; continue; }
            seen.set(m.event.id, m.event);
            order.push(m.event.id);
            last = m.event.id;
          }
          await sleep(10);
        }
        c.terminate();
        hops++;
        on = 1 - on;
      }
    })();

    await writers;
    await sleep(500);
    const endId = Number((await db.query('SELECT max(id) AS m FROM reactor.job_events')).rows[0].m);
    // Let the client hop until it has everything (or the test times out).
    await eventually(() => [...seen.keys()].filter((id) => id > startId).length >= endId - startId,
      { timeout: 60000, interval: 200, what: 'every event' }).catch(() => {});
    stop = true;
    await Promise.all([killer, hopper]);
    try {
      const { rows } = await db.query('SELECT id, job_id FROM reactor.job_events WHERE id > $1 ORDER BY id', [startId]);
      const want = rows.map((r) => Number(r.id));
      const got = [...seen.keys()].filter((id) => id > startId).sort((x, y) => x - y);
      const missing = want.filter((id) => !seen.has(id));
      console.log(`# ${want.length} events, ${hops} hops, ${repeats} repeats dropped, ${gaps} gaps, ` +
                  `replica A reconnects ${await metric(a.port, 'reactor_postgres_reconnects_total')}, ` +
                  `recovered ${await metric(a.port, 'reactor_events_recovered_total')}, ` +
                  `widened resumes ${(await metric(a.port, 'reactor_resumes_widened_total')) + (await metric(b.port, 'reactor_resumes_widened_total'))}`);
      assert.deepEqual(missing, [], 'no event missing');
      assert.deepEqual(got, want, 'nothing else');
      assert.equal(gaps, 0);
      // Per job, first deliveries in id order (= commit order per job).
      const lastByJob = new Map();
      for (const id of order) {
        const job = seen.get(id).job_id;
        if (id <= startId) continue;
        assert.ok(!(lastByJob.get(job) > id), `job ${job}: ${id} after ${lastByJob.get(job)}`);
        lastByJob.set(job, id);
      }
    } finally {
      await a.stop();
      await b.stop();
      await db.end();
    }
  });
