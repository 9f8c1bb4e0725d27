// A subscription filter (CONTRACT section 5): every given key must match; a set key
// matches when the event's value is one of the set. Pure.
#pragma once

#include <string>
#include <vector>

#include "core/event.h"

namespace reactor {

struct Filter {
  std::string job_id;                  // "" = any
  std::string user_id;                 // "" = any
  std::vector<std::string> job_types;  // empty = any
  std::vector<std::string> statuses;   // empty = any

  bool Matches(const Event& ev) const;
  bool empty() const {
    return job_id.empty() && user_id.empty() && job_types.empty() && statuses.empty();
  }
};

}  // namespace reactor
