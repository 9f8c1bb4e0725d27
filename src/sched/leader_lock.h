// LeaderLock: which replica ticks. A pg::Session of its own that opens a transaction and
// sends `LOCK TABLE reactor.scheduler_leader IN EXCLUSIVE MODE` (after an ACCESS SHARE
// lock that warms the catalog caches, so that the wait takes no snapshot and holds no
// backend_xmin), then takes the session-level advisory lock pg::kLeaderLockKey (what
// reactors before migration 004 elect on). The answers mean this replica is the leader
// until that session ends. PostgreSQL releases both locks when the session ends (process
// killed, connection cut, clean shutdown), and the next waiting replica's statement
// returns at that moment: failover needs no polling on either side. Without migration
// 004 it waits for the advisory lock alone (which holds a snapshot while it waits).
//
//   kConnecting --connected, lock statements sent--> kWaiting --answers--> kLeader
//   any failure --> kBackoff (leadership, if held, is lost at once) --> kConnecting
//
// The session uses the serve keepalives so that a half-open link is noticed, is named
// "reactor-scheduler" in pg_stat_activity (unless the URL sets an application_name),
// and turns off statement_timeout, lock_timeout, idle_session_timeout and
// idle_in_transaction_session_timeout for itself, which would otherwise end the wait, the
// session or its open transaction.
//
// Ownership: owns its session. Close() must be called and its callback awaited before
// destruction. Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>

#include "pg/session.h"

namespace reactor::sched {

struct LeaderLockConfig {
  std::string conninfo;
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
  void OnSessionState(pg::Session::State s, const std::string& reason);
  void SetState(State s);
  void WaitOnTable(int pid);
  void WaitOnAdvisoryLock(int pid);
  void BecomeLeader(int pid, const std::string& how);

  LeaderLockConfig config_;
  pg::Session session_;
  Observer observer_;
  State state_ = State::kIdle;
  uint64_t acquired_ = 0;
  uint64_t lost_ = 0;
};

}  // namespace reactor::sched
