#include "journal/journal_line.h"

#include <simdjson.h>

#include <charconv>

namespace reactor::journal {
namespace {

bool IsJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

Status Malformed(std::string reason) { return Status::Error(std::move(reason)); }

}  // namespace

size_t JournalLineSize(int64_t t_ms, std::string_view event_json) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, t_ms);
  (void)ec;  // 24 bytes always hold an int64
  return sizeof("{\"t\":,\"event\":}\n") - 1 + static_cast<size_t>(end - digits) +
         event_json.size();
}

void AppendJournalLine(std::string& out, int64_t t_ms, std::string_view event_json) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, t_ms);
  (void)ec;
  out.append("{\"t\":");
  out.append(digits, end);
  out.append(",\"event\":");
  size_t start = out.size();
  out.append(event_json);
  // Inside a JSON string CR and LF must be escaped, so a raw one is whitespace between
  // tokens: replacing it keeps the event's meaning and keeps the journal one event a line.
  for (size_t i = start; i < out.size(); ++i) {
    if (out[i] == '\n' || out[i] == '\r') out[i] = ' ';
  }
  out.append("}\n");
}

std::string FormatJournalLine(int64_t t_ms, std::string_view event_json) {
  std::string line;
  line.reserve(JournalLineSize(t_ms, event_json));
  AppendJournalLine(line, t_ms, event_json);
  return line;
}

bool IsBlankLine(std::string_view line) {
  for (char c : line) {
    if (!IsJsonSpace(c)) return false;
  }
  return true;
}

struct JournalLineParser::Impl {
  // The DOM pass validates every byte of the line (on-demand skips what it is not asked
  // for, and a journal line is either whole or rejected); the on-demand pass then yields
  // the event's exact text, which the DOM cannot.
  simdjson::dom::parser dom;
  simdjson::ondemand::parser ondemand;
  std::string buf;  // the line plus simdjson's padding
  EventParser events;
};

JournalLineParser::JournalLineParser() : impl_(std::make_unique<Impl>()) {}
JournalLineParser::~JournalLineParser() = default;

Result<JournalEntry> JournalLineParser::Parse(std::string_view line) {
  Impl& m = *impl_;
  // Zeroed padding rather than spare capacity: simdjson may read it.
  m.buf.assign(line);
  m.buf.append(simdjson::SIMDJSON_PADDING, '\0');

  simdjson::dom::element root;
  if (auto e = m.dom.parse(m.buf.data(), line.size(), false).get(root)) {
    return Malformed(std::string("not valid JSON (") + simdjson::error_message(e) + ")");
  }
  simdjson::dom::object top;
  if (root.get_object().get(top)) return Malformed("not a JSON object");

  JournalEntry entry;
  bool have_t = false, have_event = false;
  for (auto [key, value] : top) {
    if (key == "t") {
      if (have_t) return Malformed("\"t\" appears twice");
      have_t = true;
      switch (value.type()) {
        case simdjson::dom::element_type::INT64:
          entry.t_ms = value.get_int64().value_unsafe();
          if (entry.t_ms < 0) return Malformed("\"t\" is negative");
          break;
        case simdjson::dom::element_type::UINT64:
          return Malformed("\"t\" is out of range");
        case simdjson::dom::element_type::DOUBLE:
          return Malformed("\"t\" is not an integer");
        default:
          return Malformed("\"t\" is not a number");
      }
    } else if (key == "event") {
      if (have_event) return Malformed("\"event\" appears twice");
      have_event = true;
      if (value.type() != simdjson::dom::element_type::OBJECT) {
        return Malformed("\"event\" is not a JSON object");
      }
    }
  }
  if (!have_t) return Malformed("\"t\" is missing");
  if (!have_event) return Malformed("\"event\" is missing");

  simdjson::padded_string_view padded(m.buf.data(), line.size(), m.buf.size());
  simdjson::ondemand::document doc;
  simdjson::ondemand::object obj;
  std::string_view raw;
  bool found = false;
  if (m.ondemand.iterate(padded).get(doc) || doc.get_object().get(obj)) {
    return Malformed("not a JSON object");
  }
  for (auto field_result : obj) {
    simdjson::ondemand::field field;
    std::string_view key;
    if (std::move(field_result).get(field) || field.unescaped_key().get(key)) {
      return Malformed("not valid JSON");
    }
    if (key != "event") continue;
    simdjson::ondemand::object ev;
    if (field.value().get_object().get(ev) || ev.raw_json().get(raw)) {
      return Malformed("\"event\" is not a JSON object");
    }
    found = true;
    break;
  }
  if (!found) return Malformed("\"event\" is missing");
  // raw_json() runs up to the next token, so it carries the whitespace before it.
  while (!raw.empty() && IsJsonSpace(raw.back())) raw.remove_suffix(1);

  auto ev = m.events.Parse(raw);
  if (!ev) return Malformed("\"event\": " + ev.error());
  entry.event = std::move(*ev);
  return entry;
}

Result<JournalEntry> ParseJournalLine(std::string_view line) {
  JournalLineParser parser;
  return parser.Parse(line);
}

}  // namespace reactor::journal
