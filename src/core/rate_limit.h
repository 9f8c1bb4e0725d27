// Rate limiting for repeated log lines: at most one line per interval, and the line that
// passes says how many were suppressed since the last one. Pure: time is a parameter.
#pragma once

#include <cstdint>

namespace reactor {

class RateLimiter {
 public:
  explicit RateLimiter(uint64_t interval_ms) : interval_ms_(interval_ms) {}

  // True when a line may be written at `now_ms`; then `*suppressed` is the number of
  // calls that returned false since the previous true.
  bool Allow(uint64_t now_ms, uint64_t* suppressed) {
    if (has_last_ && now_ms < last_ms_ + interval_ms_) {
      ++suppressed_;
      return false;
    }
    has_last_ = true;
    last_ms_ = now_ms;
    *suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }

 private:
  uint64_t interval_ms_;
  uint64_t last_ms_ = 0;
  bool has_last_ = false;
  uint64_t suppressed_ = 0;
};

}  // namespace reactor
