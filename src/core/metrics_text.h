// Prometheus text exposition (version 0.0.4), built by hand: names, HELP, TYPE, values.
// Pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace reactor {

// A histogram of microsecond values, written in seconds.
struct MicrosHistogram {
  std::vector<uint64_t> bounds_us;
  std::vector<uint64_t> counts;  // bounds_us.size() + 1, not cumulative
  uint64_t sum_us = 0;
  uint64_t count = 0;
  explicit MicrosHistogram(std::vector<uint64_t> bounds)
      : bounds_us(std::move(bounds)), counts(bounds_us.size() + 1, 0) {}
  void Observe(uint64_t us) {
    size_t i = 0;
    while (i < bounds_us.size() && us > bounds_us[i]) ++i;
    ++counts[i];
    sum_us += us;
    ++count;
  }
};

class MetricsText {
 public:
  void Counter(std::string_view name, std::string_view help, uint64_t value,
               std::string_view labels = {});
  void Gauge(std::string_view name, std::string_view help, double value,
             std::string_view labels = {});
  // `bounds` are the upper bounds (in the metric's unit, already scaled) of all but the
  // +Inf bucket; `counts` has bounds.size() + 1 entries, not cumulative.
  void Histogram(std::string_view name, std::string_view help, const std::vector<double>& bounds,
                 const std::vector<uint64_t>& counts, double sum, uint64_t count);
  void Histogram(std::string_view name, std::string_view help, const MicrosHistogram& h);
  const std::string& text() const { return out_; }

 private:
  void Header(std::string_view name, std::string_view help, std::string_view type);
  std::string out_;
  std::string last_name_;
};

}  // namespace reactor
