// LeaderLock: which replica ticks. A second, minimal non-blocking PostgreSQL connection
// that sends `SELECT pg_advisory_lock(kLeaderLockKey)` and simply waits for the answer.
// The answer means this replica holds the session-level lock: it is the leader until
// that connection ends. PostgreSQL releases the lock when the session ends (process
// killed, connection cut, clean shutdown), and the next waiting replica's statement
// returns at that moment: failover needs no polling on either side.
//
//   kConnecting --connected, lock statement sent--> kWaiting --answer--> kLeader
//   any failure --> kBackoff (leadership, if held, is lost at once) --> kConnecting
//
// The connection uses the serve keepalives (ConnPurpose::kServe) so that a half-open
// link is noticed, is named "reactor-scheduler" in pg_stat_activity (unless the URL sets
// an application_name), and turns off statement_timeout, lock_timeout and
// idle_session_timeout for itself, which would otherwise end the wait or the session.
//
// Ownership: owns the PGconn, a poll handle and a timer. Close() must be called and its
// callback awaited before destruction. Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <random>
#include <string>

struct pg_conn;

namespace reactor::sched {

// 0x641933e81ae40001; reactor.tick() serialises itself with ...0002 (a transaction lock).
// In pg_locks: locktype 'advisory', classid 1679373288, objid 451149825, objsubid 1.
inline constexpr int64_t kLeaderLockKey = 7212853350187139073;

struct LeaderLockConfig {
  std::string conninfo;
  int64_t key = kLeaderLockKey;
  uint64_t connect_timeout_ms = 10000;
  uint64_t backoff_min_ms = 100;
  uint64_t backoff_max_ms = 5000;
};

class LeaderLock {
 public:
  enum class State { kIdle, kConnecting, kWaiting, kLeader, kBackoff, kClosing, kClosed };
  static const char* StateName(State s);

  // Called when leadership is gained (true) or lost (false), with the reason.
  using Observer = std::function<void(bool leader, const std::string& reason)>;

  LeaderLock(uv_loop_t* loop, LeaderLockConfig config);
  ~LeaderLock();
  LeaderLock(const LeaderLock&) = delete;
  LeaderLock& operator=(const LeaderLock&) = delete;

  void set_observer(Observer fn) { observer_ = std::move(fn); }
  void Start();
  // Ends the session (releasing the lock for the next replica); `done` runs once every
  // handle is closed.
  void Close(std::function<void()> done);

  State state() const { return state_; }
  bool leader() const { return state_ == State::kLeader; }
  uint64_t acquired() const { return acquired_; }
  uint64_t lost() const { return lost_; }

 private:
  struct PollHandle;

  void BeginConnect();
  void ContinueConnect();
  void OnConnected();
  void ReadInput();
  void Fail(const std::string& reason);
  void Finish();  // drop the connection and its poll handle
  void Watch(int events);
  void OnPoll(int status, int events);
  void OnTimer();
  void SetState(State s);

  static void PollCb(uv_poll_t* h, int status, int events) noexcept;
  static void TimerCb(uv_timer_t* t) noexcept;

  uv_loop_t* loop_;
  LeaderLockConfig config_;
  Observer observer_;
  pg_conn* conn_ = nullptr;
  PollHandle* poll_ = nullptr;
  int poll_fd_ = -1;
  int poll_events_ = 0;
  uv_timer_t timer_;
  bool timer_closed_ = false;
  State state_ = State::kIdle;
  int backend_pid_ = 0;
  uint64_t backoff_ms_ = 0;
  uint64_t acquired_ = 0;
  uint64_t lost_ = 0;
  std::mt19937_64 rng_;
  std::function<void()> on_closed_;
};

}  // namespace reactor::sched
