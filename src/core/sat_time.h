// Saturating arithmetic for times that come from outside (a token's `exp`, a deadline a
// client named): a value near the int64 limits clamps instead of wrapping, so a hostile
// number can make a deadline far away but never in the past. Pure, constexpr, no clock.
#pragma once

#include <cstdint>
#include <limits>

namespace reactor {

inline constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
inline constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

// a + b, clamped to [INT64_MIN, INT64_MAX].
constexpr int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? kInt64Max : kInt64Min;
  return r;
}

// a - b, clamped to [INT64_MIN, INT64_MAX].
constexpr int64_t SaturatingSub(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_sub_overflow(a, b, &r)) return b < 0 ? kInt64Max : kInt64Min;
  return r;
}

// a * b, clamped to [INT64_MIN, INT64_MAX].
constexpr int64_t SaturatingMul(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) return (a < 0) != (b < 0) ? kInt64Min : kInt64Max;
  return r;
}

// Seconds to milliseconds, clamped.
constexpr int64_t SaturatingMulMs(int64_t seconds) { return SaturatingMul(seconds, 1000); }

// Unsigned a + b, clamped to UINT64_MAX (libuv's uv_now() clock is unsigned).
constexpr uint64_t SaturatingAddU(uint64_t a, uint64_t b) {
  uint64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return std::numeric_limits<uint64_t>::max();
  return r;
}

// Milliseconds from `now_ms` until `deadline_s` (both unix time), clamped to
// [0, max_ms]: 0 when the deadline has passed, never negative, never wrapped.
constexpr uint64_t MillisUntil(int64_t deadline_s, int64_t now_ms, uint64_t max_ms) {
  int64_t left = SaturatingSub(SaturatingMulMs(deadline_s), now_ms);
  if (left <= 0) return 0;
  return static_cast<uint64_t>(left) < max_ms ? static_cast<uint64_t>(left) : max_ms;
}

}  // namespace reactor
