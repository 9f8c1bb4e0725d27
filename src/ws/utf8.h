// Incremental UTF-8 validation (RFC 3629) for WebSocket text messages and close reasons.
//
// Pure and allocation-free. The state is carried across calls, so a message can be
// validated fragment by fragment and byte by byte, and it fails at the first byte after
// which no continuation could make the text valid (the RFC 6455 "fail fast" behaviour):
// overlong forms, UTF-16 surrogates (U+D800..U+DFFF), code points above U+10FFFF,
// stray continuation bytes and the never-valid bytes C0, C1, F5..FF. A sequence that is
// merely cut short is only an error at the end of the text (see complete()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace reactor::ws {

class Utf8Validator {
 public:
  // Validates the next bytes of the text. Returns false as soon as the bytes fed so far
  // are no prefix of any valid UTF-8 text; from then on the validator stays failed
  // (and ignores input) until Reset().
  bool Feed(const uint8_t* data, size_t size);
  bool Feed(std::string_view bytes) {
    return Feed(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }

  // True when everything fed so far is valid and ends on a code point boundary, i.e. the
  // text may end here.
  bool complete() const { return !failed_ && need_ == 0; }
  bool failed() const { return failed_; }

  void Reset() { *this = Utf8Validator(); }

 private:
  uint8_t need_ = 0;     // continuation bytes still expected in the current sequence
  uint8_t lo_ = 0x80;    // the next continuation byte must lie in [lo_, hi_]
  uint8_t hi_ = 0xBF;
  bool failed_ = false;
};

// The whole of `bytes` is valid UTF-8.
bool IsValidUtf8(std::string_view bytes);

}  // namespace reactor::ws
