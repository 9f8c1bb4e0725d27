// Differential fuzzer: the incremental validator against the reference of
// tests/ws/utf8_reference.h, fed byte by byte, whole, and in random chunks.
//
// Input: [cut count u8][cuts u16...][text...]
#include <cstdint>
#include <cstdlib>
#include <string>

#include "../ws/utf8_reference.h"
#include "fuzz_input.h"
#include "ws/utf8.h"

using namespace reactor::ws;

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const testing::Utf8Reference reference;
  reactor::fuzz::Input in(data, size);
  auto cuts = reactor::fuzz::ReadCuts(in);
  std::string text = in.Rest();
  auto verdict = reference.Check(text);

  Check(IsValidUtf8(text) == verdict.complete);

  // Byte by byte: the first refused byte is exactly the reference's fail index.
  Utf8Validator one;
  size_t fail = text.size();
  for (size_t i = 0; i < text.size(); ++i) {
    if (!one.Feed(std::string_view(&text[i], 1))) {
      fail = i;
      break;
    }
  }
  Check(fail == verdict.fail_index);
  if (fail == text.size()) Check(one.complete() == verdict.complete);

  // In chunks: only the chunk holding the fail index is refused.
  Utf8Validator chunked;
  size_t at = 0;
  for (const auto& c : reactor::fuzz::Split(cuts, text)) {
    bool ok = chunked.Feed(reactor::fuzz::View(c));
    bool holds_fail = verdict.fail_index >= at && verdict.fail_index < at + c.size();
    bool past_fail = verdict.fail_index < at;
    Check(ok == !(holds_fail || past_fail));
    at += c.size();
  }
  Check(chunked.complete() == verdict.complete);
  return 0;
}
