// PgConnection: the reactor's event connection. One pg::Session that LISTENs on the
// channel and feeds the DeliverySequencer, whose reads (catch-up, prune, truncated
// payloads) it runs; the scheduler's statements (SchedulerStore) share it, since they
// are only meaningful while it is caught up.
//
//   kDisconnected --session ready--> kListening (LISTEN sent) --> kCatchingUp (job_events
//   read in flight) --> kReady --session lost--> kDisconnected (the session reconnects)
//
// After a long silence the session checks itself with a NOTIFY to a private channel,
// which proves the notification path as well as the socket. Nothing blocks.
//
// Ownership: owns its session. Close() must be called and its callback awaited before
// the object is destroyed. Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>

#include "core/sequencer.h"
#include "core/status.h"
#include "pg/session.h"
#include "pg/store.h"

namespace reactor {
class MetricsText;
}

namespace reactor::pg {

struct ConnectionConfig {
  std::string conninfo;
  std::string channel = kDefaultChannel;
  uint64_t connect_timeout_ms = 10000;
  uint64_t silence_check_ms = 60000;  // self-check after this long without a byte read
  uint64_t check_timeout_ms = 10000;  // ...which must be answered within this
  uint64_t backoff_min_ms = 100;
  uint64_t backoff_max_ms = 30000;
};

struct ConnectionStats {
  uint64_t notifications = 0;
  uint64_t catchup_rows = 0;
};

class PgConnection : public SchedulerStore {
 public:
  enum class State { kDisconnected, kConnecting, kListening, kCatchingUp, kReady, kClosing, kClosed };
  static const char* StateName(State s);

  // `sequencer` must outlive this object.
  PgConnection(uv_loop_t* loop, ConnectionConfig config, DeliverySequencer& sequencer);
  ~PgConnection() override;
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  void Start();
  // Stops everything; `done` runs once every handle is closed.
  void Close(std::function<void()> done);

  // Reads the full payload of a truncated event into the sequencer (its FetchFn).
  // Not connected: dropped; the sequencer's PendingFetches() are asked after catch-up.
  void Fetch(int64_t id);

  // SchedulerStore: only while catching up or ready.
  Status Tick(Reply<TickAnswer> cb) override;
  Status Clock(Reply<int64_t> cb) override;
  Status WarmUp(Reply<Done> cb) override;

  State state() const { return state_; }
  bool ready() const { return state_ == State::kReady; }
  const ConnectionStats& stats() const { return stats_; }
  const SessionStats& session_stats() const { return session_.stats(); }
  // Its metrics (names prefixed reactor_, docs/operations.md).
  void WriteMetrics(MetricsText& m) const;
  // Called on every state change (after the change), with the reason.
  void set_state_observer(std::function<void(State, const std::string&)> fn) { on_state_ = std::move(fn); }
  // Called once per loop-pass batch of delivered events (a place to flush writes).
  void set_batch_observer(std::function<void()> fn) { on_batch_ = std::move(fn); }

 private:
  void SetState(State s, const std::string& reason);
  void OnSessionState(Session::State s, const std::string& reason);
  void OnNotify(const char* channel, const char* payload);
  void OnInput();
  void ReadNotifyKey();  // into the sequencer, before the catch-up
  void StartCatchUp(DeliverySequencer::CatchUpMode mode);
  void OnCatchUp(Result<CatchUpRows> rows, bool was_catching_up);
  bool usable() const { return state_ == State::kReady || state_ == State::kCatchingUp; }

  ConnectionConfig config_;
  DeliverySequencer& sequencer_;
  std::string private_channel_;
  Session session_;
  State state_ = State::kDisconnected;
  std::function<void(State, const std::string&)> on_state_;
  std::function<void()> on_batch_;
  ConnectionStats stats_;
};

}  // namespace reactor::pg
