// Attacks on the operator's console (docs/security.md): a client that floods `history`
// and `action` requests without reading, and a `counts` viewer that never reads. Each
// must stay within its connection's bounds (queue budget, reads per connection), leave
// the database with the reactor's two connections, and not delay another user's answers
// or the event path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freshDatabase, connect } from './lib.mjs';
import { serve, Client, signJwt, nowS, metric, insertJobs } from './wslib.mjs';
import { neverReader, writeWhenReady, frames, underAttack, MiB, rss } from './advlib.mjs';

const SECRET = 'adv-console-secret-0123456789';
const bearer = (sub) => `Bearer ${signJwt({ sub, role: 'admin', exp: nowS() + 3600 }, SECRET)}`;
const admin = (sub = 'ops') => `Authorization: ${bearer(sub)}\r\n`;  // a raw request's header line

test('history and action requests sent forever by a client that never reads: bounded, and nobody else waits',
  { timeout: 90000 }, async () => {
    const url = await freshDatabase('adv_console');
    const db = await connect(url);
    await insertJobs(db, 2000, { prefix: 'job', users: ['u1', 'u2'] });
    const reactor = await serve(url, ['--jwt-secret', SECRET]);
    try {
      const victim = await Client.open(reactor.port, { headers: { Authorization: bearer('victim') } });
      await victim.subscribe('mine', { filter: { job_id: 'job_1' } });
      const attackers = [];
      const history = frames(0x1, JSON.stringify({ op: 'history', id: 'h', job_id: 'job_7', limit: 500 }), 200);
      const action = frames(0x1, JSON.stringify({ op: 'action', id: 'a', action: 'set_priority', job_id: 'job_9', arg: 'low' }), 200);
      let probe = 0;
      const r = await underAttack(reactor, {
        ms: 4000,
        attack: async (stop) => {
          for (let i = 0; i < 4; i++) attackers.push(await neverReader(reactor.port, { upgrade: true, headers: admin() }));
          await Promise.all(attackers.map(async (sock, i) => {
            while (!stop() && await writeWhenReady(sock, i % 2 ? action : history, stop)) { /* as fast as taken */ }
          }));
        },
        // Another user's history and action are answered, and an event reaches them.
        ping: async () => {
          const t0 = performance.now();
          const id = `p${probe++}`;
          victim.send({ op: 'history', id, job_id: 'job_1', limit: 5 });
          await victim.next((m) => m.type === 'history' && m.id === id, 10000, `history ${id}`);
          return performance.now() - t0;
        },
        event: async () => {
          const t0 = performance.now();
          // Waiting starts before the update: the event may arrive before its commit's reply.
          const delivered = victim.after((m) => m.type === 'event' && m.event.job_id === 'job_1', 10000, 'the event');
          await db.query(`UPDATE reactor.scheduled_jobs SET progress_percent = (coalesce(progress_percent, 0) + 1) % 100 WHERE id = 'job_1'`);
          await delivered;
          return performance.now() - t0;
        },
      });
      console.log(`flood of history/action requests: +${r.growthMiB} MiB, /healthz ≤ ${r.healthz.toFixed(0)} ms, ` +
                  `another user's history ≤ ${r.ping.toFixed(0)} ms, event ≤ ${r.event.toFixed(0)} ms`);
      assert.ok(r.growth < 48 * MiB, `grew ${r.growthMiB} MiB`);
      assert.ok(r.ping < 2000, `another user's history took ${r.ping} ms`);
      assert.ok(r.event < 2000, `an event took ${r.event} ms`);
      assert.ok(r.healthz < 1000);
      // Per connection at most 2 database statements; the reactor keeps its two sessions.
      const outstanding = await metric(reactor.port, 'reactor_client_reads');
      assert.ok(outstanding <= 2 * attackers.length + 1, `${outstanding} reads outstanding`);
      const { rows: [{ n }] } = await db.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'reactor%' AND datname = current_database()`);
      assert.ok(n <= 2, `the reactor uses its two connections, saw ${n}`);
      // The refusals were answered (and counted), the reactor was not read further once
      // those answers filled each attacker's queue.
      assert.ok(await metric(reactor.port, 'reactor_read_pauses_total') >= 1);
      const ack = await new Promise((resolve) => {
        victim.send({ op: 'action', id: 'v1', action: 'cancel', job_id: 'job_1' });
        resolve(victim.next((m) => (m.type === 'ack' || m.type === 'error') && m.id === 'v1', 10000, 'the victim\'s action'));
      });
      assert.equal(ack.type, 'ack', JSON.stringify(ack));
      for (const s of attackers) s.destroy();
      victim.terminate();
    } finally {
      await reactor.stop();
      await db.end();
    }
  });

test('a counts viewer that never reads is not closed for it and holds at most its queue; others keep getting totals',
  { timeout: 60000 }, async () => {
    const url = await freshDatabase('adv_counts');
    const db = await connect(url);
    await insertJobs(db, 500, { prefix: 'job', users: ['u1'] });
    const reactor = await serve(url, ['--jwt-secret', SECRET, '--max-queue-bytes', '65536']);
    try {
      const sleeper = await neverReader(reactor.port, { upgrade: true, headers: admin('sleeper') });
      sleeper.write(frames(0x1, JSON.stringify({ op: 'counts' }), 1));
      const viewer = await Client.open(reactor.port, { headers: { Authorization: bearer('viewer') } });
      viewer.send({ op: 'counts' });
      await viewer.next((m) => m.type === 'counts');
      // 3 s of changes to many job types: totals change all the time.
      const end = Date.now() + 3000;
      let i = 0;
      while (Date.now() < end) {
        await db.query(`UPDATE reactor.scheduled_jobs SET job_type = 'type_' || ($1 % 200),
                          status = CASE status WHEN 'pending' THEN 'running' ELSE 'pending' END
                         WHERE id = 'job_' || ($1 % 500)`, [i++]);
      }
      const got = viewer.messages.filter((m) => m.type === 'counts').length;
      assert.ok(got >= 5, `the reading viewer got ${got} counts messages`);
      const sent = await metric(reactor.port, 'reactor_counts_messages_total');
      assert.ok(sent <= 3000 / 200 + 20, `${sent} counts messages encoded in 3 s (at most 5 a second)`);
      assert.equal(await metric(reactor.port, 'reactor_slow_consumer_closes_total'), 0, 'nobody closed for totals');
      assert.ok(!sleeper.destroyed);
      assert.ok(rss(reactor.child.pid) < 200 * MiB);
      sleeper.destroy();
      viewer.terminate();
    } finally {
      await reactor.stop();
      await db.end();
    }
  });
