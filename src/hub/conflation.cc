#include "hub/conflation.h"

#include <cassert>

namespace reactor::hub {

bool ConflationQueue::Put(PublishedRef p) {
  assert(by_seq_.empty() || by_seq_.rbegin()->first < p->seq);
  const uint64_t seq = p->seq;
  bool replaced = false;
  if (!p->event.job_id.empty()) {
    auto [it, inserted] = by_job_.try_emplace(p->event.job_id, seq);
    if (!inserted) {
      by_seq_.erase(it->second);
      it->second = seq;
      ++dropped_;
      replaced = true;
    }
  }
  by_seq_.emplace_hint(by_seq_.end(), seq, std::move(p));
  return replaced;
}

PublishedRef ConflationQueue::Take(std::string_view job_id) {
  if (job_id.empty()) return nullptr;
  auto it = by_job_.find(job_id);
  if (it == by_job_.end()) return nullptr;
  auto e = by_seq_.find(it->second);
  PublishedRef p = std::move(e->second);
  by_seq_.erase(e);
  by_job_.erase(it);
  return p;
}

void ConflationQueue::pop_front() {
  auto it = by_seq_.begin();
  const std::string& job = it->second->event.job_id;
  if (!job.empty()) {
    auto j = by_job_.find(job);
    if (j != by_job_.end() && j->second == it->first) by_job_.erase(j);
  }
  by_seq_.erase(it);
}

}  // namespace reactor::hub
