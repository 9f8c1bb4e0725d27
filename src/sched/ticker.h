// Ticker: the scheduler's clock. One uv_timer_t, armed to the next deadline in the
// database server's time; when it fires, `reactor.tick()` runs through the store and
// its answer is the next deadline. With nothing due, no timer runs.
//
//   - active only while SetConnected(true) and SetLeader(true): becoming active measures
//     the clock offset and ticks at once, which catches up every deadline missed while
//     inactive; becoming inactive disarms and forgets answers still on the way;
//   - an event whose "deadline" is earlier than the armed one re-arms the timer, without
//     a query (a past deadline ticks on the next loop pass, so a burst costs one tick);
//     "due" events are skipped (tick() wrote them; its answer covers what follows);
//   - a {"kind":"config"} notification without an id asks for a tick;
//   - events arriving while a tick is in flight are folded into its answer;
//   - an answer at or before the tick's own now() ("more is due": tick() stopped at its
//     time budget) ticks again on the next loop pass;
//   - a failed tick is retried after 1 s, doubling to 30 s (a deadline that arrives
//     meanwhile still wins if earlier).
//
// Ownership: owns its timer; Close() must be called and its callback awaited before the
// object is destroyed. Loop thread only; every callback is noexcept.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "core/event.h"
#include "core/rate_limit.h"
#include "core/status.h"
#include "pg/store.h"
#include "sched/metrics.h"
#include "sched/schedule_math.h"

namespace reactor::sched {

struct TickerConfig {
  uint32_t max_drift_ppm = 100;   // assumed bound on the two clocks' rate difference
  PlanParams plan;
  int clock_samples_on_start = 3; // server clock readings after each activation
  uint64_t retry_min_ms = 1000;   // after a failed tick
  uint64_t retry_max_ms = 30000;
};

class Ticker {
 public:
  // `store` must outlive the ticker.
  Ticker(uv_loop_t* loop, TickerConfig config, pg::SchedulerStore& store);
  ~Ticker();
  Ticker(const Ticker&) = delete;
  Ticker& operator=(const Ticker&) = delete;

  // Whether the query function currently accepts statements (connection ready).
  void SetConnected(bool connected);
  // Whether this replica is the one that ticks.
  void SetLeader(bool leader);
  // Every delivered event, in stream order.
  void OnEvent(const Event& ev);
  // Stops everything; `done` runs once the timer is closed.
  void Close(std::function<void()> done);

  bool active() const { return active_; }
  bool tick_in_flight() const { return tick_in_flight_; }
  std::optional<ServerMicros> armed_deadline() const { return armed_; }
  const ClockOffset& clock() const { return clock_; }
  // Fills the ticker's fields of `m` (leadership fields are the caller's).
  void FillMetrics(SchedulerMetrics& m) const;

 private:
  enum class ArmKind { kDeadline, kRetry, kSoon };
  enum class TimerRole { kNone, kFire, kPrewake };

  void UpdateActive(const char* reason);
  void NoteDeadline(ServerMicros deadline);
  void RequestTick();
  void Arm(ServerMicros deadline, ArmKind kind, bool allow_prewake = true);
  void Disarm();
  void OnTimer();
  void SendTick();
  void OnTickResult(uint64_t gen, LocalMicros send, Result<pg::TickAnswer> answer);
  void OnTickFailed(const std::string& error);
  void MeasureClock(int remaining, bool after_prewake);
  void WarmUp();
  void RecordLateness(int64_t micros);
  // The local monotonic clock, the one uv_now() rounds (uv_hrtime() in microseconds).
  static LocalMicros Now();
  ServerMicros ServerNow() const { return clock_.ToServer(Now()); }
  // Server clock minus this host's wall clock, now (for logs and metrics only).
  int64_t WallOffsetMicros() const;

  static void TimerCb(uv_timer_t* t) noexcept;

  uv_loop_t* loop_;
  TickerConfig config_;
  pg::SchedulerStore& store_;
  uv_timer_t timer_;
  bool timer_closed_ = false;
  std::function<void()> on_closed_;

  bool connected_ = false;
  bool leader_ = false;
  bool closing_ = false;
  bool active_ = false;
  uint64_t gen_ = 0;  // bumped on every (de)activation: older answers are ignored

  ClockOffset clock_;
  bool clock_logged_ = false;
  bool warm_pending_ = false;  // warm the session up once this activation's clock readings are in
  std::optional<ServerMicros> armed_;    // what the timer is for
  ArmKind armed_kind_ = ArmKind::kDeadline;
  bool armed_waited_ = false;            // the deadline lay ahead when armed
  TimerRole role_ = TimerRole::kNone;
  bool tick_in_flight_ = false;
  std::optional<ServerMicros> pending_;  // earliest deadline learned during the tick
  uint64_t retry_ms_ = 0;
  RateLimiter error_log_{10000};

  SchedulerMetrics stats_;
};

}  // namespace reactor::sched
