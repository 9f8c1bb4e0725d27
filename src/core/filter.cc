#include "core/filter.h"

#include <algorithm>

namespace reactor {
namespace {
bool InSet(const std::vector<std::string>& set, const std::string& v) {
  return set.empty() || std::find(set.begin(), set.end(), v) != set.end();
}
}  // namespace

bool Filter::Matches(const Event& ev) const {
  if (!job_id.empty() && ev.job_id != job_id) return false;
  if (!user_id.empty() && (!ev.has_user || ev.user_id != user_id)) return false;
  return InSet(job_types, ev.job_type) && InSet(statuses, ev.status);
}

}  // namespace reactor
