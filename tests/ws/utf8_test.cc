#include <doctest/doctest.h>

#include <string>

#include "utf8_reference.h"
#include "utf8_vectors.h"
#include "ws/utf8.h"

using reactor::ws::IsValidUtf8;
using reactor::ws::Utf8Validator;
using namespace reactor::ws::testing;

namespace {

// Index of the byte at which a byte-by-byte validator first fails; size() if it never does.
size_t FailIndex(std::string_view s) {
  Utf8Validator v;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!v.Feed(s.substr(i, 1))) return i;
  }
  return s.size();
}

const Utf8Reference& Reference() {
  static const Utf8Reference ref;
  return ref;
}

}  // namespace

TEST_CASE("utf8: the Autobahn 6.5-6.23 vectors, whole and byte by byte") {
  auto vectors = AutobahnUtf8Vectors();
  CHECK(vectors.size() == 132);  // 6.5.1 ... 6.23.7
  for (const auto& v : vectors) {
    CAPTURE(v.id);
    CHECK(IsValidUtf8(v.bytes) == v.valid);
    Utf8Validator inc;
    bool alive = true;
    for (char c : v.bytes) alive = inc.Feed(std::string_view(&c, 1)) && alive;
    CHECK((alive && inc.complete()) == v.valid);
    CHECK(Reference().Check(v.bytes).complete == v.valid);
  }
}

TEST_CASE("utf8: fails on the first impossible byte, not at the end (Autobahn fail-fast)") {
  CHECK(FailIndex("\xF5") == 0);
  CHECK(FailIndex("\x65\x64\x69\x74\x65\x64\xED\xA0\x80") == 7);  // surrogate: at A0
  CHECK(FailIndex(Hex("cebae1bdb9cf83cebcceb5f4908080656469746564")) == 12);  // 6.4.1: at 90
  CHECK(FailIndex(Hex("c0af")) == 0);       // C0 never starts anything
  CHECK(FailIndex(Hex("e080af")) == 1);     // overlong 3-byte form: at the 80
  CHECK(FailIndex(Hex("f08fbfbf")) == 1);   // overlong 4-byte form
  CHECK(FailIndex(Hex("f4908080")) == 1);   // above U+10FFFF
  CHECK(FailIndex(Hex("e282")) == 2);       // merely cut short: never fails ...
  Utf8Validator v;
  CHECK(v.Feed(Hex("e282")));
  CHECK_FALSE(v.complete());                // ... but is not complete
  CHECK(v.Feed(Hex("ac")));
  CHECK(v.complete());
}

TEST_CASE("utf8: stays failed until Reset") {
  Utf8Validator v;
  CHECK_FALSE(v.Feed("\xFF"));
  CHECK(v.failed());
  CHECK_FALSE(v.Feed("abc"));
  CHECK_FALSE(v.complete());
  v.Reset();
  CHECK(v.Feed("abc"));
  CHECK(v.complete());
}

TEST_CASE("utf8: every scalar value is valid, every surrogate is not") {
  for (uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    std::string e = EncodeCodePoint(cp);
    bool expect = IsScalarValue(cp);
    if (IsValidUtf8(e) != expect) {
      FAIL("code point " << cp);
    }
  }
  // Just above the range: F4 90 80 80 is U+110000.
  CHECK_FALSE(IsValidUtf8(EncodeCodePoint(0x110000)));
  CHECK_FALSE(IsValidUtf8(EncodeCodePoint(0x1FFFFF)));
}

TEST_CASE("utf8: agrees with the reference on every 1- and 2-byte input") {
  for (int a = 0; a < 256; ++a) {
    for (int b = -1; b < 256; ++b) {
      std::string s(1, static_cast<char>(a));
      if (b >= 0) s.push_back(static_cast<char>(b));
      auto ref = Reference().Check(s);
      if (FailIndex(s) != ref.fail_index || IsValidUtf8(s) != ref.complete) {
        FAIL("input " << a << " " << b);
      }
    }
  }
}

TEST_CASE("utf8: agrees with the reference on 3- and 4-byte inputs over boundary bytes") {
  const uint8_t edge[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC2, 0xF4, 0xFF};
  size_t checked = 0;
  for (int lead = 0x80; lead < 0x100; ++lead) {
    for (uint8_t b : edge) {
      for (uint8_t c : edge) {
        std::string s3{static_cast<char>(lead), static_cast<char>(b), static_cast<char>(c)};
        auto r3 = Reference().Check(s3);
        CHECK_MESSAGE((FailIndex(s3) == r3.fail_index && IsValidUtf8(s3) == r3.complete),
                      lead << " " << int{b} << " " << int{c});
        for (uint8_t d : edge) {
          std::string s4 = s3 + static_cast<char>(d);
          auto r4 = Reference().Check(s4);
          if (FailIndex(s4) != r4.fail_index || IsValidUtf8(s4) != r4.complete) {
            FAIL("input " << lead << " " << int{b} << " " << int{c} << " " << int{d});
          }
          ++checked;
        }
      }
    }
  }
  CHECK(checked == 128 * 12 * 12 * 12);
}

TEST_CASE("utf8: the ASCII fast path hands over correctly at every offset") {
  // A multi-byte character at every position relative to the 8-byte blocks, then an
  // invalid byte at every position: the verdict must not depend on alignment.
  for (size_t pre = 0; pre < 20; ++pre) {
    std::string ok = std::string(pre, 'a') + Hex("e282ac") + std::string(9, 'b');
    CHECK(IsValidUtf8(ok));
    std::string bad = std::string(pre, 'a') + "\x80" + std::string(9, 'b');
    CHECK_FALSE(IsValidUtf8(bad));
    CHECK(FailIndex(bad) == pre);
    Utf8Validator v;
    CHECK_FALSE(v.Feed(bad));
  }
}
