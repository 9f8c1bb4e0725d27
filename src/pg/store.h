// What the rest of the reactor asks of PostgreSQL, as typed requests and answers: the
// interfaces the hub and the scheduler depend on (and tests fake), the values that pass
// through them, and the names the SQL side shares with the daemon (lock keys, channel).
// The SQL text and row positions behind them live in pg/queries.cc alone.
//
// Pure: no libpq, no libuv. Every asynchronous call follows one convention: it either
// returns an error and never calls back, or calls back exactly once, later.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/defaults.h"
#include "core/filter.h"
#include "core/sequencer.h"
#include "core/status.h"

namespace reactor::pg {

// Advisory-lock keys, one per purpose (0x641933e81ae4000N). In pg_locks: locktype
// 'advisory', classid 1679373288, objid 451149824 + N, objsubid 1 (key split in halves).
inline constexpr int64_t kLeaderLockKey = 7212853350187139073;   // ...0001 scheduler leader (session lock)
inline constexpr int64_t kTickLockKey = 7212853350187139074;     // ...0002 reactor.tick() (transaction lock, in SQL)
inline constexpr int64_t kMigrateLockKey = 7212853350187139075;  // ...0003 `reactor migrate`
inline constexpr const char* kDefaultChannel = defaults::kChannel;

template <class T>
using Reply = std::function<void(Result<T>)>;
struct Done {};

// The catch-up read (core/sequencer.h explains it): rows with txid >= threshold, in one
// snapshot, payloads only for ids not in `seen_ids`.
struct CatchUpRead {
  std::optional<uint64_t> threshold;  // nullopt: the snapshot's own horizon
  std::vector<int64_t> seen_ids;
};
struct CatchUpRows {
  uint64_t horizon = 0;
  std::vector<DeliverySequencer::Row> rows;  // ordered by id
};

// Every event committed after `since` that `filter` matches (a superset: see
// docs/delivery.md), at most `limit` + 1 rows so that "more than limit" is visible.
struct ResumeQuery {
  int64_t since = 0;
  Filter filter;
  size_t limit = 100000;
};
struct ResumeRows {
  bool since_known = false;            // `since` is (still) a row of reactor.job_events
  std::vector<std::string> payloads;   // event JSON, ordered by id
};

// The matching jobs as of one snapshot, and the ids of recent events it already reflects.
struct SnapshotQuery {
  Filter filter;
  size_t limit = 5000;
  std::optional<uint64_t> horizon;  // the sequencer's
};
struct SnapshotRows {
  std::string jobs_json;  // a JSON array of job rows
  std::unordered_set<int64_t> reflected;
};

// One job's events, newest first (a job's timeline): at most `limit` + 1 rows so that
// "older ones exist" is visible. `only_user` set: that user's rows only.
struct HistoryQuery {
  std::string job_id;
  std::string source;             // empty: any table
  std::optional<int64_t> before;  // ids below it only
  std::string only_user;          // empty: every row (a privileged reader)
  size_t limit = 100;
};
struct HistoryRows {
  std::vector<std::string> payloads;  // event JSON, newest first
};

// An operator's action: reactor.job_action() (migration 006), on the client's behalf.
struct ActionRequest {
  std::string job_id;
  std::string action;
  std::string actor;      // who asked (the token's sub), recorded in the event
  std::string only_user;  // non-empty: the job must be this user's
  std::string arg;        // set_priority's priority
};
// A refusal by the database is an answer, not an error: `code` says which
// ("not_found", "forbidden", "conflict", "bad_request"), `message` why. A transport
// failure (connection lost, timeout, cancelled) is the Result's error.
struct ActionResult {
  std::string code;  // empty: done
  std::string message;
  int64_t event_id = 0;
};

// reactor.scheduled_jobs by status × job type, and the snapshot the count saw
// (pg_current_snapshot() as text) so that the stream can be laid over it exactly.
struct CountsRows {
  struct Row {
    std::string status;
    std::string job_type;
    int64_t n = 0;
  };
  std::vector<Row> rows;
  std::string snapshot;
};

// reactor.tick(): the next deadline (nullopt: nothing scheduled) and the statement's
// now(), both as Unix microseconds in the server's clock.
struct TickAnswer {
  std::optional<int64_t> next_us;
  int64_t server_now_us = 0;
};

// Reads (and actions) made on a client's behalf (resume, snapshot, history, action, the
// counts). Bounded: per owner (a connection)
// and in total; a read over either bound is refused at once. They never delay the
// event path: they run on a session of their own.
class ClientReads {
 public:
  using Ticket = uint64_t;
  virtual ~ClientReads() = default;
  virtual Result<Ticket> Resume(uint64_t owner, ResumeQuery q, Reply<ResumeRows> cb) = 0;
  virtual Result<Ticket> Snapshot(uint64_t owner, SnapshotQuery q, Reply<SnapshotRows> cb) = 0;
  virtual Result<Ticket> History(uint64_t owner, HistoryQuery q, Reply<HistoryRows> cb) = 0;
  virtual Result<Ticket> Action(uint64_t owner, ActionRequest q, Reply<ActionResult> cb) = 0;
  virtual Result<Ticket> Counts(uint64_t owner, Reply<CountsRows> cb) = 0;
  // The callback runs with an error "cancelled" (at once, or when the server answers).
  virtual void Cancel(Ticket t) = 0;
};

// What the scheduler's clock asks.
class SchedulerStore {
 public:
  virtual ~SchedulerStore() = default;
  virtual Status Tick(Reply<TickAnswer> cb) = 0;
  // clock_timestamp() as Unix microseconds.
  virtual Status Clock(Reply<int64_t> cb) = 0;
  // Prepares the session to write due events fast (reactor.warm_up(), migration 005);
  // writes nothing. An error (an older schema) only means the first event is slower.
  virtual Status WarmUp(Reply<Done> cb) = 0;
};

}  // namespace reactor::pg
