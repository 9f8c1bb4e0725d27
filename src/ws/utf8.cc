#include "ws/utf8.h"

#include <array>
#include <cstring>

namespace reactor::ws {
namespace {

// For each lead byte: how many continuation bytes follow and the range the first of them
// must lie in. Narrowing only the first continuation byte is enough to exclude overlongs
// (E0, F0), surrogates (ED) and code points above U+10FFFF (F4), which is what makes the
// validator fail on the very byte that breaks the text. need == 0 marks a byte that can
// never start a sequence (ASCII is handled before the table is consulted).
struct Lead {
  uint8_t need, lo, hi;
};

constexpr std::array<Lead, 256> MakeLeadTable() {
  std::array<Lead, 256> t{};
  for (int b = 0xC2; b <= 0xDF; ++b) t[b] = {1, 0x80, 0xBF};
  t[0xE0] = {2, 0xA0, 0xBF};
  for (int b = 0xE1; b <= 0xEC; ++b) t[b] = {2, 0x80, 0xBF};
  t[0xED] = {2, 0x80, 0x9F};
  t[0xEE] = {2, 0x80, 0xBF};
  t[0xEF] = {2, 0x80, 0xBF};
  t[0xF0] = {3, 0x90, 0xBF};
  for (int b = 0xF1; b <= 0xF3; ++b) t[b] = {3, 0x80, 0xBF};
  t[0xF4] = {3, 0x80, 0x8F};
  return t;
}

constexpr std::array<Lead, 256> kLead = MakeLeadTable();

constexpr uint64_t kHighBits = 0x8080808080808080ULL;

}  // namespace

bool Utf8Validator::Feed(const uint8_t* p, size_t n) {
  if (failed_) return false;
  size_t i = 0;
  while (i < n) {
    if (need_ == 0) {
      // JSON control messages are almost all ASCII: skip it eight bytes at a time.
      while (i + 8 <= n) {
        uint64_t w;
        std::memcpy(&w, p + i, 8);
        if (w & kHighBits) break;
        i += 8;
      }
      while (i < n && p[i] < 0x80) ++i;
      if (i == n) break;
      const Lead& lead = kLead[p[i]];
      if (lead.need == 0) {
        failed_ = true;
        return false;
      }
      need_ = lead.need;
      lo_ = lead.lo;
      hi_ = lead.hi;
      ++i;
    } else {
      uint8_t b = p[i];
      if (b < lo_ || b > hi_) {
        failed_ = true;
        return false;
      }
      lo_ = 0x80;
      hi_ = 0xBF;
      --need_;
      ++i;
    }
  }
  return true;
}

bool IsValidUtf8(std::string_view bytes) {
  Utf8Validator v;
  return v.Feed(bytes) && v.complete();
}

}  // namespace reactor::ws
