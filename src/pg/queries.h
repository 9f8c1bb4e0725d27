// Every statement the daemon sends, with the decoding of its rows: the only place with
// SQL text and row positions (`reactor migrate` runs the embedded migration files).
// Each function submits one statement on `session` and follows Session::Submit's
// convention: an error now and no callback, or exactly one callback later.
//
// Loop thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "pg/session.h"
#include "pg/store.h"

namespace reactor::pg::queries {

// LISTEN on each channel (one statement, sent ahead of anything queued).
Status Listen(Session& s, const std::vector<std::string>& channels, Reply<Done> cb);
// The self-check that proves notifications still arrive: a NOTIFY to `channel`.
std::string SelfCheckSql(const std::string& channel);

// The notifications' MAC key (migration 003, docs/security.md) as hex.
Status NotifyKey(Session& s, Reply<std::string> cb);

Status CatchUp(Session& s, const CatchUpRead& read, Reply<CatchUpRows> cb);
// The full payload of event `id`; nullopt when the row is gone.
Status Fetch(Session& s, int64_t id, Reply<std::optional<std::string>> cb);

Status Resume(Session& s, const ResumeQuery& q, Reply<ResumeRows> cb, Session::Ticket* ticket);
Status Snapshot(Session& s, const SnapshotQuery& q, Reply<SnapshotRows> cb, Session::Ticket* ticket);

Status History(Session& s, const HistoryQuery& q, Reply<HistoryRows> cb, Session::Ticket* ticket);
Status Action(Session& s, const ActionRequest& q, Reply<ActionResult> cb, Session::Ticket* ticket);
Status Counts(Session& s, Reply<CountsRows> cb, Session::Ticket* ticket);
// The answer for a refusal of reactor.job_action with SQLSTATE `sqlstate` (pure).
ActionResult ActionRefusal(std::string_view sqlstate, std::string message);

Status Tick(Session& s, Reply<TickAnswer> cb);
Status Clock(Session& s, Reply<int64_t> cb);
Status WarmUp(Session& s, Reply<Done> cb);

// The scheduler's election (docs/scheduler.md, "Leader election"), three statements in
// turn on the lock session:
//   PrepareLeaderWait: settings so that the server's timeouts never end the session or its
//     open transaction, BEGIN, and an ACCESS SHARE lock on reactor.scheduler_leader (which
//     waits for nobody; it loads the catalog entries the next statement needs);
//   WaitForLeaderTable: LOCK TABLE ... IN EXCLUSIVE MODE, which waits without a snapshot
//     (no backend_xmin) until the leader's session ends;
//   TakeLeaderAdvisoryLock: the session-level advisory lock kLeaderLockKey, which older
//     reactors (before migration 004) elect on; immediate unless one of them leads.
// WaitForLeaderLock is the election without migration 004 (no reactor.scheduler_leader):
// it ends the failed transaction and waits for the advisory lock alone.
Status PrepareLeaderWait(Session& s, Reply<Done> cb);
Status WaitForLeaderTable(Session& s, Reply<Done> cb);
Status TakeLeaderAdvisoryLock(Session& s, Reply<Done> cb);
Status WaitForLeaderLock(Session& s, Reply<Done> cb);
// For client reads: a statement may not hold the read session for longer than this.
Status SetStatementTimeout(Session& s, uint64_t ms, Reply<Done> cb);

// Pure helpers (unit-tested): a PostgreSQL text[] literal, "{1,2,3}" parsed as ids.
std::optional<std::string> TextArray(const std::vector<std::string>& v);
std::unordered_set<int64_t> ParseIdArray(std::string_view text);

}  // namespace reactor::pg::queries
