// Scheduler: what `reactor serve` wires in. The Ticker (deadline timer + reactor.tick())
// running on the event connection's query queue, and the LeaderLock deciding whether
// this replica ticks. With `enabled` false (--no-scheduler) there is no lock connection
// and nothing ever ticks; events are still counted.
//
// Ownership: owns both parts; `conn` must outlive it. Close() must be called and its
// callback awaited before destruction. Loop thread only.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "core/event.h"
#include "pg/pg_connection.h"
#include "sched/leader_lock.h"
#include "sched/metrics.h"
#include "sched/ticker.h"

namespace reactor::sched {

struct SchedulerConfig {
  bool enabled = true;  // false: --no-scheduler
  TickerConfig ticker;
  LeaderLockConfig lock;  // lock.conninfo: the same database as the event connection
};

class Scheduler {
 public:
  Scheduler(uv_loop_t* loop, SchedulerConfig config, pg::PgConnection& conn);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Starts seeking leadership (no-op when disabled).
  void Start();
  // Every delivered event, in stream order.
  void OnEvent(const Event& ev) { ticker_.OnEvent(ev); }
  // Every state change of the event connection.
  void OnConnectionState(pg::PgConnection::State state);
  // Gives up leadership and closes every handle; `done` runs after the last one.
  void Close(std::function<void()> done);

  SchedulerMetrics metrics() const;
  bool leader() const { return lock_ && lock_->leader(); }

 private:
  void OnPartClosed();

  SchedulerConfig config_;
  Ticker ticker_;
  std::unique_ptr<LeaderLock> lock_;
  int open_parts_ = 0;
  bool closing_ = false;
  std::function<void()> on_closed_;
};

}  // namespace reactor::sched
