#include "core/event.h"

#include <simdjson.h>

#include "core/iso_time.h"

namespace reactor {
namespace {

using simdjson::ondemand::json_type;

// Strings as their unescaped text, numbers as their JSON text; null → absent.
simdjson::error_code ReadScalar(simdjson::ondemand::value v, std::string& out, bool& present) {
  json_type t;
  if (auto e = v.type().get(t)) return e;
  switch (t) {
    case json_type::null:
      present = false;
      out.clear();
      return simdjson::SUCCESS;
    case json_type::string: {
      std::string_view s;
      if (auto e = v.get_string().get(s)) return e;
      out.assign(s);
      present = true;
      return simdjson::SUCCESS;
    }
    case json_type::number: {
      std::string_view raw = v.raw_json_token();
      while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\n' || raw.back() == '\t' ||
                              raw.back() == '\r')) {
        raw.remove_suffix(1);
      }
      out.assign(raw);
      present = true;
      return simdjson::SUCCESS;
    }
    default:
      present = false;
      return simdjson::SUCCESS;  // objects/arrays/bools are not routing values
  }
}

}  // namespace

struct EventParser::Impl {
  simdjson::ondemand::parser parser;
};

EventParser::EventParser() : impl_(std::make_unique<Impl>()) {}
EventParser::~EventParser() = default;

Result<Event> EventParser::Parse(std::string_view payload) {
  auto& parser = impl_->parser;
  simdjson::padded_string padded(payload);
  simdjson::ondemand::document doc;
  if (auto e = parser.iterate(padded).get(doc)) {
    return Status::Error(std::string("invalid JSON: ") + simdjson::error_message(e));
  }
  simdjson::ondemand::object obj;
  if (doc.get_object().get(obj)) return Status::Error("payload is not a JSON object");

  Event ev;
  bool has_source = false;
  for (auto field_result : obj) {
    simdjson::ondemand::field field;
    if (auto e = std::move(field_result).get(field)) {
      return Status::Error(std::string("invalid JSON: ") + simdjson::error_message(e));
    }
    std::string_view key;
    if (auto e = field.unescaped_key().get(key)) {
      return Status::Error(std::string("invalid JSON key: ") + simdjson::error_message(e));
    }
    simdjson::ondemand::value v = field.value();
    bool present = false;
    simdjson::error_code e = simdjson::SUCCESS;
    if (key == "id") {
      int64_t id = 0;
      json_type t;
      if (!(e = v.type().get(t)) && t == json_type::number && !v.get_int64().get(id) && id > 0) {
        ev.id = id;
      }
    } else if (key == "kind") {
      e = ReadScalar(v, ev.kind, present);
    } else if (key == "job_id") {
      e = ReadScalar(v, ev.job_id, present);
    } else if (key == "source") {
      e = ReadScalar(v, ev.source, has_source);
    } else if (key == "status") {
      e = ReadScalar(v, ev.status, present);
    } else if (key == "old_status") {
      e = ReadScalar(v, ev.old_status, present);
    } else if (key == "at") {
      std::string at;
      e = ReadScalar(v, at, present);
      if (!e && present) ev.at_us = ParseIsoUtc(at).value_or(0);
    } else if (key == "user_id") {
      e = ReadScalar(v, ev.user_id, ev.has_user);
    } else if (key == "job_type") {
      e = ReadScalar(v, ev.job_type, present);
    } else if (key == "deadline") {
      e = ReadScalar(v, ev.deadline, present);
    } else if (key == "truncated") {
      bool b = false;
      json_type t;
      if (!(e = v.type().get(t)) && t == json_type::boolean && !v.get_bool().get(b)) {
        ev.truncated = b;
      }
    }
    if (e) return Status::Error(std::string("invalid JSON value: ") + simdjson::error_message(e));
  }
  // Past the object the document must be exhausted (simdjson 3.0 has no at_end()).
  const char* rest = nullptr;
  if (doc.current_location().get(rest) == simdjson::SUCCESS) {
    return Status::Error("trailing content after the JSON object");
  }
  // The oversize notice (CONTRACT section 4) has id, kind, job_id, status and
  // "truncated" but no source; it stands for a logged row all the same.
  bool oversize_notice = ev.truncated && ev.id > 0;
  ev.foreign = ev.kind.empty() || (!has_source && !oversize_notice);
  ev.json.assign(payload);
  return ev;
}

}  // namespace reactor
