// pg::Session: one non-blocking libpq session on the loop, the only code that drives
// PQconnectPoll, PQconsumeInput and PQgetResult. Every reactor connection is one
// (the event stream, the scheduler's lock, client reads); what they say is theirs.
//
//   kIdle --Start--> kConnecting --PQconnectPoll ok--> kReady --any failure--> kBackoff
//   kBackoff --jittered, doubling delay--> kConnecting          Close --> kClosing --> kClosed
//
// Statements run one at a time, in the order submitted (Urgent ones go to the front of
// what is not yet sent). The one error convention, libuv's: Submit() either returns an
// error and never calls the callback, or the callback runs exactly once, later, with the
// result or with an error (failed statement, connection lost, cancelled, shutting down).
// A callback may submit, cancel, Reconnect() or Close().
//
// Liveness: TCP keepalives (ConnPurpose::kServe), and, when `silence_check_ms` is set,
// a check statement after that long without a byte from the server, which must be
// answered within `check_timeout_ms`.
//
// Cancel() of a statement not yet sent removes it; of the statement in flight sends a
// cancel request from libuv's thread pool (PQcancel blocks), so the loop never waits;
// the next statement is sent only once that request has reached the server, so that it
// cannot cancel the wrong statement.
//
// Ownership: owns the PGconn, a poll handle and a timer. Close() must be called and its
// callback awaited before destruction. Loop thread only; libuv callbacks are noexcept.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/status.h"

struct pg_conn;
struct pg_result;

namespace reactor::pg {

struct SessionConfig {
  std::string conninfo;
  std::string name = "postgres";      // log prefix: "postgres", "scheduler lock", ...
  std::string application_name;       // set unless the URL names one; empty: libpq's default
  uint64_t connect_timeout_ms = 10000;
  uint64_t backoff_min_ms = 100;
  uint64_t backoff_max_ms = 30000;
  uint64_t silence_check_ms = 0;      // 0: no check
  uint64_t check_timeout_ms = 10000;
  std::string check_sql = "SELECT 1";
};

struct SessionStats {
  uint64_t connects = 0;
  uint64_t reconnects = 0;        // losses after a successful connect
  uint64_t connect_failures = 0;
  uint64_t statements = 0;        // sent
  uint64_t self_checks = 0;
  uint64_t cancels = 0;           // cancelled (queued or in flight)
};

class Session {
 public:
  enum class State { kIdle, kConnecting, kReady, kBackoff, kClosing, kClosed };
  static const char* StateName(State s);

  // `result` is valid only during the call; `error` is set when it failed — then
  // `result` is the server's error result when there is one (for PQresultErrorField),
  // null when the statement was cancelled or the connection failed.
  using Callback = std::function<void(const pg_result* result, const std::string& error)>;
  using Ticket = uint64_t;

  struct Statement {
    std::string sql;
    std::vector<std::optional<std::string>> params;  // text; nullopt = NULL
    Callback cb;
    // Without parameters, sent with the simple protocol: may hold several statements
    // (their first error, else the last result, is reported).
    bool simple = false;
    bool urgent = false;  // ahead of everything not yet sent
  };

  Session(uv_loop_t* loop, SessionConfig config);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Called after every state change, with the reason.
  void set_state_observer(std::function<void(State, const std::string&)> fn) { on_state_ = std::move(fn); }
  // Notifications, as they are read.
  void set_notify_observer(std::function<void(const char* channel, const char* payload)> fn) {
    on_notify_ = std::move(fn);
  }
  // After each batch of input has been handled (results and notifications).
  void set_input_observer(std::function<void()> fn) { on_input_ = std::move(fn); }

  void Start();
  // Fails unless kReady. On success `*ticket` (when given) names it for Cancel().
  Status Submit(Statement st, Ticket* ticket = nullptr);
  // The callback runs with error "cancelled" (now for a queued statement, when the
  // server answers for the one in flight). False: no such statement (already done).
  bool Cancel(Ticket ticket);
  // Drops the connection (every callback gets `reason`) and connects again after the
  // backoff. The backoff grows until ResetBackoff(): the owner says when a connection
  // turned out usable (e.g. its own set-up statements succeeded).
  void Reconnect(const std::string& reason);
  void ResetBackoff() { backoff_ms_ = 0; }
  // Ends the session; `done` runs once every handle (and cancel request) is finished.
  void Close(std::function<void()> done);

  State state() const { return state_; }
  bool ready() const { return state_ == State::kReady; }
  bool busy() const { return in_flight_; }
  size_t queued() const { return queue_.size(); }
  int backend_pid() const { return backend_pid_; }
  int server_version() const { return server_version_; }
  const SessionStats& stats() const { return stats_; }
  const SessionConfig& config() const { return config_; }
  // For statement text that needs an identifier (LISTEN "name"); requires a connection.
  std::string QuoteIdentifier(const std::string& name) const;

 private:
  struct Pending {
    Ticket ticket;
    Statement st;
  };
  struct PollHandle;
  struct CancelWork;
  enum class TimerRole { kNone, kBackoff, kConnectTimeout, kSilence, kCheck };

  void SetState(State s, const std::string& reason);
  void BeginConnect();
  void ContinueConnect();
  void OnConnected();
  void Fail(const std::string& reason);
  void Drop();
  void FailQueued(const std::string& why);
  void ScheduleReconnect();
  void Watch(int events);
  void StopWatching();
  void OnPoll(int status, int events);
  void OnTimer();
  void ArmSilence();
  void ReadInput();
  void SendNext();
  void Flush();
  void SendCancel();
  void MaybeFinishClose();

  static void PollCb(uv_poll_t* h, int status, int events) noexcept;
  static void TimerCb(uv_timer_t* t) noexcept;

  uv_loop_t* loop_;
  SessionConfig config_;
  std::string notice_prefix_;  // outlives every PGconn (libpq keeps the pointer)
  pg_conn* conn_ = nullptr;
  PollHandle* poll_ = nullptr;
  int poll_fd_ = -1;
  int poll_events_ = 0;
  uv_timer_t timer_;
  bool timer_closed_ = false;
  TimerRole timer_role_ = TimerRole::kNone;
  State state_ = State::kIdle;
  std::deque<Pending> queue_;
  bool in_flight_ = false;           // queue_.front() has been sent
  bool in_flight_cancelled_ = false;
  pg_result* in_flight_result_ = nullptr;
  Ticket next_ticket_ = 1;
  int cancels_running_ = 0;
  int backend_pid_ = 0;
  int server_version_ = 0;
  uint64_t backoff_ms_ = 0;
  std::mt19937_64 rng_;
  std::function<void(State, const std::string&)> on_state_;
  std::function<void(const char*, const char*)> on_notify_;
  std::function<void()> on_input_;
  std::function<void()> on_closed_;
  SessionStats stats_;
};

}  // namespace reactor::pg
