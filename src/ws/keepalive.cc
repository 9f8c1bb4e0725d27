#include "ws/keepalive.h"

namespace reactor::ws {

Keepalive::Keepalive(int64_t now_ms, Config config)
    : config_(config), deadline_(now_ms + config.interval_ms) {}

Keepalive::Action Keepalive::Tick(int64_t now_ms) {
  if (now_ms < deadline_) return Action::kNone;
  // Reaching the deadline means the last ping had a whole interval to be answered, so a
  // timer that fires late never shortens a peer's time to answer.
  if (unanswered_ >= config_.max_unanswered) return Action::kClose;
  ++unanswered_;
  deadline_ = now_ms + config_.interval_ms;
  return Action::kPing;
}

}  // namespace reactor::ws
