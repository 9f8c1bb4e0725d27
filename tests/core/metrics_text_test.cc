#include <doctest/doctest.h>

#include "core/metrics_text.h"

TEST_CASE("Prometheus text: counters, gauges with labels, cumulative histograms") {
  reactor::MetricsText m;
  m.Counter("reactor_events_total", "Events received.", 42);
  m.Gauge("reactor_up", "Connected.", 1, "state=\"ready\"");
  m.Gauge("reactor_up", "Connected.", 0, "state=\"down\"");
  m.Histogram("reactor_latency_seconds", "Latency.", {0.001, 0.01}, {3, 2, 1}, 0.5, 6);
  const std::string& t = m.text();
  CHECK(t.find("# TYPE reactor_events_total counter\nreactor_events_total 42\n") != std::string::npos);
  CHECK(t.find("reactor_up{state=\"ready\"} 1\nreactor_up{state=\"down\"} 0\n") != std::string::npos);
  CHECK(t.find("# HELP reactor_up") == t.rfind("# HELP reactor_up"));
  CHECK(t.find("reactor_latency_seconds_bucket{le=\"0.001\"} 3\n") != std::string::npos);
  CHECK(t.find("reactor_latency_seconds_bucket{le=\"0.01\"} 5\n") != std::string::npos);
  CHECK(t.find("reactor_latency_seconds_bucket{le=\"+Inf\"} 6\n") != std::string::npos);
  CHECK(t.find("reactor_latency_seconds_count 6\n") != std::string::npos);
  reactor::MetricsText b;
  b.Histogram("h", "x", {0.005, 2.5e-05}, {0, 0, 0}, 0.1, 0);
  CHECK(b.text().find("le=\"0.005\"") != std::string::npos);
  CHECK(b.text().find("le=\"2.5e-05\"") != std::string::npos);
  CHECK(b.text().find("h_sum 0.1\n") != std::string::npos);
}
