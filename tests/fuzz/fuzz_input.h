// Reads a fuzzer input from the front, so that seed files can be written by hand: fixed
// fields first, then the payload. Reading past the end yields zeros / empty strings.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace reactor::fuzz {

class Input {
 public:
  Input(const uint8_t* data, size_t size) : p_(data), n_(size) {}

  uint8_t U8() { return pos_ < n_ ? p_[pos_++] : 0; }
  uint16_t U16() {
    uint16_t hi = U8();
    return static_cast<uint16_t>((hi << 8) | U8());
  }
  std::string Bytes(size_t k) {
    k = std::min(k, n_ - pos_);
    std::string s(reinterpret_cast<const char*>(p_ + pos_), k);
    pos_ += k;
    return s;
  }
  std::string Rest() { return Bytes(n_ - pos_); }
  bool empty() const { return pos_ >= n_; }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
};

// Up to 15 cut points (raw; Split reduces them modulo the stream's size).
inline std::vector<uint16_t> ReadCuts(Input& in) {
  std::vector<uint16_t> raw(in.U8() % 16);
  for (auto& c : raw) c = in.U16();
  return raw;
}

// Splits `bytes` at the cut points. Each chunk gets its own exact-size allocation so that
// AddressSanitizer sees any read past the end of a chunk.
inline std::vector<std::vector<char>> Split(const std::vector<uint16_t>& raw, const std::string& bytes) {
  std::vector<size_t> cuts = {0, bytes.size()};
  for (uint16_t c : raw) cuts.push_back(c % (bytes.size() + 1));
  std::sort(cuts.begin(), cuts.end());
  std::vector<std::vector<char>> chunks;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    if (cuts[i + 1] == cuts[i]) continue;
    chunks.emplace_back(bytes.begin() + static_cast<long>(cuts[i]),
                        bytes.begin() + static_cast<long>(cuts[i + 1]));
  }
  return chunks;
}

inline std::string_view View(const std::vector<char>& v) { return {v.data(), v.size()}; }

}  // namespace reactor::fuzz
