// One job-status event as it travels through the reactor (CONTRACT section 4).
//
// The JSON text is kept byte for byte as PostgreSQL produced it; only the routing
// fields are extracted. Pure: no libuv, no libpq.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace reactor {

struct Event {
  int64_t id = 0;            // "id" when it is an integer; 0 otherwise (foreign payloads)
  std::string kind;          // "status" | "progress" | "due" | "" (foreign)
  std::string job_id;        // string, or a number's text; "" when absent or null
  std::string source;
  std::string status;
  std::string old_status;    // "" when absent or null (an insert)
  std::string user_id;       // "" when absent or null (see has_user)
  bool has_user = false;     // user_id present and not null
  std::string job_type;
  std::string deadline;      // ISO-8601 "deadline" field when present (scheduler hint)
  int64_t at_us = 0;         // "at" as Unix microseconds (core/iso_time.h; 0 when absent or unreadable)
  bool truncated = false;    // {"truncated": true}: the full event is in reactor.job_events
  std::string json;          // the payload, exactly as received
  // From the signed notification or the catch-up row (0 = unknown: a journal replay, a
  // foreign payload, a schema before migration 005): the writing transaction and the
  // row's horizon, which make a resume from memory exact (docs/delivery.md).
  uint64_t txid = 0;
  uint64_t horizon = 0;

  // A row of reactor.job_events (has an id the catch-up can see); foreign payloads are
  // fanned out but never deduplicated or fetched.
  bool is_logged() const { return id > 0 && !kind.empty() && !foreign; }
  bool foreign = false;      // no "source"/"kind": a user's own trigger
  // {"kind":"config",...} without an id: the SQL side says "scheduling inputs changed,
  // tick again" (docs/events.md). For the scheduler only; never journaled or fanned out.
  // Only a signed one (an unsigned payload is always foreign, see DeliverySequencer).
  bool is_doorbell() const { return kind == "config" && id == 0 && !foreign; }
};

// Parses payloads into Events, reusing its buffers across calls. Not thread-safe.
class EventParser {
 public:
  EventParser();
  ~EventParser();
  EventParser(const EventParser&) = delete;
  EventParser& operator=(const EventParser&) = delete;

  // `payload` must be one JSON object. Unknown fields are kept in `json`; a
  // non-object, invalid JSON or trailing content is an error.
  Result<Event> Parse(std::string_view payload);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace reactor
