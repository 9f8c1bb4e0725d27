// The scheduler's pure arithmetic: ISO times, the clock offset interval, timer delays,
// pre-wakes and early fires. Every clock reading is a parameter.
#include "sched/schedule_math.h"

#include <doctest/doctest.h>

using namespace reactor::sched;

namespace {
constexpr int64_t kSec = 1000000;
constexpr int64_t kMs = 1000;
}  // namespace

TEST_CASE("ParseIsoUtc reads the event JSON's times exactly") {
  CHECK(ParseIsoUtc("1970-01-01T00:00:00Z") == 0);
  CHECK(ParseIsoUtc("2026-11-21T06:30:00.012345Z") == 1795242600012345);
  CHECK(ParseIsoUtc("2026-11-21T06:30:00Z") == 1795242600000000);
  CHECK(ParseIsoUtc("2026-11-21T06:30:00.5Z") == 1795242600500000);
  CHECK(ParseIsoUtc("2026-11-21T06:30:00.012345678Z") == 1795242600012345);  // truncated
  CHECK(ParseIsoUtc("2026-11-21T06:30:00.012345+00:00") == 1795242600012345);
  CHECK(ParseIsoUtc("2026-11-21 06:30:00.012345+00") == 1795242600012345);
  CHECK(ParseIsoUtc("2024-02-29T23:59:59Z") == 1709251199000000);
  CHECK(ParseIsoUtc("1969-12-31T23:59:59.999999Z") == -1);
}

TEST_CASE("ParseIsoUtc refuses what it cannot read exactly") {
  for (const char* bad : {"", "2026-11-21", "2026-11-21T06:30:00", "2026-11-21T06:30:00+01:00",
                          "2026-11-21T06:30:00.Z", "2026-11-21T06:30:00.0123456789Z",
                          "2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-31T00:00:00Z",
                          "2026-11-21T24:00:00Z", "2026-11-21T06:60:00Z", "2026-11-21T06:30:60Z",
                          "2026-11-21T06:30:00Zjunk", "infinity", "2026-1-21T06:30:00Z",
                          "2026-11-21T06:30:00z", "+2026-11-21T06:30:00Z"}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseIsoUtc(bad).has_value());
  }
}

TEST_CASE("FormatIsoUtc is ParseIsoUtc's inverse") {
  CHECK(FormatIsoUtc(0) == "1970-01-01T00:00:00.000000Z");
  CHECK(FormatIsoUtc(1795242600012345) == "2026-11-21T06:30:00.012345Z");
  CHECK(FormatIsoUtc(-1) == "1969-12-31T23:59:59.999999Z");
  for (int64_t t : {int64_t{0}, int64_t{1709251199000000}, int64_t{951782400123456},
                    int64_t{-86400000001}, int64_t{4102444800000000}}) {
    CAPTURE(t);
    CHECK(ParseIsoUtc(FormatIsoUtc(t)) == t);
  }
}

TEST_CASE("ClockOffset brackets the offset between send and receive") {
  ClockOffset c(0);
  CHECK_FALSE(c.known());
  CHECK(c.offset() == 0);
  // Local 1000..1400 µs; the server read 5'001'100: offset in [4'999'700, 5'000'100].
  CHECK(c.AddSample(1000, 5001100, 1400));
  CHECK(c.known());
  CHECK(c.offset() == 4999900);
  CHECK(c.half_width() == 200);
  // A later, tighter reading narrows the interval to the intersection.
  CHECK(c.AddSample(2000, 5001950, 2100));  // [4'999'850, 4'999'950]
  CHECK(c.offset() == 4999900);
  CHECK(c.half_width() == 50);
  CHECK(c.ToServer(10000) == 5009900);
  CHECK(c.ToLocal(5009900) == 10000);
}

TEST_CASE("ClockOffset replaces what a contradicting reading disproves") {
  ClockOffset c(0);
  REQUIRE(c.AddSample(0, 1000, 100));   // offset in [900, 1000]
  CHECK_FALSE(c.AddSample(200, 2200, 300));  // [1900, 2000]: the server clock was stepped
  CHECK(c.offset() == 1950);
  CHECK(c.half_width() == 50);
}

TEST_CASE("ClockOffset widens by the drift bound between readings") {
  ClockOffset c(100);  // 100 ppm: 100 µs per second
  REQUIRE(c.AddSample(0, 1000, 0));  // exact: offset 1000
  CHECK(c.half_width() == 0);
  CHECK(c.DriftAt(10 * kSec) == 1000);
  CHECK(c.DriftAt(-5) == 0);
  // 10 s later the offset reads 1800: outside the old point, inside the widened one.
  CHECK(c.AddSample(10 * kSec, 10 * kSec + 1800, 10 * kSec));
  CHECK(c.offset() == 1800);
  // 1 s after that, 2000 µs more is beyond the 100 µs drift allows: a step.
  CHECK_FALSE(c.AddSample(11 * kSec, 11 * kSec + 3800, 11 * kSec));
  CHECK(c.offset() == 3800);
}

TEST_CASE("TimerDelayMs never fires before the target") {
  // Loop clock 10 ms (the local clock rounded down); targets in µs.
  CHECK(TimerDelayMs(10500, 10) == 1);
  CHECK(TimerDelayMs(11000, 10) == 1);
  CHECK(TimerDelayMs(11001, 10) == 2);
  CHECK(TimerDelayMs(10000, 10) == 0);
  CHECK(TimerDelayMs(9000, 10) == 0);
  CHECK(TimerDelayMs(-5, 10) == 0);
  CHECK(TimerDelayMs(3600 * kSec + 1, 0) == 3600001);
}

TEST_CASE("PlanTimer arms in server time") {
  ClockOffset c(0);
  REQUIRE(c.AddSample(100 * kMs, 7200 * kSec + 100 * kMs, 100 * kMs));  // server = local + 2 h
  const PlanParams p;
  SUBCASE("a future deadline") {
    TimerPlan t = PlanTimer(7200 * kSec + 350 * kMs, 100 * kMs, 100, c, p);
    CHECK(t.delay_ms == 250);
    CHECK_FALSE(t.prewake);
  }
  SUBCASE("the local clock a little ahead of the loop clock") {
    TimerPlan t = PlanTimer(7200 * kSec + 350 * kMs, 100 * kMs + 400, 100, c, p);
    CHECK(t.delay_ms == 250);  // the target is local 350'000 µs: loop ms 350
  }
  SUBCASE("a deadline that has passed, or is now") {
    CHECK(PlanTimer(7200 * kSec, 100 * kMs, 100, c, p).delay_ms == 0);
    CHECK(PlanTimer(7200 * kSec + 100 * kMs, 100 * kMs, 100, c, p).delay_ms == 0);
  }
  SUBCASE("nothing known about the clock: offset 0, no pre-wake") {
    ClockOffset unknown(100);
    TimerPlan t = PlanTimer(5 * kSec, 0, 0, unknown, p);
    CHECK(t.delay_ms == 5000);
    CHECK_FALSE(t.prewake);
  }
}

TEST_CASE("PlanTimer re-measures the clock before a distant deadline, once") {
  ClockOffset c(100);  // 100 ppm
  REQUIRE(c.AddSample(0, 0, 0));
  PlanParams p;
  p.precision_us = 5 * kMs;
  p.prewake_lead_us = 100 * kMs;
  SUBCASE("an hour ahead: drift may reach 360 ms; wake 460 ms early") {
    TimerPlan t = PlanTimer(3600 * kSec, 0, 0, c, p);
    CHECK(t.prewake);
    CHECK(t.delay_ms == 3600000 - 360 - 100);
    // Without pre-wakes (after one), the deadline itself.
    TimerPlan again = PlanTimer(3600 * kSec, 0, 0, c, p, false);
    CHECK_FALSE(again.prewake);
    CHECK(again.delay_ms == 3600000);
  }
  SUBCASE("40 s ahead: drift stays under 5 ms; no pre-wake") {
    TimerPlan t = PlanTimer(40 * kSec, 0, 0, c, p);
    CHECK_FALSE(t.prewake);
    CHECK(t.delay_ms == 40000);
  }
  SUBCASE("a fresh reading just before the deadline: no pre-wake") {
    REQUIRE(c.AddSample(3599 * kSec, 3599 * kSec, 3599 * kSec));
    TimerPlan t = PlanTimer(3600 * kSec, 3599 * kSec, 3599000, c, p);
    CHECK_FALSE(t.prewake);
    CHECK(t.delay_ms == 1000);
  }
  SUBCASE("a wide reading (slow link) alone never asks for a pre-wake") {
    ClockOffset wide(0);
    REQUIRE(wide.AddSample(0, 50 * kMs, 100 * kMs));  // ±50 ms
    TimerPlan t = PlanTimer(10 * kSec, 100 * kMs, 100, wide, p);
    CHECK_FALSE(t.prewake);
  }
}

TEST_CASE("OnTimerFire: early fires wait for the rest, late ones tick") {
  FireAction early = OnTimerFire(1000 * kMs, 997 * kMs);
  CHECK_FALSE(early.tick);
  CHECK(early.remaining_us == 3 * kMs);
  FireAction on_time = OnTimerFire(1000 * kMs, 1000 * kMs);
  CHECK(on_time.tick);
  CHECK(on_time.lateness_us == 0);
  FireAction late = OnTimerFire(1000 * kMs, 1250 * kMs);
  CHECK(late.tick);
  CHECK(late.lateness_us == 250 * kMs);
}

TEST_CASE("IsEarlier: nothing armed, or strictly earlier") {
  CHECK(IsEarlier(std::nullopt, 5));
  CHECK(IsEarlier(10, 5));
  CHECK_FALSE(IsEarlier(5, 5));
  CHECK_FALSE(IsEarlier(5, 10));
}

TEST_CASE("PlanTimer: with warm_lead_us a deadline far enough away gets a pre-wake that long before it") {
  ClockOffset clock(100);
  REQUIRE(clock.AddSample(1000 * kMs, 1000 * kMs + 500, 1000 * kMs + 1000));
  PlanParams p;
  p.warm_lead_us = 20 * kMs;
  const LocalMicros now = 1000 * kMs + 1000;
  TimerPlan far = PlanTimer(clock.ToServer(now) + 200 * kMs, now, 1000, clock, p);
  CHECK(far.prewake);
  CHECK(far.delay_ms >= 179);
  CHECK(far.delay_ms <= 181);
  TimerPlan near = PlanTimer(clock.ToServer(now) + 30 * kMs, now, 1000, clock, p);
  CHECK_FALSE(near.prewake);  // within twice the lead: straight to the deadline
  TimerPlan again = PlanTimer(clock.ToServer(now) + 200 * kMs, now, 1000, clock, p, false);
  CHECK_FALSE(again.prewake);  // after the pre-wake's reading
  p.warm_lead_us = 0;
  CHECK_FALSE(PlanTimer(clock.ToServer(now) + 200 * kMs, now, 1000, clock, p).prewake);
}
