// A resume larger than the send queue succeeds: from the database (a short history) and
// from memory, 5 000 events (~2 MB) to a client whose queue is 1 MiB, with live events
// arriving meanwhile; nothing missing, in id order, no 1013.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freshDatabase, connect, eventually } from './lib.mjs';
import { serve, Client, insertJobs, metric } from './wslib.mjs';

async function changes(db, n) {
  // One transaction each, so that the resume set is exactly what came after `since`.
  for (let i = 0; i < n; i++) {
    await db.query(`UPDATE reactor.scheduled_jobs SET progress_percent = $2, progress_message = repeat('m', 200)
                     WHERE id = $1`, [`big_${i % 50}`, i % 100]);
  }
}

for (const source of ['database', 'history']) {
  test(`a resume of 5 000 events from the ${source} to a client with a 1 MiB queue succeeds`, { timeout: 120000 }, async () => {
    const url = await freshDatabase(`resume_large_${source}`);
    const db = await connect(url);
    await insertJobs(db, 50, { prefix: 'big' });
    const reactor = await serve(url, ['--history', source === 'database' ? '100' : '100000']);
    try {
      await changes(db, 1);  // `since`: an event the reactor has in memory
      const first = Number((await db.query('SELECT max(id) AS m FROM reactor.job_events')).rows[0].m);
      await changes(db, 5000);
      const last = Number((await db.query('SELECT max(id) AS m FROM reactor.job_events')).rows[0].m);
      await eventually(async () => (await metric(reactor.port, 'reactor_last_event_id')) >= last,
        { what: 'the reactor caught up' });
      const c = await Client.open(reactor.port);
      c.ws.pause();  // not read for a while: the resume must wait, not close
      c.send({ op: 'subscribe', id: 'r', since: first });
      await new Promise((r) => setTimeout(r, 500));
      const live = db.query(`UPDATE reactor.scheduled_jobs SET status = 'running' WHERE id = 'big_7'`);
      c.ws.resume();
      await live;
      const want = last - first + 1;  // 5 000 changes + the live one
      await eventually(() => c.events().length >= want, { timeout: 60000, what: `${want} events` });
      assert.equal(c.closed, null, 'not closed as a slow consumer');
      assert.ok(!c.messages.some((m) => m.type === 'gap'), 'no gap');
      const ids = c.eventIds();
      // Exactly the resume set of docs/delivery.md: txid >= the horizon of since, not since.
      const expected = (await db.query(
        `SELECT id FROM reactor.job_events
          WHERE txid >= (SELECT horizon FROM reactor.job_events WHERE id = $1) AND id <> $1 ORDER BY id`,
        [first])).rows.map((r) => Number(r.id));
      assert.deepEqual([...new Set(ids)].sort((a, b) => a - b), expected, 'the resume set, none missing');
      assert.equal(new Set(ids).size, ids.length, 'none twice');
      assert.equal(await metric(reactor.port, 'reactor_slow_consumer_closes_total'), 0);
      assert.ok((await metric(reactor.port, 'reactor_resumes_total', `source="${source}"`)) >= 1);
      c.terminate();
    } finally {
      await reactor.stop();
      await db.end();
    }
  });
}
