// The last N delivered events, in stream order, for resuming subscribers (`since`).
// Each entry is shared with the fan-out (encode once; the ring holds a reference).
// Pure; loop thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/event.h"

namespace reactor {

// One event as published: its routing fields and its encoded WebSocket frame, built
// once and shared by every recipient and by the history.
struct Published {
  uint64_t seq = 0;   // position in this process's stream (1, 2, 3, ...)
  uint64_t received_ns = 0;  // steady clock when it entered the hub (latency metric)
  Event event;
  std::string frame;  // complete server->client frame: header + {"type":"event",...}
};
using PublishedRef = std::shared_ptr<const Published>;

class HistoryRing {
 public:
  explicit HistoryRing(size_t capacity);

  // Every push takes the next stream position (0, 1, 2, ...), even with capacity 0.
  void Push(PublishedRef p);

  // Stream positions: entries held are [begin(), end()); end() is the position the next
  // push will take.
  uint64_t begin() const { return first_seq_; }
  uint64_t end() const { return first_seq_ + entries_.size(); }
  // The entry at stream position `pos`; null when evicted or not yet pushed. O(1).
  const PublishedRef* At(uint64_t pos) const {
    if (pos < begin() || pos >= end()) return nullptr;
    return &entries_[static_cast<size_t>(pos - first_seq_)];
  }
  // The position of the first entry delivered after the event `since_id` (O(1), no
  // copy); nullopt when that id is not (or no longer) in the ring. An id of 0 means
  // "from the beginning of the ring" only when the ring has never evicted anything.
  std::optional<uint64_t> PositionAfter(int64_t since_id) const;

  // The first position in [begin(), before) whose event's transaction id is >= `txid`;
  // nullopt when there is none. O(log capacity): a max-tree over the ring's slots. With
  // the horizon of `since` this finds where a resume that is exact on any replica must
  // start (docs/delivery.md, "Resume on any replica").
  std::optional<uint64_t> FirstTxidAtLeast(uint64_t txid, uint64_t before) const;

  // Everything delivered after `since_id`, copied (tests and small rings only: the hub
  // walks the ring with a cursor instead).
  std::optional<std::vector<PublishedRef>> After(int64_t since_id) const;

  bool Contains(int64_t id) const { return positions_.count(id) != 0; }
  size_t size() const { return entries_.size(); }
  size_t capacity() const { return capacity_; }
  int64_t last_id() const { return last_id_; }
  bool evicted() const { return evicted_; }

 private:
  size_t capacity_;
  std::deque<PublishedRef> entries_;
  uint64_t first_seq_ = 0;  // stream position of entries_.front()
  std::unordered_map<int64_t, uint64_t> positions_;  // id -> stream position
  int64_t last_id_ = 0;
  bool evicted_ = false;
  // Max-tree over slots (stream position % capacity): leaves hold the entry's txid.
  size_t leaves_ = 0;
  std::vector<uint64_t> tree_;
  void SetSlot(size_t slot, uint64_t txid);
  // Leftmost slot in [lo, hi) whose txid >= `txid`.
  std::optional<size_t> LeftmostAtLeast(size_t lo, size_t hi, uint64_t txid) const;
  std::optional<size_t> Descend(size_t node, size_t node_lo, size_t node_hi, size_t lo, size_t hi,
                                uint64_t txid) const;
};

}  // namespace reactor
