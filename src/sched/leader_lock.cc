#include "sched/leader_lock.h"

#include <spdlog/spdlog.h>

#include "pg/conninfo.h"
#include "pg/queries.h"
#include "pg/store.h"

namespace reactor::sched {
namespace {

pg::SessionConfig MakeSessionConfig(const LeaderLockConfig& c) {
  pg::SessionConfig s;
  s.conninfo = c.conninfo;
  s.name = "scheduler lock";
  s.application_name = "reactor-scheduler";
  s.connect_timeout_ms = c.connect_timeout_ms;
  s.backoff_min_ms = c.backoff_min_ms;
  s.backoff_max_ms = c.backoff_max_ms;
  return s;
}

}  // namespace

const char* LeaderLock::StateName(State s) {
  switch (s) {
    case State::kIdle: return "idle";
    case State::kConnecting: return "connecting";
    case State::kWaiting: return "waiting";
    case State::kLeader: return "leader";
    case State::kBackoff: return "backoff";
    case State::kClosing: return "closing";
    case State::kClosed: return "closed";
  }
  return "?";
}

LeaderLock::LeaderLock(uv_loop_t* loop, LeaderLockConfig config)
    : config_(std::move(config)), session_(loop, MakeSessionConfig(config_)) {
  session_.set_state_observer([this](pg::Session::State s, const std::string& why) { OnSessionState(s, why); });
}

LeaderLock::~LeaderLock() = default;

void LeaderLock::SetState(State s) {
  if (s != state_) spdlog::debug("scheduler lock: {} -> {}", StateName(state_), StateName(s));
  state_ = s;
}

void LeaderLock::Start() {
  if (state_ != State::kIdle) return;
  spdlog::info("scheduler: seeking leadership (advisory lock {} on a second connection to {})",
               pg::kLeaderLockKey, pg::DescribeConnInfo(config_.conninfo));
  session_.Start();
}

void LeaderLock::OnSessionState(pg::Session::State s, const std::string& reason) {
  switch (s) {
    case pg::Session::State::kConnecting:
      SetState(State::kConnecting);
      return;
    case pg::Session::State::kReady: {
      const int pid = session_.backend_pid();
      auto st = pg::queries::PrepareLeaderWait(session_, [this, pid](Result<pg::Done> r) {
        if (!r) {
          if (!session_.ready()) return;
          if (r.error().find("scheduler_leader") != std::string::npos &&
              r.error().find("does not exist") != std::string::npos) {
            WaitOnAdvisoryLock(pid);
            return;
          }
          session_.Reconnect("preparing the lock statement failed: " + r.error());
          return;
        }
        WaitOnTable(pid);
      });
      if (!st) {
        session_.Reconnect("sending the lock statement failed: " + st.message());
        return;
      }
      SetState(State::kWaiting);
      return;
    }
    case pg::Session::State::kBackoff: {
      const bool was_leader = state_ == State::kLeader;
      SetState(State::kBackoff);
      if (was_leader) {
        ++lost_;
        spdlog::warn("scheduler: leadership lost: {}", reason);
        if (observer_) observer_(false, reason);
      }
      return;
    }
    case pg::Session::State::kClosing:
      if (state_ == State::kLeader) spdlog::info("scheduler: giving up leadership (shutting down)");
      SetState(State::kClosing);
      return;
    case pg::Session::State::kClosed:
    case pg::Session::State::kIdle:
      return;
  }
}

void LeaderLock::WaitOnTable(int pid) {
  auto st = pg::queries::WaitForLeaderTable(session_, [this, pid](Result<pg::Done> r) {
    if (!r) {
      if (session_.ready()) session_.Reconnect("lock statement failed: " + r.error());
      return;
    }
    // Replicas older than migration 004 elect on the advisory lock alone: hold it too, so
    // that an old and a new replica never lead at once during an upgrade.
    auto st2 = pg::queries::TakeLeaderAdvisoryLock(session_, [this, pid](Result<pg::Done> r2) {
      if (!r2) {
        if (session_.ready()) session_.Reconnect("advisory lock statement failed: " + r2.error());
        return;
      }
      BecomeLeader(pid, "reactor.scheduler_leader locked");
    });
    if (!st2) session_.Reconnect("sending the advisory lock statement failed: " + st2.message());
  });
  if (!st) {
    session_.Reconnect("sending the lock statement failed: " + st.message());
    return;
  }
  session_.ResetBackoff();
  spdlog::info("scheduler: waiting for leadership (LOCK TABLE reactor.scheduler_leader, backend pid {})", pid);
}

void LeaderLock::WaitOnAdvisoryLock(int pid) {
  spdlog::warn("scheduler: reactor.scheduler_leader does not exist (run `reactor migrate`); electing on the "
               "advisory lock alone, whose wait holds a snapshot");
  auto st = pg::queries::WaitForLeaderLock(session_, [this, pid](Result<pg::Done> r) {
    if (!r) {
      if (session_.ready()) session_.Reconnect("lock statement failed: " + r.error());
      return;
    }
    BecomeLeader(pid, "advisory lock acquired");
  });
  if (!st) {
    session_.Reconnect("sending the lock statement failed: " + st.message());
    return;
  }
  session_.ResetBackoff();
  spdlog::info("scheduler: waiting for leadership (advisory lock {}, backend pid {})", pg::kLeaderLockKey, pid);
}

void LeaderLock::BecomeLeader(int pid, const std::string& how) {
  SetState(State::kLeader);
  ++acquired_;
  spdlog::info("scheduler: leader (reactor.scheduler_leader and advisory lock {} held by backend pid {})",
               pg::kLeaderLockKey, pid);
  if (observer_) observer_(true, how);
}

void LeaderLock::Close(std::function<void()> done) {
  session_.Close([this, done = std::move(done)] {
    SetState(State::kClosed);
    if (done) done();
  });
}

}  // namespace reactor::sched
