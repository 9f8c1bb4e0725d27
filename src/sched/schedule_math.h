// The scheduler's arithmetic: server-time deadlines, the local monotonic clock and the
// measured offset between them, and the timer delays that follow. Pure: every clock
// reading is a parameter, nothing here reads a clock, a socket or libuv.
//
// Units: server times are microseconds since the Unix epoch in the database server's
// clock (what `now()` and `clock_timestamp()` return). Local times are microseconds of
// the reactor's monotonic clock (uv_hrtime() / 1000). The libuv loop clock (uv_now) is
// the same monotonic clock in whole milliseconds, rounded down.
#pragma once

#include <cstdint>
#include <optional>

#include "core/iso_time.h"

namespace reactor::sched {

using ServerMicros = int64_t;
using LocalMicros = int64_t;

// Server times as the event JSON writes them (core/iso_time.h).
using reactor::FormatIsoUtc;
using reactor::ParseIsoUtc;

// What is known about offset = server clock - local clock, as an interval that surely
// contains it. Each reading of the server clock taken between two local times narrows
// the interval (NTP's bracketing: the reading happened somewhere in between, so the
// offset lies in [server - recv, server - send]). Between readings the interval widens
// by `max_drift_ppm` of the elapsed local time, since the two clocks may run at slightly
// different rates. A reading that contradicts the interval (a clock was stepped, or
// drift beyond the bound) replaces it.
class ClockOffset {
 public:
  explicit ClockOffset(uint32_t max_drift_ppm) : drift_ppm_(max_drift_ppm) {}

  // A server clock reading `server` taken after local `send` and before local `recv`.
  // REQUIRES: send <= recv. Returns false when it contradicted what was known.
  bool AddSample(LocalMicros send, ServerMicros server, LocalMicros recv);
  void Reset() { known_ = false; }

  bool known() const { return known_; }
  // Midpoint estimate (0 while nothing is known).
  int64_t offset() const { return known_ ? lo_ + (hi_ - lo_) / 2 : 0; }
  // Half the interval's width at its last reading (0 while nothing is known).
  int64_t half_width() const { return known_ ? (hi_ - lo_) / 2 : 0; }
  // How much drift may have added to the half-width by local time `t`.
  int64_t DriftAt(LocalMicros t) const;
  LocalMicros last_sample_at() const { return at_; }

  ServerMicros ToServer(LocalMicros t) const { return t + offset(); }
  LocalMicros ToLocal(ServerMicros t) const { return t - offset(); }

 private:
  uint32_t drift_ppm_;
  bool known_ = false;
  int64_t lo_ = 0;
  int64_t hi_ = 0;
  LocalMicros at_ = 0;
};

// Milliseconds to pass to uv_timer_start so that the timer fires no earlier than local
// time `target`, given `loop_now_ms` = uv_now() just refreshed (uv_update_time). The
// loop clock is the local clock rounded down to milliseconds, so rounding the target up
// is what guarantees "no earlier". Never negative.
uint64_t TimerDelayMs(LocalMicros target, uint64_t loop_now_ms);

struct PlanParams {
  // A deadline further than this (in drift-widened uncertainty) from the last clock
  // reading gets a pre-wake: the offset is measured again shortly before it.
  int64_t precision_us = 5000;
  // How long before the deadline (beyond the uncertainty) the pre-wake comes.
  int64_t prewake_lead_us = 100000;
  // When > 0: a deadline further away than twice this gets a pre-wake this long before
  // it, whatever the drift. Its clock reading wakes the database session and this process
  // from idleness (on a virtual machine a process that slept for 200 ms can take ~10 ms
  // to run a statement), so the tick itself runs warm. 0: off.
  int64_t warm_lead_us = 0;
};

struct TimerPlan {
  uint64_t delay_ms = 0;  // for uv_timer_start
  bool prewake = false;   // the timer is for re-measuring the clock, not for the deadline
};

// When to wake for server-time `deadline` at local time `now` (loop clock
// `loop_now_ms`). A past deadline gives delay 0. Unless `allow_prewake` is false, a
// deadline so far from the last clock reading that drift alone could make the estimate
// off by more than `precision_us` gets a pre-wake instead; after re-measuring, the same
// call no longer asks for one (drift is then near zero), so pre-wakes cannot repeat.
TimerPlan PlanTimer(ServerMicros deadline, LocalMicros now, uint64_t loop_now_ms,
                    const ClockOffset& clock, const PlanParams& params, bool allow_prewake = true);

// What a deadline timer's fire means at server time `server_now`: the deadline has come
// (tick; `lateness` = how long after it), or the fire came early — the clock estimate
// moved after arming — and the timer is re-armed for the rest, without a query.
struct FireAction {
  bool tick = false;
  int64_t lateness_us = 0;    // with tick
  int64_t remaining_us = 0;   // without tick: how long still to wait
};
FireAction OnTimerFire(ServerMicros deadline, ServerMicros server_now);

// The earlier of an optional armed deadline and a candidate: whether `candidate` should
// replace what is armed (nothing armed, or strictly earlier).
inline bool IsEarlier(std::optional<ServerMicros> armed, ServerMicros candidate) {
  return !armed || candidate < *armed;
}

}  // namespace reactor::sched
