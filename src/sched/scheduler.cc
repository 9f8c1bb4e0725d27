#include "sched/scheduler.h"

#include <spdlog/spdlog.h>

namespace reactor::sched {

Scheduler::Scheduler(uv_loop_t* loop, SchedulerConfig config, pg::SchedulerStore& store)
    : config_(std::move(config)), ticker_(loop, config_.ticker, store) {
  open_parts_ = 1;
  if (config_.enabled) {
    lock_ = std::make_unique<LeaderLock>(loop, config_.lock);
    lock_->set_observer([this](bool leader, const std::string&) { ticker_.SetLeader(leader); });
    ++open_parts_;
  }
}

Scheduler::~Scheduler() = default;

void Scheduler::Start() {
  if (!lock_) {
    spdlog::info("scheduler: off on this replica (--no-scheduler)");
    return;
  }
  lock_->Start();
}

void Scheduler::Close(std::function<void()> done) {
  on_closed_ = std::move(done);
  if (closing_) return;
  closing_ = true;
  ticker_.Close([this] { OnPartClosed(); });
  if (lock_) lock_->Close([this] { OnPartClosed(); });
}

void Scheduler::OnPartClosed() {
  if (--open_parts_ == 0 && on_closed_) {
    auto cb = std::move(on_closed_);
    cb();
  }
}

SchedulerMetrics Scheduler::metrics() const {
  SchedulerMetrics m;
  ticker_.FillMetrics(m);
  m.enabled = config_.enabled;
  if (lock_) {
    m.leader = lock_->leader();
    m.leader_acquired = lock_->acquired();
    m.leader_lost = lock_->lost();
  }
  return m;
}

}  // namespace reactor::sched
