// The scheduler's counters and gauges, as one value the /metrics page can render
// (WriteSchedulerMetrics, names prefixed reactor_scheduler_). Pure.
#pragma once

#include <array>
#include <cstdint>

namespace reactor {
class MetricsText;
}

namespace reactor::sched {

// Upper bounds (milliseconds) of the timer-lateness histogram's finite buckets.
inline constexpr std::array<double, 8> kLatenessBoundsMs = {1, 2, 5, 10, 20, 50, 100, 1000};

struct SchedulerMetrics {
  bool enabled = false;              // false with --no-scheduler
  bool leader = false;               // this replica holds the advisory lock
  uint64_t leader_acquired = 0;      // times the lock was obtained
  uint64_t leader_lost = 0;          // times it was lost with its connection
  uint64_t ticks = 0;                // reactor.tick() calls answered
  uint64_t tick_errors = 0;          // calls that failed on a live connection
  uint64_t ticks_more_due = 0;       // answers in the past: tick() ran out of its time budget
  uint64_t due_events = 0;           // "due" events seen in the stream
  uint64_t rearms_from_events = 0;   // timer moved earlier by an event, without a query
  uint64_t config_doorbells = 0;     // {"kind":"config"} notifications (each asks for a tick)
  uint64_t early_fires = 0;          // timer fired before the deadline in server time
  uint64_t prewakes = 0;             // clock re-measured shortly before a distant deadline
  uint64_t clock_samples = 0;        // server clock readings taken
  uint64_t clock_steps = 0;          // readings that contradicted the known offset
  double armed_deadline_unix = 0;    // server time the timer is armed for; 0: none
  double clock_offset_ms = 0;        // server clock minus this host's wall clock (estimate)
  double clock_uncertainty_ms = 0;   // half-width of the offset's interval
  // Timer lateness: server time at the fire minus the deadline, for deadlines that were
  // waited for; buckets by kLatenessBoundsMs (+Inf last), not cumulative.
  std::array<uint64_t, kLatenessBoundsMs.size() + 1> lateness_counts{};
  double lateness_sum_ms = 0;
  uint64_t lateness_count = 0;
};

// Appends every field above as reactor_scheduler_* metrics.
void WriteSchedulerMetrics(const SchedulerMetrics& m, MetricsText& out);

}  // namespace reactor::sched
