// Loop tests of the Ticker against a fake server whose clock runs two hours ahead of
// this process's: reactor.tick() answers from a list of deadlines, with a simulated round
// trip. Real libuv timers and real time; each test closes every handle and ends with
// uv_loop_close() == 0.
#include "sched/ticker.h"

#include <doctest/doctest.h>
#include <uv.h>

#include <algorithm>
#include <deque>
#include <string>
#include <vector>

using namespace reactor;
using namespace reactor::sched;

namespace {

constexpr int64_t kMs = 1000;
constexpr int64_t kServerAhead = 7200LL * 1000000;  // the fake server's clock: local + 2 h

struct Announced {
  int64_t deadline;
  int64_t at;  // server time of the tick that acted on it
};

// Answers the ticker's requests in order after `latency_ms`, like one connection.
class FakeServer : public pg::SchedulerStore {
 public:
  explicit FakeServer(uv_loop_t* loop) : loop_(loop) {
    uv_timer_init(loop_, &timer_);
    timer_.data = this;
  }
  static int64_t Now() { return static_cast<int64_t>(uv_hrtime() / 1000) + kServerAhead; }

  Status Tick(pg::Reply<pg::TickAnswer> cb) override { return Push(Pending{true, std::move(cb), {}}); }
  Status Clock(pg::Reply<int64_t> cb) override { return Push(Pending{false, {}, std::move(cb)}); }
  Status WarmUp(pg::Reply<pg::Done> cb) override {
    ++warm_ups;
    cb(pg::Done{});
    return Status::Ok();
  }
  int warm_ups = 0;
  void Close() { uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr); }

  std::vector<int64_t> deadlines;  // server times tick() will act on
  std::vector<Announced> announced;
  int tick_queries = 0;
  int clock_queries = 0;
  int fail_ticks = 0;  // answer this many ticks with an error
  size_t slice = 0;    // > 0: act on at most this many due deadlines per tick, like tick()'s budget
  uint64_t latency_ms = 1;
  bool accepting = true;

 private:
  struct Pending {
    bool tick;
    pg::Reply<pg::TickAnswer> tick_cb;
    pg::Reply<int64_t> clock_cb;
  };
  Status Push(Pending p) {
    if (!accepting) return Status::Error("not connected");
    queue_.push_back(std::move(p));
    if (queue_.size() == 1) uv_timer_start(&timer_, TimerCb, latency_ms, 0);
    return Status::Ok();
  }
  static void TimerCb(uv_timer_t* t) { static_cast<FakeServer*>(t->data)->AnswerOne(); }

  void AnswerOne() {
    Pending q = std::move(queue_.front());
    queue_.pop_front();
    if (!queue_.empty()) uv_timer_start(&timer_, TimerCb, latency_ms, 0);
    const int64_t now = Now();
    if (q.tick) {
      ++tick_queries;
      if (fail_ticks > 0) {
        --fail_ticks;
        q.tick_cb(Status::Error("ERROR: could not serialize access"));
        return;
      }
      std::optional<int64_t> next;
      std::vector<int64_t> rest;
      std::sort(deadlines.begin(), deadlines.end());
      size_t acted = 0;
      for (int64_t d : deadlines) {
        if (d <= now && slice > 0 && acted == slice) {
          // Out of budget: the earliest deadline left, which is in the past.
          rest.push_back(d);
          if (!next || d < *next) next = d;
        } else if (d <= now) {
          announced.push_back({d, now});
          ++acted;
        } else {
          rest.push_back(d);
          if (!next || d < *next) next = d;
        }
      }
      deadlines.swap(rest);
      q.tick_cb(pg::TickAnswer{next, now});
    } else {
      ++clock_queries;
      q.clock_cb(now);
    }
  }

  uv_loop_t* loop_;
  uv_timer_t timer_;
  std::deque<Pending> queue_;
};

// Runs the loop until `pred` holds or `timeout_ms` passes.
template <class Pred>
bool RunUntil(uv_loop_t* loop, Pred pred, uint64_t timeout_ms) {
  uv_timer_t guard;  // keeps uv_run(ONCE) from blocking past the timeout
  uv_timer_init(loop, &guard);
  uv_timer_start(&guard, [](uv_timer_t*) {}, 2, 2);
  const uint64_t end = uv_hrtime() + timeout_ms * 1000000;
  while (!pred() && uv_hrtime() < end) uv_run(loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&guard), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);
  return pred();
}

void RunFor(uv_loop_t* loop, uint64_t ms) {
  RunUntil(loop, [] { return false; }, ms);
}

Event EventWithDeadline(int64_t server_time, const char* kind = "status") {
  Event ev;
  ev.id = 1;
  ev.kind = kind;
  ev.source = "scheduled_jobs";
  ev.job_id = "j";
  ev.deadline = FormatIsoUtc(server_time);
  return ev;
}

Event ConfigDoorbell() {
  Event ev;
  ev.kind = "config";
  ev.source = "scheduler_config";
  return ev;
}

struct Fixture {
  uv_loop_t loop;
  FakeServer* server = nullptr;
  Ticker* ticker = nullptr;

  explicit Fixture(TickerConfig config = {}) {
    uv_loop_init(&loop);
    server = new FakeServer(&loop);
    ticker = new Ticker(&loop, config, *server);
  }
  void Activate() {
    ticker->SetConnected(true);
    ticker->SetLeader(true);
  }
  // Everything closed, nothing leaked.
  void Finish() {
    bool closed = false;
    ticker->Close([&closed] { closed = true; });
    server->Close();
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(closed);
    delete ticker;
    delete server;
    CHECK(uv_loop_close(&loop) == 0);
  }
};

// Each announcement came at or after its deadline and within `slack_ms`.
void CheckPunctual(const std::vector<Announced>& a, int64_t slack_ms) {
  for (const auto& x : a) {
    CAPTURE(x.deadline);
    CHECK(x.at >= x.deadline);
    CHECK(x.at - x.deadline <= slack_ms * kMs);
  }
}

}  // namespace

TEST_CASE("Ticker: ticks at once, then exactly at each deadline in server time") {
  Fixture f;
  const int64_t t0 = FakeServer::Now();
  f.server->deadlines = {t0 + 60 * kMs, t0 + 120 * kMs, t0 + 180 * kMs};
  f.Activate();
  CHECK(f.ticker->active());
  REQUIRE(RunUntil(&f.loop, [&] { return f.server->announced.size() == 3; }, 2000));
  RunFor(&f.loop, 30);
  // One catch-up tick on activation plus one per deadline: no early tick, no poll.
  CHECK(f.server->tick_queries == 4);
  CHECK(f.server->clock_queries == 3);
  CheckPunctual(f.server->announced, 40);
  CHECK_FALSE(f.ticker->armed_deadline().has_value());  // nothing due: no timer
  SchedulerMetrics m;
  f.ticker->FillMetrics(m);
  CHECK(m.ticks == 4);
  CHECK(m.lateness_count == 3);
  CHECK(m.armed_deadline_unix == 0);
  CHECK(m.clock_uncertainty_ms < 5);
  f.Finish();
}

TEST_CASE("Ticker: an earlier deadline from an event re-arms without a query") {
  Fixture f;
  f.Activate();
  REQUIRE(RunUntil(&f.loop, [&] { return f.server->tick_queries == 1 && !f.ticker->tick_in_flight(); }, 1000));
  CHECK_FALSE(f.ticker->armed_deadline().has_value());

  const int64_t t0 = FakeServer::Now();
  const int64_t late = t0 + 400 * kMs, early = t0 + 80 * kMs;
  f.server->deadlines = {late, early};
  f.ticker->OnEvent(EventWithDeadline(late));
  CHECK(f.ticker->armed_deadline() == late);
  f.ticker->OnEvent(EventWithDeadline(early));
  CHECK(f.ticker->armed_deadline() == early);
  f.ticker->OnEvent(EventWithDeadline(late));  // later than armed: ignored
  CHECK(f.ticker->armed_deadline() == early);
  CHECK(f.server->tick_queries == 1);

  REQUIRE(RunUntil(&f.loop, [&] { return f.server->announced.size() == 2; }, 2000));
  CHECK(f.server->tick_queries == 3);
  CheckPunctual(f.server->announced, 40);
  SchedulerMetrics m;
  f.ticker->FillMetrics(m);
  CHECK(m.rearms_from_events == 2);
  f.Finish();
}

TEST_CASE("Ticker: due events are not deadlines; config doorbells share one tick") {
  Fixture f;
  f.Activate();
  REQUIRE(RunUntil(&f.loop, [&] { return f.server->tick_queries == 1 && !f.ticker->tick_in_flight(); }, 1000));

  f.ticker->OnEvent(EventWithDeadline(FakeServer::Now() - 5 * kMs, "due"));
  CHECK_FALSE(f.ticker->armed_deadline().has_value());
  RunFor(&f.loop, 20);
  CHECK(f.server->tick_queries == 1);

  for (int i = 0; i < 5; ++i) f.ticker->OnEvent(ConfigDoorbell());
  RunFor(&f.loop, 40);
  CHECK(f.server->tick_queries == 2);

  // A past deadline (a job inserted already due) ticks once too, however many arrive.
  for (int i = 0; i < 5; ++i) f.ticker->OnEvent(EventWithDeadline(FakeServer::Now() - 1 * kMs));
  RunFor(&f.loop, 40);
  CHECK(f.server->tick_queries == 3);

  SchedulerMetrics m;
  f.ticker->FillMetrics(m);
  CHECK(m.due_events == 1);
  CHECK(m.config_doorbells == 5);
  f.Finish();
}

TEST_CASE("Ticker: deadlines learned while a tick is in flight are folded into its answer") {
  Fixture f;
  f.server->latency_ms = 30;
  f.Activate();
  REQUIRE(f.ticker->tick_in_flight());
  const int64_t soon = FakeServer::Now() + 120 * kMs;
  f.server->deadlines = {soon};  // committed after the tick's snapshot, as it were
  f.ticker->OnEvent(EventWithDeadline(soon));
  CHECK_FALSE(f.ticker->armed_deadline().has_value());
  REQUIRE(RunUntil(&f.loop, [&] { return f.server->announced.size() == 1; }, 2000));
  CheckPunctual(f.server->announced, 70);
  f.Finish();
}

TEST_CASE("Ticker: nothing without leadership or connection; a late answer is ignored") {
  Fixture f;
  f.ticker->SetConnected(true);
  f.server->deadlines = {FakeServer::Now() + 20 * kMs};
  f.ticker->OnEvent(EventWithDeadline(FakeServer::Now() + 20 * kMs));
  RunFor(&f.loop, 60);
  CHECK(f.server->tick_queries == 0);
  CHECK(f.server->clock_queries == 0);
  CHECK_FALSE(f.ticker->armed_deadline().has_value());

  f.server->latency_ms = 30;
  f.ticker->SetLeader(true);
  REQUIRE(f.ticker->tick_in_flight());
  f.ticker->SetLeader(false);  // lost before the answer
  CHECK_FALSE(f.ticker->tick_in_flight());
  RunFor(&f.loop, 200);
  CHECK(f.server->announced.size() == 1);  // the catch-up tick ran in the server...
  CHECK_FALSE(f.ticker->armed_deadline().has_value());  // ...but its answer arms nothing

  // The connection refuses statements: the ticker waits for the next SetConnected(true).
  f.server->accepting = false;
  f.ticker->SetLeader(true);
  CHECK_FALSE(f.ticker->tick_in_flight());
  f.ticker->SetConnected(false);
  CHECK_FALSE(f.ticker->active());
  CHECK_FALSE(f.ticker->armed_deadline().has_value());
  f.Finish();
}

TEST_CASE("Ticker: a failed tick is retried after a backoff that an event cannot cancel") {
  TickerConfig config;
  config.retry_min_ms = 60;
  Fixture f(config);
  f.server->fail_ticks = 1;
  f.Activate();
  REQUIRE(RunUntil(&f.loop, [&] { return f.server->tick_queries == 1 && !f.ticker->tick_in_flight(); }, 1000));
  REQUIRE(f.ticker->armed_deadline().has_value());
  // A deadline far away must not replace the retry; nor may a past one pull it forward.
  f.ticker->OnEvent(EventWithDeadline(FakeServer::Now() + 3600LL * 1000000));
  f.ticker->OnEvent(EventWithDeadline(FakeServer::Now() - kMs));
  RunFor(&f.loop, 20);
  CHECK(f.server->tick_queries == 1);
  REQUIRE(RunUntil(&f.loop, [&] { return f.server->tick_queries == 2; }, 1000));
  RunFor(&f.loop, 10);
  SchedulerMetrics m;
  f.ticker->FillMetrics(m);
  CHECK(m.tick_errors == 1);
  CHECK(m.ticks == 1);
  f.Finish();
}

TEST_CASE("Ticker: a distant deadline gets one clock check shortly before it") {
  TickerConfig config;
  config.max_drift_ppm = 100000;  // 10 %: a 300 ms wait may drift 30 ms
  config.plan.precision_us = 5 * kMs;
  config.plan.prewake_lead_us = 20 * kMs;
  config.clock_samples_on_start = 1;
  Fixture f(config);
  const int64_t deadline = FakeServer::Now() + 300 * kMs;
  f.server->deadlines = {deadline};
  f.Activate();
  REQUIRE(RunUntil(&f.loop, [&] { return f.server->announced.size() == 1; }, 2000));
  CheckPunctual(f.server->announced, 40);
  SchedulerMetrics m;
  f.ticker->FillMetrics(m);
  CHECK(m.prewakes == 1);
  CHECK(f.server->clock_queries == 2);  // one on activation, one before the deadline
  CHECK(f.server->tick_queries == 2);
  f.Finish();
}

TEST_CASE("Ticker: an unreadable deadline is ignored") {
  Fixture f;
  f.Activate();
  REQUIRE(RunUntil(&f.loop, [&] { return f.server->tick_queries == 1 && !f.ticker->tick_in_flight(); }, 1000));
  Event ev = EventWithDeadline(0);
  ev.deadline = "tomorrow";
  f.ticker->OnEvent(ev);
  CHECK_FALSE(f.ticker->armed_deadline().has_value());
  f.Finish();
}

TEST_CASE("Ticker: an answer in the past (tick() out of its budget) ticks again at once") {
  Fixture f;
  f.Activate();
  REQUIRE(RunUntil(&f.loop, [&] { return f.server->tick_queries == 1 && !f.ticker->tick_in_flight(); }, 1000));
  const int64_t t0 = FakeServer::Now();
  // A backlog of 10 already due, 3 per tick; then one ahead.
  for (int i = 0; i < 10; ++i) f.server->deadlines.push_back(t0 - (100 - i) * kMs);
  f.server->deadlines.push_back(t0 + 300 * kMs);
  f.server->slice = 3;
  f.ticker->OnEvent(ConfigDoorbell());
  REQUIRE(RunUntil(&f.loop, [&] { return f.server->announced.size() == 10; }, 1000));
  const int64_t backlog_done = FakeServer::Now();
  // 4 slices (3 + 3 + 3 + 1), back to back: nothing waits for a timer in between.
  CHECK(f.server->tick_queries == 1 + 4);
  CHECK(backlog_done - t0 < 100 * kMs);
  REQUIRE(f.ticker->armed_deadline().has_value());
  CHECK(*f.ticker->armed_deadline() == t0 + 300 * kMs);
  SchedulerMetrics m;
  f.ticker->FillMetrics(m);
  CHECK(m.ticks_more_due == 3);
  CHECK(m.lateness_count == 0);  // a past answer is not a deadline that was waited for
  CHECK(m.early_fires == 0);
  REQUIRE(RunUntil(&f.loop, [&] { return f.server->announced.size() == 11; }, 2000));
  CheckPunctual({f.server->announced.back()}, 40);
  CHECK(f.server->tick_queries == 1 + 4 + 1);
  f.Finish();
}

TEST_CASE("Ticker: becoming active warms the session up before its first tick, once per activation") {
  Fixture f;
  f.Activate();
  CHECK(f.server->warm_ups == 0);  // not before the clock readings (it would widen them)
  CHECK(RunUntil(&f.loop, [&] { return f.server->warm_ups == 1; }, 2000));
  CHECK(f.server->clock_queries >= 3);
  RunFor(&f.loop, 20);
  CHECK(f.server->warm_ups == 1);
  f.ticker->SetLeader(false);
  f.ticker->SetLeader(true);
  CHECK(RunUntil(&f.loop, [&] { return f.server->warm_ups == 2; }, 2000));
  f.Finish();
}
