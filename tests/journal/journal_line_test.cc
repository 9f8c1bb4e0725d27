#include <doctest/doctest.h>

#include "journal/journal_line.h"

using reactor::journal::FormatJournalLine;
using reactor::journal::IsBlankLine;
using reactor::journal::JournalLineParser;
using reactor::journal::JournalLineSize;
using reactor::journal::ParseJournalLine;

namespace {
std::string WithoutNewline(std::string line) {
  REQUIRE(!line.empty());
  REQUIRE(line.back() == '\n');
  line.pop_back();
  return line;
}
}  // namespace

TEST_CASE("FormatJournalLine writes exactly {\"t\":MS,\"event\":BYTES} and a newline") {
  std::string ev = R"({"id": 4711, "kind": "status", "job_id": "job_42"})";
  CHECK(FormatJournalLine(1700000000123, ev) ==
        "{\"t\":1700000000123,\"event\":" + ev + "}\n");
  CHECK(FormatJournalLine(0, "{}") == "{\"t\":0,\"event\":{}}\n");
  CHECK(JournalLineSize(1700000000123, ev) == FormatJournalLine(1700000000123, ev).size());
  CHECK(JournalLineSize(0, "{}") == FormatJournalLine(0, "{}").size());
}

TEST_CASE("FormatJournalLine keeps one event on one line") {
  // Line breaks can only be whitespace between tokens in valid JSON.
  std::string line = FormatJournalLine(5, "{\n  \"id\": 1,\r\n  \"s\": \"a\\nb\"\n}");
  CHECK(line == "{\"t\":5,\"event\":{   \"id\": 1,    \"s\": \"a\\nb\" }}\n");
  auto e = ParseJournalLine(WithoutNewline(line));
  REQUIRE(e);
  CHECK(e->event.id == 1);
}

TEST_CASE("Round trip: the event bytes come back verbatim, unicode and escapes included") {
  const char* events[] = {
      R"({"id":1,"kind":"status","job_id":"j1","source":"scheduled_jobs","status":"running","user_id":"u1","job_type":"sync"})",
      R"({"id": 2, "kind": "progress", "job_id": "é✓😀", "source": "jobs", "message": "line\nbreak \"quoted\" \\ \u00e9 \ud83d\ude00 tab\t"})",
      R"({"job_id":"abc","status":"processing","nested":{"a":[1,2,{"b":null}],"c":1.5e3},"empty":{},"arr":[]})",
      R"({})",
      R"({ "id" : 7 , "kind" : "due" , "source" : "s" })",
  };
  JournalLineParser parser;
  int64_t t = 1700000000000;
  for (const char* ev : events) {
    CAPTURE(ev);
    auto r = parser.Parse(WithoutNewline(FormatJournalLine(t, ev)));
    REQUIRE(r);
    CHECK(r->t_ms == t);
    CHECK(r->event_json() == ev);
    CHECK(r->event.json == ev);
    ++t;
  }
}

TEST_CASE("ParseJournalLine extracts the routing fields of the event") {
  auto r = ParseJournalLine(
      R"({"t":42,"event":{"id":9,"kind":"status","job_id":"j","source":"scheduled_jobs","status":"failed","user_id":"u7","job_type":"mail"}})");
  REQUIRE(r);
  CHECK(r->t_ms == 42);
  CHECK(r->event.id == 9);
  CHECK(r->event.status == "failed");
  CHECK(r->event.user_id == "u7");
  CHECK(r->event.job_type == "mail");
  CHECK(r->event.job_id == "j");
  CHECK_FALSE(r->event.foreign);
}

TEST_CASE("ParseJournalLine: key order, spacing and unknown keys") {
  auto a = ParseJournalLine(R"({"event":{"id":3},"t":10})");
  REQUIRE(a);
  CHECK(a->t_ms == 10);
  CHECK(a->event_json() == R"({"id":3})");

  auto b = ParseJournalLine("  { \"t\" : 11 ,\t\"event\" : { \"id\" : 4 }  ,  \"v\": [1] }  ");
  REQUIRE(b);
  CHECK(b->t_ms == 11);
  CHECK(b->event_json() == R"({ "id" : 4 })");

  auto c = ParseJournalLine(R"({"t":9223372036854775807,"event":{}})");
  REQUIRE(c);
  CHECK(c->t_ms == INT64_MAX);
}

TEST_CASE("ParseJournalLine rejects malformed lines with a reason") {
  struct Case {
    const char* line;
    const char* reason;  // a part of the message
  } cases[] = {
      {"hello", "not valid JSON"},
      {"", "not valid JSON"},
      {R"({"t":1,"event":{"id":1})", "not valid JSON"},
      {R"({"t":1,"event":{"id":tru}})", "not valid JSON"},
      {R"({"t":1,"event":{"id":1}} x)", "not valid JSON"},
      {R"({"t":1,"event":{"id":1}}{"t":2,"event":{}})", "not valid JSON"},
      {"{\"t\":1,\"event\":{\"s\":\"\xff\"}}", "not valid JSON"},
      {R"([{"t":1,"event":{}}])", "not a JSON object"},
      {R"("text")", "not a JSON object"},
      {R"({"event":{"id":1}})", "\"t\" is missing"},
      {R"({"t":-1,"event":{}})", "\"t\" is negative"},
      {R"({"t":1.5,"event":{}})", "\"t\" is not an integer"},
      {R"({"t":1e3,"event":{}})", "\"t\" is not an integer"},
      {R"({"t":"1","event":{}})", "\"t\" is not a number"},
      {R"({"t":null,"event":{}})", "\"t\" is not a number"},
      {R"({"t":18446744073709551615,"event":{}})", "\"t\" is out of range"},
      {R"({"t":1})", "\"event\" is missing"},
      {R"({"t":1,"event":[1]})", "\"event\" is not a JSON object"},
      {R"({"t":1,"event":"{}"})", "\"event\" is not a JSON object"},
      {R"({"t":1,"event":null})", "\"event\" is not a JSON object"},
      {R"({"t":1,"t":2,"event":{}})", "\"t\" appears twice"},
      {R"({"t":1,"event":{},"event":{}})", "\"event\" appears twice"},
  };
  JournalLineParser parser;
  for (const auto& c : cases) {
    CAPTURE(c.line);
    auto r = parser.Parse(c.line);
    REQUIRE_FALSE(r);
    CHECK(r.error().find(c.reason) != std::string::npos);
  }
  // The parser is still good after errors.
  CHECK(parser.Parse(R"({"t":1,"event":{"id":1}})"));
}

TEST_CASE("IsBlankLine") {
  CHECK(IsBlankLine(""));
  CHECK(IsBlankLine("  \t\r"));
  CHECK_FALSE(IsBlankLine(" x "));
  CHECK_FALSE(IsBlankLine("{}"));
}
