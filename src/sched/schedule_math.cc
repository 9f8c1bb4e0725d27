#include "sched/schedule_math.h"

#include <algorithm>
#include <cassert>

namespace reactor::sched {

int64_t ClockOffset::DriftAt(LocalMicros t) const {
  if (!known_ || t <= at_) return 0;
  // Rounded up: the bound must never be understated.
  return ((t - at_) * static_cast<int64_t>(drift_ppm_) + 999999) / 1000000;
}

bool ClockOffset::AddSample(LocalMicros send, ServerMicros server, LocalMicros recv) {
  assert(send <= recv);
  const int64_t lo = server - recv;
  const int64_t hi = server - send;
  if (!known_) {
    known_ = true;
    lo_ = lo;
    hi_ = hi;
    at_ = recv;
    return true;
  }
  const int64_t widen = DriftAt(recv);
  const int64_t cur_lo = lo_ - widen;
  const int64_t cur_hi = hi_ + widen;
  const int64_t new_lo = std::max(cur_lo, lo);
  const int64_t new_hi = std::min(cur_hi, hi);
  at_ = std::max(at_, recv);
  if (new_lo > new_hi) {
    lo_ = lo;
    hi_ = hi;
    return false;
  }
  lo_ = new_lo;
  hi_ = new_hi;
  return true;
}

uint64_t TimerDelayMs(LocalMicros target, uint64_t loop_now_ms) {
  if (target <= 0) return 0;
  const int64_t target_ms = (target + 999) / 1000;
  const int64_t now_ms = static_cast<int64_t>(loop_now_ms);
  return target_ms > now_ms ? static_cast<uint64_t>(target_ms - now_ms) : 0;
}

TimerPlan PlanTimer(ServerMicros deadline, LocalMicros now, uint64_t loop_now_ms,
                    const ClockOffset& clock, const PlanParams& params, bool allow_prewake) {
  TimerPlan plan;
  if (deadline <= clock.ToServer(now)) return plan;  // due: delay 0
  const LocalMicros target = clock.ToLocal(deadline);
  if (allow_prewake && clock.known()) {
    // Only drift counts here: the reading's own width does not shrink by measuring again,
    // so waking early for it would repeat forever on a slow link.
    const int64_t drift = clock.DriftAt(target);
    if (drift > params.precision_us) {
      const LocalMicros wake = target - drift - params.prewake_lead_us;
      if (wake > now) {
        plan.delay_ms = TimerDelayMs(wake, loop_now_ms);
        plan.prewake = true;
        return plan;
      }
    }
  }
  if (allow_prewake && params.warm_lead_us > 0 && target - now > 2 * params.warm_lead_us) {
    plan.delay_ms = TimerDelayMs(target - params.warm_lead_us, loop_now_ms);
    plan.prewake = true;
    return plan;
  }
  plan.delay_ms = TimerDelayMs(target, loop_now_ms);
  return plan;
}

FireAction OnTimerFire(ServerMicros deadline, ServerMicros server_now) {
  FireAction a;
  if (deadline > server_now) {
    a.remaining_us = deadline - server_now;
  } else {
    a.tick = true;
    a.lateness_us = server_now - deadline;
  }
  return a;
}

}  // namespace reactor::sched
