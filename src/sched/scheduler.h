// Scheduler: what `reactor serve` wires in. The Ticker (deadline timer + reactor.tick())
// asking the store (the event connection's session), and the LeaderLock deciding whether
// this replica ticks. With `enabled` false (--no-scheduler) there is no lock connection
// and nothing ever ticks; events are still counted.
//
// Ownership: owns both parts; `store` must outlive it. Close() must be called and its
// callback awaited before destruction. Loop thread only.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "core/event.h"
#include "pg/store.h"
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
  Scheduler(uv_loop_t* loop, SchedulerConfig config, pg::SchedulerStore& store);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Starts seeking leadership (no-op when disabled).
  void Start();
  // Every delivered event, in stream order.
  void OnEvent(const Event& ev) { ticker_.OnEvent(ev); }
  // Whether the store's connection is caught up (statements make sense).
  void SetConnected(bool ready) { ticker_.SetConnected(ready); }
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
