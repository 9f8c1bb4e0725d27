#include "core/history.h"

namespace reactor {

void HistoryRing::Push(PublishedRef p) {
  if (capacity_ == 0) {
    ++first_seq_;
    evicted_ = true;
    return;
  }
  if (entries_.size() == capacity_) {
    const auto& old = entries_.front();
    auto it = positions_.find(old->event.id);
    if (it != positions_.end() && it->second == first_seq_) positions_.erase(it);
    entries_.pop_front();
    ++first_seq_;
    evicted_ = true;
  }
  uint64_t seq = first_seq_ + entries_.size();
  if (p->event.id > 0) {
    positions_[p->event.id] = seq;
    last_id_ = p->event.id;
  }
  entries_.push_back(std::move(p));
}

std::optional<uint64_t> HistoryRing::PositionAfter(int64_t since_id) const {
  if (since_id == 0 && !evicted_) return first_seq_;
  auto it = positions_.find(since_id);
  if (it == positions_.end()) return std::nullopt;
  return it->second + 1;
}

std::optional<std::vector<PublishedRef>> HistoryRing::After(int64_t since_id) const {
  auto start = PositionAfter(since_id);
  if (!start) return std::nullopt;
  std::vector<PublishedRef> out;
  for (uint64_t s = *start; s < end(); ++s) out.push_back(*At(s));
  return out;
}

}  // namespace reactor
