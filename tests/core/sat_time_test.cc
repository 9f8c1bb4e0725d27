#include <doctest/doctest.h>

#include "core/sat_time.h"

using namespace reactor;

TEST_CASE("saturating add, sub and mul clamp at the int64 limits") {
  CHECK(SaturatingAdd(1, 2) == 3);
  CHECK(SaturatingAdd(kInt64Max, 1) == kInt64Max);
  CHECK(SaturatingAdd(kInt64Min, -1) == kInt64Min);
  CHECK(SaturatingAdd(kInt64Max, kInt64Min) == -1);
  CHECK(SaturatingSub(5, 7) == -2);
  CHECK(SaturatingSub(kInt64Min, 1) == kInt64Min);
  CHECK(SaturatingSub(kInt64Max, -1) == kInt64Max);
  CHECK(SaturatingSub(0, kInt64Min) == kInt64Max);
  CHECK(SaturatingMul(-3, 4) == -12);
  CHECK(SaturatingMul(kInt64Max, 2) == kInt64Max);
  CHECK(SaturatingMul(kInt64Max, -2) == kInt64Min);
  CHECK(SaturatingMul(kInt64Min, -1) == kInt64Max);
  CHECK(SaturatingMul(kInt64Min, 2) == kInt64Min);
  CHECK(SaturatingAddU(UINT64_MAX - 1, 5) == UINT64_MAX);
  CHECK(SaturatingAddU(1, 5) == 6);
}

TEST_CASE("seconds to milliseconds: the exp that used to wrap") {
  // 18446744073709552 * 1000 is just over 2^64: the old `exp * 1000` wrapped to a
  // small or negative number, which armed a 0 ms timer forever.
  CHECK(SaturatingMulMs(18446744073709552) == kInt64Max);
  CHECK(SaturatingMulMs(9223372036854775) == 9223372036854775000);
  CHECK(SaturatingMulMs(9223372036854776) == kInt64Max);
  CHECK(SaturatingMulMs(-9223372036854776) == kInt64Min);
  CHECK(SaturatingMulMs(1700000000) == 1700000000000);
}

TEST_CASE("MillisUntil is never negative, never wrapped, at most the cap") {
  const int64_t now_ms = 1700000000500;
  CHECK(MillisUntil(1700000001, now_ms, UINT64_MAX) == 500);
  CHECK(MillisUntil(1700000000, now_ms, UINT64_MAX) == 0);  // passed half a second ago
  CHECK(MillisUntil(0, now_ms, UINT64_MAX) == 0);
  CHECK(MillisUntil(kInt64Min, now_ms, UINT64_MAX) == 0);
  CHECK(MillisUntil(18446744073709552, now_ms, UINT64_MAX) == static_cast<uint64_t>(kInt64Max - now_ms));
  CHECK(MillisUntil(kInt64Max, now_ms, 86400000) == 86400000);
  CHECK(MillisUntil(1700000010, now_ms, 1000) == 1000);
  static_assert(MillisUntil(10, 0, UINT64_MAX) == 10000);
}
