// A job's timeline in the dashboard's panel: its events newest first, merged from the
// `history` op's pages and the live stream (or the replay's timeline), with the time
// each attempt ran. Pure: no DOM, no clock, no network.

export const TERMINAL = new Set(['completed', 'failed', 'cancelled', 'expired']);

// `list` and `more` merged: one event per id (events without an id are kept as they
// come), newest (highest id) first. Per job, ids grow in commit order.
export function mergeEvents(list, more) {
  const byId = new Map();
  const rest = [];
  for (const ev of [...list, ...more]) {
    if (!ev || typeof ev !== 'object') continue;
    if (typeof ev.id === 'number') byId.set(ev.id, ev);
    else rest.push(ev);
  }
  return [...byId.values()].sort((a, b) => b.id - a.id).concat(rest);
}

// How long each attempt ran: for an event that ends a run (running -> completed,
// failed, cancelled or expired), the time since the event that started it, by event id.
// A start outside `events` (an older page not loaded yet) gives no duration.
export function runDurations(events) {
  const out = new Map();
  let started = null;  // { at, attempt }
  for (let i = events.length - 1; i >= 0; i--) {  // oldest first
    const ev = events[i];
    const at = Date.parse(ev.at);
    if (ev.status === 'running' && ev.old_status !== 'running') {
      started = Number.isFinite(at) ? { at, attempt: ev.attempt } : null;
    } else if (ev.old_status === 'running' && ev.status !== 'running') {
      if (started && Number.isFinite(at) && typeof ev.id === 'number') out.set(ev.id, at - started.at);
      started = null;
    }
  }
  return out;
}

// "850 ms", "12.4 s", "3 min 05 s", "2 h 04 min".
export function formatDuration(ms) {
  if (!Number.isFinite(ms) || ms < 0) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

// The change an event made, for one line of the panel: "pending → running",
// "progress 40%", "due", an action of kind `action` ("set_priority high").
export function changeText(ev) {
  if (ev.kind === 'progress') return `progress ${ev.progress ?? '—'}%${ev.message ? ` · ${ev.message}` : ''}`;
  if (ev.kind === 'due') return 'due';
  if (ev.kind === 'action') {
    const extra = ev.action === 'set_priority' && ev.priority ? ` ${ev.priority}` : '';
    return `${ev.action ?? 'action'}${extra}`;
  }
  const from = ev.old_status ?? 'new';
  return from === ev.status ? String(ev.status) : `${from} → ${ev.status}`;
}
