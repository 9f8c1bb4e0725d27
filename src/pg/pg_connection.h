// PgConnection: the reactor's one non-blocking PostgreSQL connection, an explicit state
// machine driven by a single uv_poll_t on PQsocket() and one uv_timer_t.
//
//   kDisconnected --backoff--> kConnecting --PQconnectPoll ok--> kListening (LISTEN sent)
//   --> kCatchingUp (job_events read in flight) --> kReady --any failure--> kDisconnected
//
// While ready it feeds every notification on the channel into the DeliverySequencer and
// runs the sequencer's reads (catch-up, prune, truncated-payload fetches) and any other
// caller's queries through one in-order queue, one statement in flight at a time. After
// a long silence it checks itself with a NOTIFY to a private channel. Nothing blocks.
//
// Ownership: owns the PGconn, the poll handle and the timer. Close() must be called and
// its callback awaited before the object is destroyed. Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/sequencer.h"
#include "core/status.h"

struct pg_conn;
struct pg_result;

namespace reactor::pg {

struct ConnectionConfig {
  std::string conninfo;
  std::string channel = "job_status_changed";
  uint64_t connect_timeout_ms = 10000;
  uint64_t silence_check_ms = 60000;  // self-check after this long without a byte read
  uint64_t check_timeout_ms = 10000;  // ...which must be answered within this
  uint64_t backoff_min_ms = 100;
  uint64_t backoff_max_ms = 30000;
};

struct ConnectionStats {
  uint64_t connects = 0;
  uint64_t reconnects = 0;      // connection losses after a successful connect
  uint64_t connect_failures = 0;
  uint64_t notifications = 0;
  uint64_t queries = 0;
  uint64_t self_checks = 0;
  uint64_t catchup_rows = 0;
};

class PgConnection {
 public:
  enum class State { kDisconnected, kConnecting, kListening, kCatchingUp, kReady, kClosing, kClosed };
  static const char* StateName(State s);

  // Rows of one statement; `error` is set instead when it failed or the connection was
  // lost before it completed. `result` is valid only during the callback.
  using QueryCallback = std::function<void(const pg_result* result, const std::string& error)>;

  // `sequencer` must outlive this object.
  PgConnection(uv_loop_t* loop, ConnectionConfig config, DeliverySequencer& sequencer);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  void Start();
  // Stops everything; `done` runs once every handle is closed.
  void Close(std::function<void()> done);

  // Queues a statement (text parameters; nullopt = NULL). Fails without calling `cb`
  // unless the connection is catching up or ready. `cb` runs exactly once otherwise.
  Status Query(std::string sql, std::vector<std::optional<std::string>> params, QueryCallback cb);

  // Reads the full payload of a truncated event into the sequencer (its FetchFn).
  // Not connected: dropped; the sequencer's PendingFetches() are asked after catch-up.
  void Fetch(int64_t id);

  State state() const { return state_; }
  bool ready() const { return state_ == State::kReady; }
  const ConnectionStats& stats() const { return stats_; }
  // Called on every state change (after the change), with the reason.
  void set_state_observer(std::function<void(State, const std::string&)> fn) {
    on_state_ = std::move(fn);
  }
  // Called once per loop-pass batch of delivered events (a place to flush writes).
  void set_batch_observer(std::function<void()> fn) { on_batch_ = std::move(fn); }

 private:
  struct PendingQuery {
    std::string sql;
    std::vector<std::optional<std::string>> params;
    QueryCallback cb;
    bool internal = false;
  };
  struct PollHandle;  // uv_poll_t wrapper freed in its close callback

  void SetState(State s, const std::string& reason);
  void BeginConnect();
  void ContinueConnect();
  void OnConnected();
  PendingQuery NotifyKeyQuery();  // reads reactor.notify_key into the sequencer
  void Fail(const std::string& reason);  // drop the connection, schedule a reconnect
  void Drop();                           // close socket watch + PGconn, forget the statement in flight
  void FailQueued(const std::string& why);  // every queued statement's callback, with `why`
  void ScheduleReconnect();
  void WatchSocket(int events);
  void StopWatching();
  void OnPoll(int status, int events);
  void OnTimer();
  void ArmSilenceTimer();
  void ReadInput();
  void DrainNotifications();
  void SendNext();
  void Flush();
  void StartCatchUp(DeliverySequencer::CatchUpMode mode);
  void OnCatchUpResult(const pg_result* r, const std::string& error);

  static void PollCb(uv_poll_t* h, int status, int events);
  static void TimerCb(uv_timer_t* t);
  static void TimerClosedCb(uv_handle_t* h);

  uv_loop_t* loop_;
  ConnectionConfig config_;
  DeliverySequencer& sequencer_;
  pg_conn* conn_ = nullptr;
  PollHandle* poll_ = nullptr;
  int poll_fd_ = -1;
  int poll_events_ = 0;
  uv_timer_t timer_;
  bool timer_closed_ = false;
  enum class TimerRole { kNone, kBackoff, kConnectTimeout, kSilence, kCheck } timer_role_ = TimerRole::kNone;

  State state_ = State::kDisconnected;
  std::deque<PendingQuery> queue_;
  bool in_flight_ = false;      // queue_.front() has been sent
  pg_result* in_flight_result_ = nullptr;  // first result (or first error) of the statement
  bool ever_connected_ = false;
  uint64_t backoff_ms_ = 0;
  std::mt19937_64 rng_;
  std::string private_channel_;
  std::function<void(State, const std::string&)> on_state_;
  std::function<void()> on_batch_;
  std::function<void()> on_closed_;
  ConnectionStats stats_;
};

}  // namespace reactor::pg
