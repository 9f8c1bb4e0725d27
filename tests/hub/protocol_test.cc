// ParseClientMessage: every op, every error, and the filter limits.
#include <doctest/doctest.h>

#include <string>

#include "hub/protocol.h"

using namespace reactor;
using namespace reactor::hub;

namespace {

// The error message of a refused text (fails the test when it is accepted).
std::string Error(std::string_view text, const ParseLimits& limits = {}, bool* over = nullptr) {
  auto m = ParseClientMessage(text, limits, over);
  CHECK_FALSE(m);
  return m ? std::string() : m.error();
}

bool Contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

std::string Values(size_t n, size_t len = 1) {
  std::string out = "[";
  for (size_t i = 0; i < n; ++i) out += std::string(i ? "," : "") + "\"" + std::string(len, 'v') + "\"";
  return out + "]";
}

}  // namespace

TEST_CASE("protocol: subscribe with every field") {
  auto m = ParseClientMessage(
      R"({"op":"subscribe","id":"s1","filter":{"job_id":"j","user_id":"u","job_type":["a","b"],"status":"failed,,running"},"since":4700,"snapshot":true})");
  REQUIRE(m);
  CHECK(m->op == ClientMessage::Op::kSubscribe);
  CHECK(m->id == "s1");
  CHECK(m->filter.job_id == "j");
  CHECK(m->filter.user_id == "u");
  CHECK(m->filter.job_types == std::vector<std::string>{"a", "b"});
  CHECK(m->filter.statuses == std::vector<std::string>{"failed", "running"});
  REQUIRE(m->since);
  CHECK(*m->since == 4700);
  CHECK(m->snapshot);
}

TEST_CASE("protocol: defaults, nulls, numbers as ids, unknown top-level keys") {
  auto m = ParseClientMessage(R"({"op":"subscribe","since":null,"filter":null,"extra":[1,{"x":2}]})");
  REQUIRE(m);
  CHECK(m->id == "default");
  CHECK_FALSE(m->since);
  CHECK(m->filter.empty());
  CHECK_FALSE(m->snapshot);
  m = ParseClientMessage(R"({"op":"subscribe","id":42,"filter":{"job_id":7,"user_id":null}})");
  REQUIRE(m);
  CHECK(m->id == "42");
  CHECK(m->filter.job_id == "7");
  CHECK(m->filter.user_id.empty());
  // A repeated filter: the last one counts.
  m = ParseClientMessage(R"({"op":"subscribe","filter":{"job_type":["a"]},"filter":{"status":["b"]}})");
  REQUIRE(m);
  CHECK(m->filter.job_types.empty());
  CHECK(m->filter.statuses == std::vector<std::string>{"b"});
}

TEST_CASE("protocol: unsubscribe, auth, ping") {
  auto u = ParseClientMessage(R"({"op":"unsubscribe","id":"s1"})");
  REQUIRE(u);
  CHECK(u->op == ClientMessage::Op::kUnsubscribe);
  CHECK(u->id == "s1");
  auto a = ParseClientMessage(R"({"op":"auth","token":"t.k.n"})");
  REQUIRE(a);
  CHECK(a->op == ClientMessage::Op::kAuth);
  CHECK(a->token == "t.k.n");
  auto p = ParseClientMessage(" {\"op\":\"ping\"}\n");
  REQUIRE(p);
  CHECK(p->op == ClientMessage::Op::kPing);
}

TEST_CASE("protocol: every malformed message is refused with a reason") {
  CHECK(Contains(Error(""), "not JSON"));
  CHECK(Contains(Error("[1,2]"), "must be a JSON object"));
  CHECK(Contains(Error("\"ping\""), "must be a JSON object"));
  CHECK(Contains(Error(R"({"op" "ping"})"), "not valid JSON"));
  CHECK(Contains(Error(R"({"op":"ping"} {})"), "trailing content"));
  CHECK(Contains(Error(R"({"id":"x"})"), "missing op"));
  CHECK(Contains(Error(R"({"op":true})"), "op must be a string"));
  CHECK(Contains(Error(R"({"op":"publish"})"), "unknown op 'publish'"));
  CHECK(Contains(Error(R"({"op":"unsubscribe"})"), "unsubscribe needs an id"));
  CHECK(Contains(Error(R"({"op":"auth"})"), "auth needs a token"));
  CHECK(Contains(Error(R"({"op":"auth","token":["t"]})"), "token must be a string"));
  CHECK(Contains(Error(R"({"op":"subscribe","id":{}})"), "id must be a string"));
  CHECK(Contains(Error(R"({"op":"subscribe","id":")" + std::string(257, 'x') + "\"}"), "id too long"));
  CHECK(Contains(Error(R"({"op":"subscribe","snapshot":"yes"})"), "snapshot must be true or false"));
  CHECK(Contains(Error(R"({"op":"subscribe","since":-1})"), "non-negative integer"));
  CHECK(Contains(Error(R"({"op":"subscribe","since":1.5})"), "non-negative integer"));
  CHECK(Contains(Error(R"({"op":"subscribe","since":"3"})"), "non-negative integer"));
  CHECK(Contains(Error(R"({"op":"subscribe","since":99999999999999999999})"), "non-negative integer"));
  CHECK(Contains(Error(R"({"op":"subscribe","filter":[]})"), "filter must be an object"));
  CHECK(Contains(Error(R"({"op":"subscribe","filter":{"colour":"red"}})"), "unknown filter key 'colour'"));
  CHECK(Contains(Error(R"({"op":"subscribe","filter":{"job_type":3}})"), "job_type must be a string or an array"));
  CHECK(Contains(Error(R"({"op":"subscribe","filter":{"status":["a",1]}})"), "status must hold strings"));
  CHECK(Contains(Error(R"({"op":"subscribe","filter":{"job_id":["a"]}})"), "job_id must be a string"));
  CHECK(Contains(Error(R"({"op":"subscribe","filter":{"user_id":false}})"), "user_id must be a string"));
}

TEST_CASE("protocol: filter lists over --max-filter-values are refused") {
  ParseLimits l;
  l.max_filter_values = 3;
  l.max_filter_bytes = 4096;
  bool over = false;
  auto ok = ParseClientMessage(R"({"op":"subscribe","filter":{"job_type":["a","b","c"],"status":"x,y,z"}})", l, &over);
  CHECK(ok);
  CHECK_FALSE(over);
  std::string e = Error(R"({"op":"subscribe","filter":{"job_type":["a","b","c","d"]}})", l, &over);
  CHECK(over);
  CHECK(Contains(e, "job_type has more than 3 values"));
  over = false;
  e = Error(R"({"op":"subscribe","filter":{"status":"a,b,c,d"}})", l, &over);  // the string form too
  CHECK(over);
  CHECK(Contains(e, "status has more than 3 values"));
  // A malformed message is not a limit.
  over = true;
  Error(R"({"op":"subscribe","filter":{"status":[1]}})", l, &over);
  CHECK_FALSE(over);
  // The defaults: 256 values pass, 257 do not.
  CHECK(ParseClientMessage(R"({"op":"subscribe","filter":{"job_type":)" + Values(256) + "}}"));
  Error(R"({"op":"subscribe","filter":{"job_type":)" + Values(257) + "}}", {}, &over);
  CHECK(over);
}

TEST_CASE("protocol: a filter over --max-filter-bytes is refused, all its strings counted") {
  ParseLimits l;
  l.max_filter_values = 1000;
  l.max_filter_bytes = 100;
  bool over = false;
  // 10 values of 10 bytes: exactly 100.
  CHECK(ParseClientMessage(R"({"op":"subscribe","filter":{"job_type":)" + Values(10, 10) + "}}", l, &over));
  std::string e = Error(R"({"op":"subscribe","filter":{"job_type":)" + Values(10, 10) + R"(,"job_id":"j"}})", l, &over);
  CHECK(over);
  CHECK(Contains(e, "filter over 100 bytes"));
  Error(R"({"op":"subscribe","filter":{"user_id":")" + std::string(101, 'u') + "\"}}", l, &over);
  CHECK(over);
  Error(R"({"op":"subscribe","filter":{"job_type":)" + Values(5, 10) + R"(,"status":)" + Values(6, 10) + "}}", l, &over);
  CHECK(over);
  // Default: 4096 bytes in all.
  CHECK(ParseClientMessage(R"({"op":"subscribe","filter":{"job_type":)" + Values(4, 1024) + "}}"));
  Error(R"({"op":"subscribe","filter":{"job_type":)" + Values(4, 1024) + R"(,"job_id":"x"}})", {}, &over);
  CHECK(over);
}

TEST_CASE("protocol: the query shortcut is the subscribe of \"default\", under the same limits") {
  using Q = std::vector<std::pair<std::string, std::string>>;
  CHECK(!ParseShortcut(Q{{"access_token", "t"}, {"other", "x"}}));
  auto m = ParseShortcut(Q{{"job_type", "a,b"}, {"status", "failed"}, {"user_id", "u1"}, {"since", "42"}, {"snapshot", "true"}});
  REQUIRE(m);
  REQUIRE(*m);
  CHECK((*m)->op == ClientMessage::Op::kSubscribe);
  CHECK((*m)->id == "default");
  CHECK((*m)->filter.job_types == std::vector<std::string>{"a", "b"});
  CHECK((*m)->filter.statuses == std::vector<std::string>{"failed"});
  CHECK((*m)->filter.user_id == "u1");
  CHECK((*m)->since == 42);
  CHECK((*m)->snapshot);
  for (const char* bad : {"x", "-1", "", "99999999999999999999", "1x"}) {
    auto b = ParseShortcut(Q{{"since", bad}});
    REQUIRE(b);
    CHECK(!*b);
  }
  ParseLimits tight;
  tight.max_filter_values = 2;
  bool over = false;
  auto many = ParseShortcut(Q{{"job_type", "a,b,c"}}, tight, &over);
  REQUIRE(many);
  CHECK(!*many);
  CHECK(over);
  tight.max_filter_bytes = 8;
  auto big = ParseShortcut(Q{{"job_id", "0123456789"}}, tight, &over);
  REQUIRE(big);
  CHECK(!*big);
}
