#include "core/metrics_text.h"

#include <charconv>
#include <system_error>

namespace reactor {
namespace {
// The shortest text that reads back as the same double (0.005, not 0.0050000000000000001).
std::string Num(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc()) return "NaN";
  return std::string(buf, end);
}
}  // namespace

void MetricsText::Header(std::string_view name, std::string_view help, std::string_view type) {
  if (last_name_ == name) return;  // several label sets share one HELP/TYPE
  last_name_ = name;
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += help;
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void MetricsText::Counter(std::string_view name, std::string_view help, uint64_t value,
                          std::string_view labels) {
  Header(name, help, "counter");
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    out_ += labels;
    out_ += '}';
  }
  out_ += ' ' + std::to_string(value) + '\n';
}

void MetricsText::Gauge(std::string_view name, std::string_view help, double value,
                        std::string_view labels) {
  Header(name, help, "gauge");
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    out_ += labels;
    out_ += '}';
  }
  out_ += ' ' + Num(value) + '\n';
}

void MetricsText::Histogram(std::string_view name, std::string_view help,
                            const std::vector<double>& bounds, const std::vector<uint64_t>& counts,
                            double sum, uint64_t count) {
  Header(name, help, "histogram");
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds.size() && i < counts.size(); ++i) {
    cumulative += counts[i];
    out_ += name;
    out_ += "_bucket{le=\"";
    out_ += i < bounds.size() ? Num(bounds[i]) : "+Inf";
    out_ += "\"} " + std::to_string(cumulative) + '\n';
  }
  out_ += name;
  out_ += "_sum " + Num(sum) + '\n';
  out_ += name;
  out_ += "_count " + std::to_string(count) + '\n';
}

void MetricsText::Histogram(std::string_view name, std::string_view help, const MicrosHistogram& h) {
  std::vector<double> bounds;
  bounds.reserve(h.bounds_us.size());
  for (uint64_t b : h.bounds_us) bounds.push_back(static_cast<double>(b) / 1e6);
  Histogram(name, help, bounds, h.counts, static_cast<double>(h.sum_us) / 1e6, h.count);
}

}  // namespace reactor
