// A reference UTF-8 checker, written differently from ws/utf8.cc on purpose: it accepts
// a sequence only when decoding it and re-encoding the code point gives the same bytes
// (which rules out overlongs without knowing their ranges), and it learns which
// incomplete sequences could still become valid by encoding every Unicode scalar value
// once. Slow and simple; used by the unit tests and the differential fuzzer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>

namespace reactor::ws::testing {

inline bool IsScalarValue(uint32_t cp) { return cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF); }

// The shortest UTF-8 form of any value up to 0x1FFFFF; no validity checks.
inline std::string EncodeCodePoint(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    s.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    s.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

class Utf8Reference {
 public:
  Utf8Reference() {
    for (uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
      if (!IsScalarValue(cp)) continue;
      std::string e = EncodeCodePoint(cp);
      for (size_t k = 1; k < e.size(); ++k) proper_prefixes_.insert(Pack(e.substr(0, k)));
    }
  }

  struct Verdict {
    size_t fail_index;  // first byte after which no continuation can be valid; size() if none
    bool complete;      // the whole input is valid UTF-8
  };

  Verdict Check(std::string_view s) const {
    size_t i = 0;
    while (i < s.size()) {
      size_t n = WholeSequenceAt(s, i);
      if (n > 0) {
        i += n;
        continue;
      }
      size_t k = 0;
      while (k < 3 && i + k < s.size() && proper_prefixes_.count(Pack(s.substr(i, k + 1)))) ++k;
      if (i + k == s.size() && k > 0) return {s.size(), false};  // cut short, may go on
      return {i + k, false};
    }
    return {s.size(), true};
  }

 private:
  static uint32_t Pack(std::string_view b) {
    uint32_t v = static_cast<uint32_t>(b.size());
    for (char c : b) v = (v << 8) | static_cast<uint8_t>(c);
    return v;
  }

  // Length of the encoding of one scalar value starting at s[i], or 0.
  static size_t WholeSequenceAt(std::string_view s, size_t i) {
    for (size_t len = 1; len <= 4 && i + len <= s.size(); ++len) {
      std::string_view cand = s.substr(i, len);
      uint32_t cp = 0;
      auto b0 = static_cast<uint8_t>(cand[0]);
      size_t expect = b0 < 0x80 ? 1 : (b0 >> 5) == 0x6 ? 2 : (b0 >> 4) == 0xE ? 3 : (b0 >> 3) == 0x1E ? 4 : 0;
      if (expect != len) continue;
      cp = len == 1 ? b0 : len == 2 ? (b0 & 0x1F) : len == 3 ? (b0 & 0x0F) : (b0 & 0x07);
      bool ok = true;
      for (size_t j = 1; j < len; ++j) {
        auto b = static_cast<uint8_t>(cand[j]);
        if ((b >> 6) != 0x2) ok = false;
        cp = (cp << 6) | (b & 0x3F);
      }
      if (ok && IsScalarValue(cp) && EncodeCodePoint(cp) == cand) return len;
    }
    return 0;
  }

  std::unordered_set<uint32_t> proper_prefixes_;
};

}  // namespace reactor::ws::testing
