// Totals of reactor.scheduled_jobs by status × job type, kept from the event stream
// (docs/protocol.md, "Counts"): one GROUP BY read now and then, every delivered event
// applied as a delta in between, so that no viewer ever costs a COUNT(*).
//
// The read and the stream meet through the read's snapshot: the read counts exactly the
// transactions its snapshot sees, so an event is applied on top of it iff its
// transaction is not visible to that snapshot — whether it was delivered before the
// answer came back (kept meanwhile, bounded) or after (delivery lags commit). Once the
// stream's horizon has passed the snapshot's xmax no later event can be visible to it.
//
// Pure: no libpq, no libuv. Loop thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/event.h"

namespace reactor {

// pg_current_snapshot() as text: "xmin:xmax:xip,xip,...".
struct PgSnapshot {
  uint64_t xmin = 0;
  uint64_t xmax = 0;
  std::vector<uint64_t> xip;  // sorted
  static std::optional<PgSnapshot> Parse(std::string_view text);
  // Whether transaction `txid` had committed (or aborted) as far as the snapshot saw.
  bool Sees(uint64_t txid) const;
};

class CountsKeeper {
 public:
  using Key = std::pair<std::string, std::string>;  // status, job type
  using Totals = std::map<Key, int64_t>;
  struct Stats {
    uint64_t reads = 0;           // answers installed
    uint64_t applied = 0;         // events that moved a total
    uint64_t skipped = 0;         // events the read already counted
    uint64_t untrusted = 0;       // events that made the totals need a new read
    uint64_t abandoned = 0;       // reads dropped: too many events while in flight
  };

  // `max_pending`: events kept while a read is in flight; past it the read is abandoned.
  explicit CountsKeeper(size_t max_pending = 100000) : max_pending_(max_pending) {}

  // A read is about to be sent; events from now on are kept until it answers.
  void BeginRead();
  // The read failed: the totals stay as they were (stale if they need a read).
  void ReadFailed();
  // The read's answer: totals as of `snap`. False when the read had been abandoned.
  bool OnRead(Totals totals, const PgSnapshot& snap);
  // Every delivered event, in delivery order. `horizon`: the stream's horizon now (every
  // transaction below it has been delivered), 0 when unknown.
  void OnEvent(const Event& ev, uint64_t horizon = 0);

  bool known() const { return known_; }      // a read has been installed
  bool reading() const { return reading_; }
  // Something happened that the stream cannot account for (a truncated event, a count
  // gone negative, an event without txid near a read): a new read is due.
  bool wants_read() const { return wants_read_; }
  uint64_t version() const { return version_; }  // moves when the totals change
  int64_t as_of() const { return as_of_; }       // highest event id applied or read
  const Totals& totals() const { return totals_; }
  const Stats& stats() const { return stats_; }
  // {"pending":{"auto_sync":12},...}, zero entries left out.
  std::string Json() const;

 private:
  struct Delta {
    uint64_t txid = 0;
    int64_t id = 0;
    std::string job_type;
    std::string from;  // status left ("" none)
    std::string to;    // status entered ("" none)
  };
  static std::optional<Delta> DeltaOf(const Event& ev, bool* untrusted);
  void Apply(const Delta& d);

  size_t max_pending_;
  Totals totals_;
  bool known_ = false;
  bool reading_ = false;
  bool abandoned_ = false;
  bool wants_read_ = false;
  std::vector<Delta> pending_;           // events delivered while the read is in flight
  std::optional<PgSnapshot> filter_;     // the last read's snapshot, until the stream passes it
  uint64_t version_ = 0;
  int64_t as_of_ = 0;
  Stats stats_;
};

}  // namespace reactor
