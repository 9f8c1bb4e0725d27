// One line of a journal (CONTRACT section 6): `{"t":<unix ms received>,"event":{…}}\n`.
//
// Pure: bytes in, bytes out; no I/O, no clock. See docs/journal.md for the format.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/event.h"
#include "core/status.h"

namespace reactor::journal {

// Returns `{"t":<t_ms>,"event":<event_json>}` followed by '\n'. The event bytes are
// copied verbatim, except that a raw CR or LF (which valid JSON can only hold as
// whitespace between tokens) becomes a space, so that one event is always one line.
// REQUIRES: event_json is one JSON object (the caller parsed it; this does not check).
std::string FormatJournalLine(int64_t t_ms, std::string_view event_json);

// The same line appended to `out` (no temporary), and its size without formatting it.
void AppendJournalLine(std::string& out, int64_t t_ms, std::string_view event_json);
size_t JournalLineSize(int64_t t_ms, std::string_view event_json);

struct JournalEntry {
  int64_t t_ms = 0;
  // The "event" object exactly as it appears in the line (event.json holds the same
  // bytes), with its routing fields extracted by EventParser.
  Event event;
  const std::string& event_json() const { return event.json; }
};

// Parses journal lines, reusing its buffers across calls. Not thread-safe.
class JournalLineParser {
 public:
  JournalLineParser();
  ~JournalLineParser();
  JournalLineParser(const JournalLineParser&) = delete;
  JournalLineParser& operator=(const JournalLineParser&) = delete;

  // `line` is one line without its terminating "\n" (a trailing "\r" is the caller's to
  // strip). It must be one JSON object holding an integer "t" >= 0 and an object
  // "event"; other keys are ignored (room for later versions), a repeated "t" or
  // "event" is an error, as is anything after the object. The error message is a short
  // reason fit to follow "malformed journal line: ".
  Result<JournalEntry> Parse(std::string_view line);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Convenience for one-off use; replay loops should keep a JournalLineParser.
Result<JournalEntry> ParseJournalLine(std::string_view line);

// True when `line` holds nothing but JSON whitespace (such lines are skipped silently).
bool IsBlankLine(std::string_view line);

}  // namespace reactor::journal
