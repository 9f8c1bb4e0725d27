// The WebSocket protocol's messages (CONTRACT section 5): parsing what clients send and
// building what the server sends. Pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/defaults.h"
#include "core/filter.h"
#include "core/json_text.h"
#include "core/status.h"

namespace reactor::hub {

struct ClientMessage {
  enum class Op { kSubscribe, kUnsubscribe, kAuth, kPing, kAction, kHistory, kCounts };
  Op op = Op::kPing;
  std::string id;                 // subscription id (subscribe/unsubscribe); request id (action/history)
  Filter filter;                  // subscribe
  std::optional<int64_t> since;   // subscribe
  bool snapshot = false;          // subscribe
  bool conflate = false;          // subscribe: conflate instead of 1013 when behind
  std::string token;              // auth
  std::string action;             // action: retry_now, cancel, run_now, enable, disable, set_priority
  std::string job_id;             // action, history
  std::string arg;                // action: set_priority's priority
  std::string source;             // history: the table (optional)
  std::optional<int64_t> before;  // history: events with a lower id (exclusive)
  size_t limit = 0;               // history: events wanted (0: the default)
  bool on = true;                 // counts: start (true) or stop
};

// The actions an operator may ask for (docs/protocol.md, "Actions").
bool IsAction(std::string_view action);

// Bounds on what one `subscribe` may ask for (--max-filter-values, --max-filter-bytes).
struct ParseLimits {
  size_t max_filter_values = defaults::kMaxFilterValues;   // values in one list (job_type or status)
  size_t max_filter_bytes = defaults::kMaxFilterBytes;   // all the filter's strings together
};

// Errors are client errors ("bad_request"), with a message saying what is wrong. A
// filter over `limits` is refused as soon as the parser sees it (nothing is kept of it);
// `over_limit`, when given, is then set to true.
Result<ClientMessage> ParseClientMessage(std::string_view text, const ParseLimits& limits = {},
                                         bool* over_limit = nullptr);

// The query shortcut of a WebSocket upgrade (/ws?job_id=…&user_id=…&job_type=a,b&status=…
// &since=ID&snapshot=true) as the `subscribe` of a subscription named "default", under the
// same limits as the message; nullopt when the query names none of those keys.
std::optional<Result<ClientMessage>> ParseShortcut(
    const std::vector<std::pair<std::string, std::string>>& query, const ParseLimits& limits = {},
    bool* over_limit = nullptr);

using reactor::JsonString;

std::string WelcomeMessage(std::string_view server, int64_t last_event_id, std::string_view mode = "live");
std::string SubscribedMessage(std::string_view id, int64_t last_event_id);
std::string UnsubscribedMessage(std::string_view id);
std::string SnapshotMessage(std::string_view id, int64_t as_of, std::string_view jobs_json_array);
std::string GapMessage(std::string_view id, int64_t after);
// `id`: the request's id (action, history, counts), echoed when not empty.
std::string ErrorMessage(std::string_view code, std::string_view message, std::string_view id = {});
// {"type":"pong","queue_bytes":N}: N bytes were queued to this connection.
std::string PongMessage(uint64_t queue_bytes);
std::string AckMessage(std::string_view id, std::string_view action, std::string_view job_id, int64_t event_id);
// {"type":"history","id":…,"job_id":…,"events":[…],"more":…}; `events_json` a JSON array.
std::string HistoryMessage(std::string_view id, std::string_view job_id, std::string_view events_json, bool more);
// {"type":"counts","as_of":N,"counts":{status:{job_type:n}}}
std::string CountsMessage(int64_t as_of, std::string_view counts_json);
// {"type":"conflated","dropped":N}: N events of conflating subscriptions were replaced by
// a newer event of the same job since the last such message.
std::string ConflatedMessage(uint64_t dropped);
// {"type":"event","event":<event_json>}
std::string EventMessage(std::string_view event_json);

}  // namespace reactor::hub
