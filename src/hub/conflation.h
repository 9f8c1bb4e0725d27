// The events a conflating connection could not take when they were published (its send
// queue was full), at most one per job: a newer event of a job replaces the one waiting
// (CONTRACT section 5 addition, docs/protocol.md "Conflation"). Entries are the shared,
// encoded events (nothing is re-encoded); they leave in stream order, so what a client
// receives is still a subsequence of the stream, in per-job order, ending at each job's
// newest event. Events without a job_id are never replaced.
//
// Pure; loop thread only.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/history.h"

namespace reactor::hub {

class ConflationQueue {
 public:
  // Queues `p` (REQUIRES: its seq is above every seq queued before). True when it replaced
  // an older event of the same job (counted in dropped()).
  bool Put(PublishedRef p);
  // Removes and returns the event waiting for `job_id`; null when none is.
  PublishedRef Take(std::string_view job_id);

  bool empty() const { return by_seq_.empty(); }
  size_t size() const { return by_seq_.size(); }
  // The oldest waiting event (REQUIRES: !empty()).
  const PublishedRef& front() const { return by_seq_.begin()->second; }
  void pop_front();

  // Events replaced since the last TakeDropped().
  uint64_t dropped() const { return dropped_; }
  uint64_t TakeDropped() {
    uint64_t n = dropped_;
    dropped_ = 0;
    return n;
  }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::map<uint64_t, PublishedRef> by_seq_;  // stream seq -> event
  std::unordered_map<std::string, uint64_t, Hash, std::equal_to<>> by_job_;  // job -> its seq
  uint64_t dropped_ = 0;
};

}  // namespace reactor::hub
