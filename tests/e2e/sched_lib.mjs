// What the scheduler's end-to-end tests share: a reactor that is the leader and
// has ticked once, and the due/status events it caused, measured in the server's clock.
import { startReactor } from './lib.mjs';

// Starts `reactor serve` on `url` and waits until it has ticked once as the leader.
export async function startLeader(url, extra = []) {
  const reactor = startReactor(['serve', '--database-url', url, '--listen', '127.0.0.1:0', ...extra]);
  await reactor.ready;
  await reactor.waitFor(/scheduler: leader/, 10000, true);
  await reactor.waitFor(/scheduler: server clock is/, 10000, true);
  return reactor;
}

// Due events of `jobs` (all when null): job id, scheduled_for (as written in the event)
// and lateness = created_at - scheduled_for in milliseconds, in event order.
export async function dueEvents(db, jobs = null) {
  const r = await db.query(
    `SELECT job_id, payload->>'scheduled_for' AS scheduled_for,
            extract(epoch FROM created_at - (payload->>'scheduled_for')::timestamptz) * 1000 AS late_ms
       FROM reactor.job_events
      WHERE kind = 'due' AND ($1::text[] IS NULL OR job_id = ANY($1))
      ORDER BY id`, [jobs]);
  return r.rows.map((x) => ({ ...x, late_ms: Number(x.late_ms) }));
}

// Calls of the reactor's tick statement so far in this database (pg_stat_statements).
export async function tickCalls(db) {
  const r = await db.query(
    `SELECT coalesce(sum(calls), 0)::int AS n FROM pg_stat_statements
      WHERE toplevel AND query LIKE '%FROM reactor.tick()%'
        AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`);
  return r.rows[0].n;
}

// The server's now() in milliseconds since the epoch.
export async function serverNow(db) {
  const r = await db.query('SELECT extract(epoch FROM clock_timestamp()) * 1000 AS t');
  return Number(r.rows[0].t);
}

// The log line's own timestamp (the reactor's ISO prefix), in ms since the epoch.
export function logTime(stderr, re) {
  const line = stderr.split('\n').find((l) => re.test(l));
  return line ? Date.parse(line.split(' ')[0]) : null;
}

// One metric's value from the reactor's /metrics page (the port from its log).
export async function metric(reactor, name) {
  const m = reactor.stderr.match(/listening on ([^\s:]+):(\d+)/);
  if (!m) throw new Error('no "listening on" line in the reactor log');
  const text = await (await fetch(`http://${m[1]}:${m[2]}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}
