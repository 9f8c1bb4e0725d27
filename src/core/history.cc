#include "core/history.h"

#include <algorithm>

namespace reactor {

HistoryRing::HistoryRing(size_t capacity) : capacity_(capacity) {
  leaves_ = 1;
  while (leaves_ < capacity_) leaves_ *= 2;
  if (capacity_ > 0) tree_.assign(2 * leaves_, 0);
}

void HistoryRing::SetSlot(size_t slot, uint64_t txid) {
  size_t i = leaves_ + slot;
  tree_[i] = txid;
  for (i /= 2; i >= 1; i /= 2) tree_[i] = std::max(tree_[2 * i], tree_[2 * i + 1]);
}

std::optional<size_t> HistoryRing::Descend(size_t node, size_t node_lo, size_t node_hi, size_t lo,
                                           size_t hi, uint64_t txid) const {
  if (node_hi <= lo || hi <= node_lo || tree_[node] < txid) return std::nullopt;
  if (node_hi - node_lo == 1) return node_lo;
  const size_t mid = (node_lo + node_hi) / 2;
  if (auto l = Descend(2 * node, node_lo, mid, lo, hi, txid)) return l;
  return Descend(2 * node + 1, mid, node_hi, lo, hi, txid);
}

std::optional<size_t> HistoryRing::LeftmostAtLeast(size_t lo, size_t hi, uint64_t txid) const {
  if (lo >= hi) return std::nullopt;
  return Descend(1, 0, leaves_, lo, hi, txid);
}

std::optional<uint64_t> HistoryRing::FirstTxidAtLeast(uint64_t txid, uint64_t before) const {
  if (capacity_ == 0 || txid == 0) return std::nullopt;
  before = std::min(before, end());
  if (before <= begin()) return std::nullopt;
  // [begin, before) in slots, wrapping at most once around the ring.
  const uint64_t cap = capacity_;
  const uint64_t a = begin() % cap;
  const uint64_t n = before - begin();
  const uint64_t base = begin() - a;  // stream position of slot 0 on this lap
  if (a + n <= cap) {
    if (auto slot = LeftmostAtLeast(a, a + n, txid)) return base + *slot;
    return std::nullopt;
  }
  if (auto slot = LeftmostAtLeast(a, cap, txid)) return base + *slot;
  if (auto slot = LeftmostAtLeast(0, a + n - cap, txid)) return base + cap + *slot;
  return std::nullopt;
}

void HistoryRing::Push(PublishedRef p) {
  if (capacity_ == 0) {
    ++first_seq_;
    evicted_ = true;
    return;
  }
  if (entries_.size() == capacity_) {
    const auto& old = entries_.front();
    SetSlot(static_cast<size_t>(first_seq_ % capacity_), 0);
    auto it = positions_.find(old->event.id);
    if (it != positions_.end() && it->second == first_seq_) positions_.erase(it);
    entries_.pop_front();
    ++first_seq_;
    evicted_ = true;
  }
  uint64_t seq = first_seq_ + entries_.size();
  SetSlot(static_cast<size_t>(seq % capacity_), p->event.txid);
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
