// Which connections an event may concern, found from the event itself: subscriptions are
// filed under the most selective key their filter has (its job_id; else its user_id, which
// an unprivileged principal's filter always has — AuthorizeFilter narrows it to the
// token's `sub`; else a residual "broad" set: privileged sessions' type/status-only or
// empty filters). An event looks up its job_id, its user_id and the broad set, so the
// work per event is the members filed under those keys plus a constant, not the number
// of connections.
//
// Candidates are a superset of the recipients: a job key still has to pass the rest of
// the filter and the principal's MaySee (the hub's Route does that). A member is any
// 64-bit id (the hub uses session ids); the same member may be filed several times under
// several keys (one per subscription) and is returned once.
//
// Pure; loop thread only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/event.h"
#include "core/filter.h"

namespace reactor::hub {

class RouteIndex {
 public:
  struct Key {
    enum class Kind : uint8_t { kJob, kUser, kBroad };
    Kind kind = Kind::kBroad;
    std::string value;  // the job_id or user_id; empty for kBroad
    bool operator==(const Key&) const = default;
  };
  // The key a subscription with this (authorized) filter is filed under.
  static Key KeyOf(const Filter& f);

  // Files `member` once more under `key` (a count: Add twice, Remove twice).
  void Add(const Key& key, uint64_t member);
  // REQUIRES: `member` was added under `key` (as many times as it is removed).
  void Remove(const Key& key, uint64_t member);

  // Appends the members filed under the event's job_id, its user_id (when it has one) and
  // the broad set to `out`, each once, in ascending order (clears `out` first).
  void Candidates(const Event& ev, std::vector<uint64_t>& out) const;

  size_t entries() const { return entries_; }   // Add minus Remove
  size_t broad() const { return broad_.size(); }  // distinct members in the broad set

 private:
  using Members = std::unordered_map<uint64_t, uint32_t>;  // member -> times filed
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using Table = std::unordered_map<std::string, Members, Hash, std::equal_to<>>;
  static void AddTo(Members& m, uint64_t member) { ++m[member]; }
  static bool RemoveFrom(Members& m, uint64_t member);  // true: `m` is now empty

  Table jobs_;
  Table users_;
  Members broad_;
  size_t entries_ = 0;
};

}  // namespace reactor::hub
