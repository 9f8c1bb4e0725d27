// PgClientReads: the reads the hub makes on clients' behalf (resume, snapshot, a job's
// history, an action, the counts), on a
// pg::Session of their own ("reactor-reads" in pg_stat_activity), so that no client can
// delay the event path's catch-up, fetches or ticks, and with every piece bounded:
//   - at most `max_per_owner` reads outstanding per connection (a subscription that is
//     replaced or removed cancels its read, which frees its place at once);
//   - at most `max_total` outstanding in all (queued, waiting for the session, in flight);
//   - each statement ends within `statement_timeout_ms` (the server cancels it).
// A read over a bound, or asked while the session is in backoff, is refused at once
// (the hub answers `gap` or an error). While the session is connecting (at start-up),
// reads wait for it, within the same bounds.
//
// Ownership: owns its session. Close() must be called and its callback awaited before
// destruction. Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <unordered_map>

#include "core/defaults.h"
#include "pg/session.h"
#include "pg/store.h"

namespace reactor {
class MetricsText;
}

namespace reactor::pg {

struct ClientReadsConfig {
  std::string conninfo;
  size_t max_per_owner = defaults::kMaxReadsPerConnection;
  size_t max_total = defaults::kMaxDatabaseReads;
  uint64_t statement_timeout_ms = defaults::kReadTimeoutMs;
  uint64_t connect_timeout_ms = 10000;
};

struct ClientReadsStats {
  uint64_t reads = 0;
  uint64_t refused_per_owner = 0;
  uint64_t refused_total = 0;
  uint64_t refused_disconnected = 0;
  uint64_t cancelled = 0;
  uint64_t failed = 0;
};

class PgClientReads : public ClientReads {
 public:
  PgClientReads(uv_loop_t* loop, ClientReadsConfig config);
  ~PgClientReads() override;
  PgClientReads(const PgClientReads&) = delete;
  PgClientReads& operator=(const PgClientReads&) = delete;

  void Start() { session_.Start(); }
  void Close(std::function<void()> done);

  Result<Ticket> Resume(uint64_t owner, ResumeQuery q, Reply<ResumeRows> cb) override;
  Result<Ticket> Snapshot(uint64_t owner, SnapshotQuery q, Reply<SnapshotRows> cb) override;
  Result<Ticket> History(uint64_t owner, HistoryQuery q, Reply<HistoryRows> cb) override;
  Result<Ticket> Action(uint64_t owner, ActionRequest q, Reply<ActionResult> cb) override;
  Result<Ticket> Counts(uint64_t owner, Reply<CountsRows> cb) override;
  void Cancel(Ticket t) override;

  size_t outstanding() const { return reads_.size(); }
  const ClientReadsStats& stats() const { return stats_; }
  const SessionStats& session_stats() const { return session_.stats(); }
  bool ready() const { return session_.ready(); }
  // Its metrics (names prefixed reactor_, docs/operations.md).
  void WriteMetrics(MetricsText& m) const;

 private:
  // A read: waiting for the session, or submitted (session_ticket set).
  struct Read {
    uint64_t owner = 0;
    std::function<Status(Session::Ticket*)> submit;  // sends it on the session
    std::function<void(const std::string&)> fail;    // its callback, with an error
    std::optional<Session::Ticket> session_ticket;
  };

  // `t` was drawn by the caller (its callback names it); refused, it is simply unused.
  Result<Ticket> Admit(Ticket t, uint64_t owner, std::function<Status(Session::Ticket*)> submit,
                       std::function<void(const std::string&)> fail);
  void Submit(Ticket t);
  void Finish(Ticket t);  // the read's callback has run (or is about to): free its place
  void OnSessionState(Session::State s, const std::string& reason);
  template <class T>
  Reply<T> Wrap(Ticket t, Reply<T> cb);
  // Admits one read whose statement `send(session, reply, ticket)` submits.
  template <class T, class Send>
  Result<Ticket> Start(uint64_t owner, Reply<T> cb, Send send);

  ClientReadsConfig config_;
  Session session_;
  Ticket next_ = 1;
  std::unordered_map<Ticket, Read> reads_;
  std::unordered_map<uint64_t, size_t> per_owner_;
  std::deque<Ticket> waiting_;  // asked while the session was connecting
  bool timeout_set_ = false;
  ClientReadsStats stats_;
};

}  // namespace reactor::pg
