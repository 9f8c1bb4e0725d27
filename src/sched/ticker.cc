#include "sched/ticker.h"

#include <spdlog/spdlog.h>

#include <cassert>
#include <cerrno>
#include <chrono>
#include <cstdlib>

namespace reactor::sched {

Ticker::Ticker(uv_loop_t* loop, TickerConfig config, pg::SchedulerStore& store)
    : loop_(loop), config_(config), store_(store), clock_(config.max_drift_ppm) {
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
  stats_.enabled = true;
}

Ticker::~Ticker() {
  // REQUIRES: Close() completed.
  assert(timer_closed_);
}

LocalMicros Ticker::Now() { return static_cast<LocalMicros>(uv_hrtime() / 1000); }

int64_t Ticker::WallOffsetMicros() const {
  // The internal offset is against the monotonic clock, a number no person can check;
  // against this host's wall clock it says how far apart the two machines' clocks are.
  const int64_t wall = std::chrono::duration_cast<std::chrono::microseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  return ServerNow() - wall;
}

void Ticker::SetConnected(bool connected) {
  connected_ = connected;
  UpdateActive(connected ? "connection ready" : "connection lost");
}

void Ticker::SetLeader(bool leader) {
  leader_ = leader;
  UpdateActive(leader ? "leader" : "not the leader");
}

void Ticker::UpdateActive(const char* reason) {
  const bool want = connected_ && leader_ && !closing_;
  if (want == active_) return;
  active_ = want;
  ++gen_;
  tick_in_flight_ = false;
  pending_.reset();
  retry_ms_ = 0;
  Disarm();
  if (!active_) {
    if (!closing_) spdlog::info("scheduler: paused ({})", reason);
    return;
  }
  spdlog::info("scheduler: ticking ({}); catching up on deadlines missed meanwhile", reason);
  // The server may be another one than before (a failover): measure afresh.
  clock_.Reset();
  clock_logged_ = false;
  // After the clock readings (a statement queued before one would widen them), the
  // session is warmed up: its first due event would otherwise pay for compiling the
  // event path (reactor.warm_up()).
  warm_pending_ = true;
  if (config_.clock_samples_on_start <= 0) WarmUp();
  if (config_.clock_samples_on_start > 0) {
    MeasureClock(config_.clock_samples_on_start, false);
    if (!active_) return;  // the connection failed while sending
  }
  SendTick();
}

void Ticker::OnEvent(const Event& ev) {
  if (ev.kind == "due") {
    // Written by a tick; its deadline is the scheduled_for that just passed, and the
    // tick's answer already covers what comes next for this job.
    ++stats_.due_events;
    return;
  }
  if (ev.is_doorbell()) {
    ++stats_.config_doorbells;
    if (active_) RequestTick();
    return;
  }
  if (!active_ || ev.deadline.empty()) return;
  auto deadline = ParseIsoUtc(ev.deadline);
  if (!deadline) {
    uint64_t suppressed = 0;
    if (error_log_.Allow(uv_now(loop_), &suppressed)) {
      spdlog::warn("scheduler: event {} has an unreadable deadline '{}'; ignored", ev.id, ev.deadline);
    }
    return;
  }
  NoteDeadline(*deadline);
}

void Ticker::NoteDeadline(ServerMicros deadline) {
  if (tick_in_flight_) {
    // It may or may not have committed before the tick's snapshot: fold it into the answer.
    if (IsEarlier(pending_, deadline)) pending_ = deadline;
    return;
  }
  // While tick() is failing, the retry will look at everything anyway.
  if (armed_ && armed_kind_ == ArmKind::kRetry) return;
  if (IsEarlier(armed_, deadline)) {
    ++stats_.rearms_from_events;
    Arm(deadline, ArmKind::kDeadline);
  }
}

void Ticker::RequestTick() {
  const ServerMicros now = ServerNow();
  if (tick_in_flight_) {
    if (IsEarlier(pending_, now)) pending_ = now;
    return;
  }
  if (armed_ && armed_kind_ == ArmKind::kRetry) return;
  // Through the timer, not at once: every doorbell of this loop pass shares one tick.
  if (IsEarlier(armed_, now)) Arm(now, ArmKind::kSoon);
}

void Ticker::Arm(ServerMicros deadline, ArmKind kind, bool allow_prewake) {
  armed_ = deadline;
  armed_kind_ = kind;
  uv_update_time(loop_);
  const LocalMicros now = Now();
  const TimerPlan plan = PlanTimer(deadline, now, uv_now(loop_), clock_, config_.plan, allow_prewake);
  armed_waited_ = deadline > clock_.ToServer(now);
  role_ = plan.prewake ? TimerRole::kPrewake : TimerRole::kFire;
  uv_timer_start(&timer_, TimerCb, plan.delay_ms, 0);
  spdlog::debug("scheduler: armed for {} ({} in {} ms)", FormatIsoUtc(deadline),
                plan.prewake ? "clock check" : "tick", plan.delay_ms);
}

void Ticker::Disarm() {
  armed_.reset();
  role_ = TimerRole::kNone;
  if (!timer_closed_) uv_timer_stop(&timer_);
}

void Ticker::TimerCb(uv_timer_t* t) noexcept { static_cast<Ticker*>(t->data)->OnTimer(); }

void Ticker::OnTimer() {
  const TimerRole role = role_;
  role_ = TimerRole::kNone;
  if (!active_ || !armed_) return;
  if (role == TimerRole::kPrewake) {
    ++stats_.prewakes;
    MeasureClock(1, true);
    return;
  }
  const FireAction action = OnTimerFire(*armed_, ServerNow());
  if (!action.tick) {
    ++stats_.early_fires;
    spdlog::debug("scheduler: timer fired {} us early; waiting for the rest", action.remaining_us);
    Arm(*armed_, armed_kind_);
    return;
  }
  if (armed_kind_ == ArmKind::kDeadline && armed_waited_) RecordLateness(action.lateness_us);
  SendTick();
}

void Ticker::RecordLateness(int64_t micros) {
  const double ms = static_cast<double>(micros) / 1000.0;
  size_t i = 0;
  while (i < kLatenessBoundsMs.size() && ms > kLatenessBoundsMs[i]) ++i;
  ++stats_.lateness_counts[i];
  stats_.lateness_sum_ms += ms;
  ++stats_.lateness_count;
}

void Ticker::SendTick() {
  if (!active_) return;
  Disarm();
  tick_in_flight_ = true;
  pending_.reset();
  const uint64_t gen = gen_;
  const LocalMicros send = Now();
  Status st = store_.Tick([this, gen, send](Result<pg::TickAnswer> answer) {
    OnTickResult(gen, send, std::move(answer));
  });
  if (!st && gen == gen_ && tick_in_flight_) {
    // Not sent and no answer will come; the connection's own observer reports why.
    tick_in_flight_ = false;
    OnTickFailed(st.message());
  }
}

void Ticker::OnTickResult(uint64_t gen, LocalMicros send, Result<pg::TickAnswer> answer) {
  if (gen != gen_ || closing_) return;
  tick_in_flight_ = false;
  if (!answer) {
    OnTickFailed(answer.error());
    return;
  }
  const LocalMicros recv = Now();
  ++stats_.ticks;
  retry_ms_ = 0;
  // now() is the statement's start, which lies between sending and receiving: a free
  // clock reading with every tick.
  ++stats_.clock_samples;
  if (!clock_.AddSample(send, answer->server_now_us, recv)) ++stats_.clock_steps;
  std::optional<ServerMicros> next = answer->next_us;
  // A deadline at or before the statement's now() means tick() stopped at its time budget
  // with more due (migration 004): Arm() below schedules the next tick for the next loop
  // pass, without counting it as lateness (nothing was waited for).
  if (next && *next <= answer->server_now_us) ++stats_.ticks_more_due;
  if (pending_ && IsEarlier(next, *pending_)) next = pending_;
  pending_.reset();
  if (next) {
    Arm(*next, ArmKind::kDeadline);
  } else {
    spdlog::debug("scheduler: nothing due; no timer");
    Disarm();
  }
}

void Ticker::OnTickFailed(const std::string& error) {
  ++stats_.tick_errors;
  retry_ms_ = retry_ms_ == 0 ? config_.retry_min_ms : std::min(config_.retry_max_ms, retry_ms_ * 2);
  uint64_t suppressed = 0;
  if (error_log_.Allow(uv_now(loop_), &suppressed)) {
    spdlog::warn("scheduler: reactor.tick() failed: {}{}; retrying in {} ms", error,
                 error.find("does not exist") != std::string::npos ? " (run `reactor migrate`)" : "",
                 retry_ms_);
  }
  pending_.reset();
  Arm(ServerNow() + static_cast<int64_t>(retry_ms_) * 1000, ArmKind::kRetry, false);
}

void Ticker::WarmUp() {
  warm_pending_ = false;
  (void)store_.WarmUp([](Result<pg::Done> r) {
    if (!r) spdlog::debug("scheduler: warm-up: {}", r.error());
  });
}

void Ticker::MeasureClock(int remaining, bool after_prewake) {
  const uint64_t gen = gen_;
  const LocalMicros send = Now();
  Status st = store_.Clock([this, gen, send, remaining, after_prewake](Result<int64_t> server) {
    if (gen != gen_ || closing_) return;
    const LocalMicros recv = Now();
    const bool ok = server.ok();
    if (ok) {
      ++stats_.clock_samples;
      if (!clock_.AddSample(send, *server, recv)) ++stats_.clock_steps;
    } else {
      spdlog::debug("scheduler: clock reading failed: {}", server.error());
    }
    if (ok && remaining > 1) {
      MeasureClock(remaining - 1, false);
    } else {
      if (warm_pending_) WarmUp();
      if (!clock_logged_ && clock_.known()) {
        clock_logged_ = true;
        spdlog::info("scheduler: server clock is {:+.3f} ms from this host's (±{:.3f} ms)",
                     static_cast<double>(WallOffsetMicros()) / 1000.0,
                     static_cast<double>(clock_.half_width()) / 1000.0);
      }
    }
    // Re-plan with the better estimate (after a pre-wake: no second pre-wake).
    if (active_ && armed_ && !tick_in_flight_) Arm(*armed_, armed_kind_, !after_prewake);
  });
  if (!st && after_prewake && gen == gen_ && active_ && armed_ && !tick_in_flight_ &&
      role_ == TimerRole::kNone) {
    Arm(*armed_, armed_kind_, false);
  }
}

void Ticker::FillMetrics(SchedulerMetrics& m) const {
  m.ticks = stats_.ticks;
  m.tick_errors = stats_.tick_errors;
  m.ticks_more_due = stats_.ticks_more_due;
  m.due_events = stats_.due_events;
  m.rearms_from_events = stats_.rearms_from_events;
  m.config_doorbells = stats_.config_doorbells;
  m.early_fires = stats_.early_fires;
  m.prewakes = stats_.prewakes;
  m.clock_samples = stats_.clock_samples;
  m.clock_steps = stats_.clock_steps;
  m.armed_deadline_unix = armed_ ? static_cast<double>(*armed_) / 1e6 : 0;
  m.clock_offset_ms = clock_.known() ? static_cast<double>(WallOffsetMicros()) / 1000.0 : 0;
  m.clock_uncertainty_ms =
      static_cast<double>(clock_.half_width() + clock_.DriftAt(Now())) / 1000.0;
  m.lateness_counts = stats_.lateness_counts;
  m.lateness_sum_ms = stats_.lateness_sum_ms;
  m.lateness_count = stats_.lateness_count;
}

void Ticker::Close(std::function<void()> done) {
  on_closed_ = std::move(done);
  if (closing_) return;
  closing_ = true;
  UpdateActive("shutting down");
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), [](uv_handle_t* h) {
    auto* self = static_cast<Ticker*>(h->data);
    self->timer_closed_ = true;
    if (self->on_closed_) {
      auto cb = std::move(self->on_closed_);
      cb();
    }
  });
}

}  // namespace reactor::sched
