#include "hub/protocol.h"

#include <simdjson.h>

#include <charconv>

namespace reactor::hub {
namespace {

using simdjson::ondemand::json_type;

Status Bad(const std::string& what) { return Status::Error(what); }

// What a filter has taken so far, against the limits.
struct FilterBudget {
  const ParseLimits& limits;
  bool* over_limit;
  size_t bytes = 0;

  Status Take(const char* key, size_t values, size_t bytes_added) {
    bytes += bytes_added;
    if (values > limits.max_filter_values) {
      if (over_limit) *over_limit = true;
      return Bad(std::string(key) + " has more than " + std::to_string(limits.max_filter_values) +
                 " values (--max-filter-values)");
    }
    if (bytes > limits.max_filter_bytes) {
      if (over_limit) *over_limit = true;
      return Bad("filter over " + std::to_string(limits.max_filter_bytes) + " bytes (--max-filter-bytes)");
    }
    return Status::Ok();
  }
};

// A string or an array of strings.
Status ReadStringSet(simdjson::ondemand::value v, const char* key, std::vector<std::string>& out,
                     FilterBudget& budget) {
  json_type t;
  if (v.type().get(t)) return Bad(std::string("invalid ") + key);
  if (t == json_type::string) {
    std::string_view s;
    if (v.get_string().get(s)) return Bad(std::string("invalid ") + key);
    // "a,b" is accepted like the query shortcut.
    size_t start = 0;
    while (start <= s.size()) {
      size_t comma = s.find(',', start);
      if (comma == std::string_view::npos) comma = s.size();
      if (comma > start) {
        if (Status st = budget.Take(key, out.size() + 1, comma - start); !st) return st;
        out.emplace_back(s.substr(start, comma - start));
      }
      start = comma + 1;
    }
    return Status::Ok();
  }
  if (t != json_type::array) return Bad(std::string(key) + " must be a string or an array of strings");
  simdjson::ondemand::array arr;
  if (v.get_array().get(arr)) return Bad(std::string("invalid ") + key);
  for (auto item : arr) {
    std::string_view s;
    if (item.get_string().get(s)) return Bad(std::string(key) + " must hold strings");
    if (Status st = budget.Take(key, out.size() + 1, s.size()); !st) return st;
    out.emplace_back(s);
  }
  return Status::Ok();
}

Status ReadString(simdjson::ondemand::value v, const char* key, std::string& out) {
  json_type t;
  if (v.type().get(t)) return Bad(std::string("invalid ") + key);
  if (t == json_type::null) return Status::Ok();
  std::string_view s;
  if (t == json_type::number) {
    out.assign(v.raw_json_token());
    while (!out.empty() && (out.back() == ' ' || out.back() == '\n' || out.back() == '\r' || out.back() == '\t')) out.pop_back();
    return Status::Ok();
  }
  if (v.get_string().get(s)) return Bad(std::string(key) + " must be a string");
  out.assign(s);
  return Status::Ok();
}

}  // namespace

Result<ClientMessage> ParseClientMessage(std::string_view text, const ParseLimits& limits, bool* over_limit) {
  if (over_limit) *over_limit = false;
  thread_local simdjson::ondemand::parser parser;
  simdjson::padded_string padded(text);
  simdjson::ondemand::document doc;
  if (parser.iterate(padded).get(doc)) return Bad("message is not JSON");
  simdjson::ondemand::object obj;
  if (doc.get_object().get(obj)) return Bad("message must be a JSON object");

  ClientMessage m;
  std::string op;
  bool has_op = false;
  for (auto field_result : obj) {
    simdjson::ondemand::field field;
    if (std::move(field_result).get(field)) return Bad("message is not valid JSON");
    std::string_view key;
    if (field.unescaped_key().get(key)) return Bad("message is not valid JSON");
    simdjson::ondemand::value v = field.value();
    Status st;
    if (key == "op") {
      has_op = true;
      st = ReadString(v, "op", op);
    } else if (key == "id") {
      st = ReadString(v, "id", m.id);
    } else if (key == "token") {
      st = ReadString(v, "token", m.token);
    } else if (key == "action") {
      st = ReadString(v, "action", m.action);
    } else if (key == "job_id") {
      st = ReadString(v, "job_id", m.job_id);
    } else if (key == "arg") {
      st = ReadString(v, "arg", m.arg);
    } else if (key == "source") {
      st = ReadString(v, "source", m.source);
    } else if (key == "before" || key == "limit") {
      json_type t;
      if (v.type().get(t)) return Bad("invalid " + std::string(key));
      if (t != json_type::null) {
        int64_t n = 0;
        if (v.get_int64().get(n) || n < 1) return Bad(std::string(key) + " must be a positive integer");
        if (key == "before") {
          m.before = n;
        } else {
          m.limit = static_cast<size_t>(n);
        }
      }
    } else if (key == "on") {
      bool b = false;
      if (v.get_bool().get(b)) return Bad("on must be true or false");
      m.on = b;
    } else if (key == "snapshot") {
      bool b = false;
      if (v.get_bool().get(b)) return Bad("snapshot must be true or false");
      m.snapshot = b;
    } else if (key == "conflate") {
      bool b = false;
      if (v.get_bool().get(b)) return Bad("conflate must be true or false");
      m.conflate = b;
    } else if (key == "since") {
      json_type t;
      if (v.type().get(t)) return Bad("invalid since");
      if (t != json_type::null) {
        int64_t since = 0;
        if (v.get_int64().get(since) || since < 0) return Bad("since must be a non-negative integer");
        m.since = since;
      }
    } else if (key == "filter") {
      json_type t;
      if (v.type().get(t)) return Bad("invalid filter");
      if (t == json_type::null) {
        m.filter = Filter{};
        continue;
      }
      simdjson::ondemand::object f;
      if (v.get_object().get(f)) return Bad("filter must be an object");
      m.filter = Filter{};  // a repeated key: the last one counts, as for the others
      FilterBudget budget{limits, over_limit};
      for (auto ff_result : f) {
        simdjson::ondemand::field ff;
        if (std::move(ff_result).get(ff)) return Bad("invalid filter");
        std::string_view fk;
        if (ff.unescaped_key().get(fk)) return Bad("invalid filter");
        simdjson::ondemand::value fv = ff.value();
        if (fk == "job_id") {
          m.filter.job_id.clear();
          st = ReadString(fv, "job_id", m.filter.job_id);
          if (st) st = budget.Take("job_id", 1, m.filter.job_id.size());
        } else if (fk == "user_id") {
          m.filter.user_id.clear();
          st = ReadString(fv, "user_id", m.filter.user_id);
          if (st) st = budget.Take("user_id", 1, m.filter.user_id.size());
        } else if (fk == "job_type") {
          st = ReadStringSet(fv, "job_type", m.filter.job_types, budget);
        } else if (fk == "status") {
          st = ReadStringSet(fv, "status", m.filter.statuses, budget);
        } else {
          return Bad("unknown filter key '" + std::string(fk) + "'");
        }
        if (!st) return st;
      }
    }
    if (!st) return st;
  }
  const char* rest = nullptr;
  if (doc.current_location().get(rest) == simdjson::SUCCESS) return Bad("trailing content after the message");
  if (!has_op) return Bad("missing op");
  if (op == "subscribe") {
    m.op = ClientMessage::Op::kSubscribe;
    if (m.id.empty()) m.id = "default";
  } else if (op == "unsubscribe") {
    m.op = ClientMessage::Op::kUnsubscribe;
    if (m.id.empty()) return Bad("unsubscribe needs an id");
  } else if (op == "auth") {
    m.op = ClientMessage::Op::kAuth;
    if (m.token.empty()) return Bad("auth needs a token");
  } else if (op == "ping") {
    m.op = ClientMessage::Op::kPing;
  } else if (op == "action") {
    m.op = ClientMessage::Op::kAction;
    if (m.action.empty()) return Bad("action needs an action");
    if (!IsAction(m.action)) return Bad("unknown action '" + m.action + "'");
    if (m.job_id.empty()) return Bad("action needs a job_id");
    if (m.action == "set_priority" && m.arg.empty()) return Bad("set_priority needs an arg (critical, high, medium or low)");
  } else if (op == "history") {
    m.op = ClientMessage::Op::kHistory;
    if (m.job_id.empty()) return Bad("history needs a job_id");
  } else if (op == "counts") {
    m.op = ClientMessage::Op::kCounts;
  } else {
    return Bad("unknown op '" + op + "'");
  }
  if (m.id.size() > 256) return Bad(m.op == ClientMessage::Op::kSubscribe || m.op == ClientMessage::Op::kUnsubscribe
                                        ? "subscription id too long"
                                        : "id too long (at most 256 bytes)");
  if (m.job_id.size() > 1024 || m.arg.size() > 256 || m.source.size() > 256) {
    return Bad("job_id, arg or source too long");
  }
  return m;
}

std::optional<Result<ClientMessage>> ParseShortcut(
    const std::vector<std::pair<std::string, std::string>>& query, const ParseLimits& limits, bool* over_limit) {
  if (over_limit) *over_limit = false;
  ClientMessage m;
  m.op = ClientMessage::Op::kSubscribe;
  m.id = "default";
  FilterBudget budget{limits, over_limit};
  bool any = false;
  auto split = [&](const char* key, const std::string& v, std::vector<std::string>& out) -> Status {
    size_t start = 0;
    while (start <= v.size()) {
      size_t comma = v.find(',', start);
      if (comma == std::string::npos) comma = v.size();
      if (comma > start) {
        if (Status st = budget.Take(key, out.size() + 1, comma - start); !st) return st;
        out.push_back(v.substr(start, comma - start));
      }
      start = comma + 1;
    }
    return Status::Ok();
  };
  for (const auto& [k, v] : query) {
    Status st;
    if (k == "job_id" || k == "user_id") {
      st = budget.Take(k.c_str(), 1, v.size());
      (k == "job_id" ? m.filter.job_id : m.filter.user_id) = v;
    } else if (k == "job_type") {
      st = split("job_type", v, m.filter.job_types);
    } else if (k == "status") {
      st = split("status", v, m.filter.statuses);
    } else if (k == "since") {
      int64_t since = 0;
      auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), since);
      if (v.empty() || ec != std::errc() || ptr != v.data() + v.size() || since < 0) {
        st = Bad("since must be a non-negative integer");
      } else {
        m.since = since;
      }
    } else if (k == "snapshot") {
      m.snapshot = v == "true" || v == "1";
    } else if (k == "conflate") {
      m.conflate = v == "true" || v == "1";
    } else {
      continue;  // access_token and anything else is not the shortcut's
    }
    any = true;
    if (!st) return Result<ClientMessage>(st);
  }
  if (!any) return std::nullopt;
  std::optional<Result<ClientMessage>> out;
  out.emplace(std::move(m));
  return out;
}

bool IsAction(std::string_view a) {
  return a == "retry_now" || a == "cancel" || a == "run_now" || a == "enable" || a == "disable" ||
         a == "set_priority";
}

std::string WelcomeMessage(std::string_view server, int64_t last_event_id, std::string_view mode) {
  return R"({"type":"welcome","server":)" + JsonString(server) +
         R"(,"last_event_id":)" + std::to_string(last_event_id) + R"(,"mode":)" + JsonString(mode) + "}";
}
std::string SubscribedMessage(std::string_view id, int64_t last_event_id) {
  return R"({"type":"subscribed","id":)" + JsonString(id) + R"(,"last_event_id":)" +
         std::to_string(last_event_id) + "}";
}
std::string UnsubscribedMessage(std::string_view id) {
  return R"({"type":"unsubscribed","id":)" + JsonString(id) + "}";
}
std::string SnapshotMessage(std::string_view id, int64_t as_of, std::string_view jobs) {
  return R"({"type":"snapshot","id":)" + JsonString(id) + R"(,"as_of":)" + std::to_string(as_of) +
         R"(,"jobs":)" + std::string(jobs) + "}";
}
std::string GapMessage(std::string_view id, int64_t after) {
  return R"({"type":"gap","id":)" + JsonString(id) + R"(,"after":)" + std::to_string(after) + "}";
}
std::string ErrorMessage(std::string_view code, std::string_view message, std::string_view id) {
  return R"({"type":"error","code":)" + JsonString(code) + R"(,"message":)" + JsonString(message) +
         (id.empty() ? std::string() : R"(,"id":)" + JsonString(id)) + "}";
}
std::string PongMessage(uint64_t queue_bytes) {
  return R"({"type":"pong","queue_bytes":)" + std::to_string(queue_bytes) + "}";
}
std::string AckMessage(std::string_view id, std::string_view action, std::string_view job_id, int64_t event_id) {
  return R"({"type":"ack","id":)" + JsonString(id) + R"(,"action":)" + JsonString(action) + R"(,"job_id":)" +
         JsonString(job_id) + R"(,"event_id":)" + std::to_string(event_id) + "}";
}
std::string HistoryMessage(std::string_view id, std::string_view job_id, std::string_view events_json, bool more) {
  std::string out = R"({"type":"history","id":)" + JsonString(id) + R"(,"job_id":)" + JsonString(job_id) +
                    R"(,"events":)";
  out += events_json;
  out += more ? R"(,"more":true})" : R"(,"more":false})";
  return out;
}
std::string CountsMessage(int64_t as_of, std::string_view counts_json) {
  std::string out = R"({"type":"counts","as_of":)" + std::to_string(as_of) + R"(,"counts":)";
  out += counts_json;
  out += '}';
  return out;
}
std::string ConflatedMessage(uint64_t dropped) {
  return R"({"type":"conflated","dropped":)" + std::to_string(dropped) + "}";
}
std::string EventMessage(std::string_view event_json) {
  std::string out;
  out.reserve(event_json.size() + 26);
  out += R"({"type":"event","event":)";
  out += event_json;
  out += '}';
  return out;
}

}  // namespace reactor::hub
