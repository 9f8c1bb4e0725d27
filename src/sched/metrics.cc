#include "sched/metrics.h"

#include <vector>

#include "core/metrics_text.h"

namespace reactor::sched {

void WriteSchedulerMetrics(const SchedulerMetrics& m, MetricsText& out) {
  out.Gauge("reactor_scheduler_enabled", "1 unless started with --no-scheduler", m.enabled ? 1 : 0);
  out.Gauge("reactor_scheduler_leader", "1 while this replica holds the scheduler's advisory lock",
            m.leader ? 1 : 0);
  out.Counter("reactor_scheduler_leader_acquired_total", "Times this replica became the leader",
              m.leader_acquired);
  out.Counter("reactor_scheduler_leader_lost_total",
              "Times leadership was lost with the lock connection", m.leader_lost);
  out.Counter("reactor_scheduler_ticks_total", "reactor.tick() calls answered", m.ticks);
  out.Counter("reactor_scheduler_tick_errors_total", "reactor.tick() calls that failed",
              m.tick_errors);
  out.Counter("reactor_scheduler_ticks_more_due_total",
              "reactor.tick() answers in the past: its time budget ran out with more due (ticked again at once)",
              m.ticks_more_due);
  out.Counter("reactor_scheduler_due_events_total", "due events seen in the event stream",
              m.due_events);
  out.Counter("reactor_scheduler_rearms_from_events_total",
              "Timer moved earlier by an event's deadline, without a query", m.rearms_from_events);
  out.Counter("reactor_scheduler_config_doorbells_total",
              "config notifications received (each asks for a tick)", m.config_doorbells);
  out.Counter("reactor_scheduler_early_fires_total",
              "Timer fired before its deadline in server time and was re-armed", m.early_fires);
  out.Counter("reactor_scheduler_prewakes_total",
              "Clock offset re-measured shortly before a distant deadline", m.prewakes);
  out.Counter("reactor_scheduler_clock_samples_total", "Server clock readings taken",
              m.clock_samples);
  out.Counter("reactor_scheduler_clock_steps_total",
              "Server clock readings that contradicted the known offset", m.clock_steps);
  out.Gauge("reactor_scheduler_armed_deadline_seconds",
            "Server time (Unix seconds) the deadline timer is armed for; 0 when none",
            m.armed_deadline_unix);
  out.Gauge("reactor_scheduler_clock_offset_seconds",
            "Database server clock minus this host's wall clock (estimate)", m.clock_offset_ms / 1000.0);
  out.Gauge("reactor_scheduler_clock_uncertainty_seconds",
            "Half-width of the clock offset's known interval", m.clock_uncertainty_ms / 1000.0);
  std::vector<double> bounds;
  for (double b : kLatenessBoundsMs) bounds.push_back(b / 1000.0);
  out.Histogram("reactor_scheduler_timer_lateness_seconds",
                "Server time at the deadline timer's fire minus the deadline", bounds,
                std::vector<uint64_t>(m.lateness_counts.begin(), m.lateness_counts.end()),
                m.lateness_sum_ms / 1000.0, m.lateness_count);
}

}  // namespace reactor::sched
