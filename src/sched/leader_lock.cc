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
      auto st = pg::queries::WaitForLeaderLock(session_, [this, pid](Result<pg::Done> r) {
        if (!r) {
          if (session_.ready()) session_.Reconnect("lock statement failed: " + r.error());
          return;
        }
        SetState(State::kLeader);
        ++acquired_;
        spdlog::info("scheduler: leader (advisory lock {} held by backend pid {})", pg::kLeaderLockKey, pid);
        if (observer_) observer_(true, "advisory lock acquired");
      });
      if (!st) {
        session_.Reconnect("sending the lock statement failed: " + st.message());
        return;
      }
      session_.ResetBackoff();
      SetState(State::kWaiting);
      spdlog::info("scheduler: waiting for leadership (advisory lock {}, backend pid {})", pg::kLeaderLockKey, pid);
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

void LeaderLock::Close(std::function<void()> done) {
  session_.Close([this, done = std::move(done)] {
    SetState(State::kClosed);
    if (done) done();
  });
}

}  // namespace reactor::sched
