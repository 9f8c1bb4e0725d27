// Conflation (docs/protocol.md "Conflation"): the pure queue, then through the hub with a
// connection whose queue does not drain until the test says so.
#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/event.h"
#include "hub/conflation.h"
#include "hub/hub.h"

using namespace reactor;
using namespace reactor::hub;

namespace {

PublishedRef P(uint64_t seq, const std::string& job) {
  auto p = std::make_shared<Published>();
  p->seq = seq;
  p->event.id = static_cast<int64_t>(seq);
  p->event.job_id = job;
  p->frame = "frame" + std::to_string(seq);
  return p;
}

std::vector<uint64_t> DrainSeqs(ConflationQueue& q) {
  std::vector<uint64_t> out;
  while (!q.empty()) {
    out.push_back(q.front()->seq);
    q.pop_front();
  }
  return out;
}

Event Ev(int64_t id, const std::string& job, const std::string& status) {
  std::string json = "{\"id\":" + std::to_string(id) + ",\"kind\":\"status\",\"job_id\":\"" + job +
                     "\",\"source\":\"scheduled_jobs\",\"status\":\"" + status +
                     "\",\"user_id\":\"u1\",\"job_type\":\"t\"}";
  EventParser p;
  auto e = p.Parse(json);
  REQUIRE(e);
  return *e;
}

// Messages queued to `s` (consumed): event ids as "e<id>", others as their text.
std::vector<std::string> Drain(Session& s, size_t max_frames = 1 << 20) {
  std::vector<std::string> out;
  size_t total = 0;
  for (const auto& c : s.out().Gather(max_frames)) {
    std::string_view f = c.view();
    total += f.size();
    size_t len = static_cast<uint8_t>(f[1]) & 0x7f, off = 2;
    if (len == 126) off = 4;
    std::string text(f.substr(off));
    if (text.rfind("{\"type\":\"event\"", 0) == 0) {
      size_t at = text.find("\"id\":");
      out.push_back("e" + std::to_string(std::stoll(text.substr(at + 5))));
    } else {
      out.push_back(text);
    }
  }
  s.out().Consume(total);
  return out;
}

struct Fixture {
  std::vector<std::pair<uint64_t, uint16_t>> closes;
  std::unique_ptr<Hub> hub;
  explicit Fixture(Hub::Config c) {
    Hub::Hooks h;
    h.wake = [](Session&) {};
    h.close = [this](Session& s, uint16_t code, const std::string&) { closes.emplace_back(s.id(), code); };
    hub = std::make_unique<Hub>(std::move(c), std::move(h));
  }
};

}  // namespace

TEST_CASE("conflation queue: one event per job, the newest, in stream order") {
  ConflationQueue q;
  CHECK_FALSE(q.Put(P(1, "a")));
  CHECK_FALSE(q.Put(P(2, "b")));
  CHECK(q.Put(P(3, "a")));   // replaces 1
  CHECK_FALSE(q.Put(P(4, "")));  // no job: never replaced
  CHECK_FALSE(q.Put(P(5, "")));
  CHECK(q.Put(P(6, "b")));   // replaces 2
  CHECK(q.size() == 4);
  CHECK(q.dropped() == 2);
  CHECK(q.TakeDropped() == 2);
  CHECK(q.dropped() == 0);
  CHECK(DrainSeqs(q) == std::vector<uint64_t>{3, 4, 5, 6});
  // Take pulls a job's waiting event out (another path sends it first).
  q.Put(P(7, "a"));
  q.Put(P(8, "c"));
  CHECK(q.Take("a")->seq == 7);
  CHECK(q.Take("a") == nullptr);
  CHECK(q.Take("") == nullptr);
  CHECK_FALSE(q.Put(P(9, "a")));  // a's entry was taken: nothing replaced
  CHECK(DrainSeqs(q) == std::vector<uint64_t>{8, 9});
}

TEST_CASE("conflation: a conflating connection that falls behind ends at every job's last event") {
  Hub::Config c;
  c.max_queue_bytes = 4096;
  Fixture f(c);
  auto slow = f.hub->Open(Principal::Open(), true);
  auto fast = f.hub->Open(Principal::Open(), true);
  f.hub->OnText(*slow, R"({"op":"subscribe","id":"s1","conflate":true})");
  f.hub->OnText(*fast, R"({"op":"subscribe","id":"f"})");
  Drain(*slow);
  Drain(*fast);
  // 10 jobs, 40 events each, round robin: far more than 4 KiB.
  std::map<std::string, int64_t> last;
  std::vector<std::string> got;
  int64_t id = 0;
  for (int round = 0; round < 40; ++round) {
    for (int j = 0; j < 10; ++j) {
      std::string job = "j" + std::to_string(j);
      f.hub->Publish(Ev(++id, job, "s" + std::to_string(round)));
      last[job] = id;
    }
    Drain(*fast);
    // The slow one reads two frames now and then; the hub refills on Pump.
    if (round % 5 == 0) {
      auto part = Drain(*slow, 2);
      got.insert(got.end(), part.begin(), part.end());
      f.hub->Pump();
    }
  }
  CHECK(f.closes.empty());  // not closed: conflated
  CHECK(slow->conflated_waiting() > 0);
  CHECK(slow->conflated_waiting() <= 10);  // bounded by the jobs
  CHECK(f.hub->stats().conflated > 0);
  // Now it reads everything.
  for (int i = 0; i < 100 && (slow->conflated_waiting() > 0 || !slow->out().empty()); ++i) {
    auto part = Drain(*slow);
    got.insert(got.end(), part.begin(), part.end());
    f.hub->Pump();
  }
  CHECK(f.hub->conflating_sessions() == 0);
  // Event ids arrive in stream order (so per job too), every job's last one among them,
  // and the markers add up to what was left out.
  int64_t prev = 0;
  uint64_t events = 0, dropped = 0;
  std::map<std::string, int64_t> final_seen;
  for (const auto& m : got) {
    if (m[0] == 'e') {
      int64_t e = std::stoll(m.substr(1));
      CHECK(e > prev);
      prev = e;
      ++events;
      final_seen["j" + std::to_string((e - 1) % 10)] = e;
    } else {
      REQUIRE(m.rfind(R"({"type":"conflated","dropped":)", 0) == 0);
      dropped += std::stoull(m.substr(30));
    }
  }
  CHECK(final_seen == last);
  CHECK(events + dropped == 400);
  CHECK(dropped == f.hub->stats().conflated);
  f.hub->Remove(slow.get());
  f.hub->Remove(fast.get());
}

TEST_CASE("conflation: without the flag, or with a non-conflating subscription matching, 1013 as before") {
  Hub::Config c;
  c.max_queue_bytes = 2048;
  Fixture f(c);
  auto plain = f.hub->Open(Principal::Open(), true);
  auto mixed = f.hub->Open(Principal::Open(), true);
  f.hub->OnText(*plain, R"({"op":"subscribe","id":"p"})");
  f.hub->OnText(*mixed, R"({"op":"subscribe","id":"c","conflate":true})");
  f.hub->OnText(*mixed, R"({"op":"subscribe","id":"n","filter":{"job_id":"j7"}})");
  Drain(*plain);
  Drain(*mixed);
  int64_t id = 0;
  for (int i = 0; i < 100; ++i) f.hub->Publish(Ev(++id, "j" + std::to_string(i % 5), "running"));
  REQUIRE(f.closes.size() == 1);
  CHECK(f.closes[0] == std::make_pair(plain->id(), uint16_t{1013}));
  // `mixed` conflates the jobs only its conflating subscription matches...
  CHECK(mixed->conflated_waiting() == 5);
  // ...but an event its plain subscription wants cannot be conflated: it needs room.
  f.hub->Publish(Ev(++id, "j7", "running"));
  REQUIRE(f.closes.size() == 2);
  CHECK(f.closes[1] == std::make_pair(mixed->id(), uint16_t{1013}));
  CHECK(f.hub->stats().slow_closes == 2);
  f.hub->Remove(plain.get());
  f.hub->Remove(mixed.get());
}

TEST_CASE("conflation: a non-conflatable event takes its job's waiting event along first") {
  Hub::Config c;
  c.max_queue_bytes = 2048;
  Fixture f(c);
  auto s = f.hub->Open(Principal::Open(), true);
  f.hub->OnText(*s, R"({"op":"subscribe","id":"c","conflate":true})");
  f.hub->OnText(*s, R"({"op":"subscribe","id":"n","filter":{"job_id":"j1","status":["completed"]}})");
  Drain(*s);
  int64_t id = 0;
  while (s->conflated_waiting() == 0) {
    ++id;
    f.hub->Publish(Ev(id, "j" + std::to_string(id % 3), "running"));
  }
  f.hub->Publish(Ev(++id, "j1", "running"));   // conflatable: waits
  f.hub->Publish(Ev(++id, "j1", "running"));   // replaces it
  const int64_t waiting_j1 = id;
  Drain(*s);  // room again, but no Pump yet
  f.hub->Publish(Ev(++id, "j1", "completed"));  // the plain subscription matches it
  auto got = Drain(*s);
  // j1's waiting event, then this one (a marker before them: events were replaced).
  REQUIRE(got.size() >= 2);
  CHECK(got[got.size() - 2] == "e" + std::to_string(waiting_j1));
  CHECK(got.back() == "e" + std::to_string(id));
  CHECK(got.front().rfind(R"({"type":"conflated")", 0) == 0);
  CHECK(f.closes.empty());
  f.hub->Remove(s.get());
}

TEST_CASE("conflation: --max-conflated-jobs bounds what waits; over it, 1013") {
  Hub::Config c;
  c.max_queue_bytes = 2048;
  c.max_conflated_jobs = 8;
  Fixture f(c);
  auto s = f.hub->Open(Principal::Open(), true);
  f.hub->OnText(*s, R"({"op":"subscribe","id":"c","conflate":true})");
  Drain(*s);
  int64_t id = 0;
  while (f.closes.empty() && id < 1000) {
    ++id;
    f.hub->Publish(Ev(id, "j" + std::to_string(id), "running"));
  }
  REQUIRE(f.closes.size() == 1);
  CHECK(f.closes[0].second == 1013);
  CHECK(f.hub->stats().conflation_overflow == 1);
  f.hub->Pump();
  CHECK(f.hub->conflating_sessions() == 0);
  f.hub->Remove(s.get());
}

TEST_CASE("conflation: the flag is parsed in subscribe and in the query shortcut") {
  auto m = ParseClientMessage(R"({"op":"subscribe","id":"x","conflate":true})");
  REQUIRE(m);
  CHECK(m->conflate);
  CHECK_FALSE(ParseClientMessage(R"({"op":"subscribe","id":"x","conflate":1})"));
  auto d = ParseShortcut({{"job_id", "j"}, {"conflate", "true"}});
  REQUIRE(d);
  REQUIRE(*d);
  CHECK((*d)->conflate);
  CHECK_FALSE(ParseClientMessage(R"({"op":"subscribe","id":"x"})")->conflate);
}

TEST_CASE("out queue: a ring that wraps, keeps order and stamps, and frees a burst's room") {
  OutQueue q;
  auto f = [](int i) { return std::make_shared<const std::string>(std::string(static_cast<size_t>(i % 7 + 1), 'a' + i % 26)); };
  std::vector<uint64_t> done;
  int pushed = 0, popped = 0;
  for (int round = 0; round < 50; ++round) {
    for (int k = 0; k < round % 9 + 1; ++k, ++pushed) q.Push(f(pushed), OutQueue::Stamp{static_cast<uint64_t>(pushed + 1), 0});
    // Consume about half of what is queued, sometimes mid-frame.
    auto chunks = q.Gather(1000);
    size_t n = 0;
    for (size_t i = 0; i < chunks.size() / 2; ++i) n += chunks[i].size;
    if (round % 3 == 0 && !chunks.empty()) n += chunks[chunks.size() / 2].size / 2;
    q.Consume(n, [&](const OutQueue::Stamp& st) { done.push_back(st.received_ns); });
    size_t bytes = 0;
    chunks = q.Gather(1000);
    for (size_t i = 0; i < chunks.size(); ++i) {
      bytes += chunks[i].size;
      if (i > 0) CHECK(*chunks[i].frame == *f(pushed - static_cast<int>(chunks.size()) + static_cast<int>(i)));
    }
    CHECK(bytes == q.bytes());
  }
  q.Consume(q.bytes(), [&](const OutQueue::Stamp& st) { done.push_back(st.received_ns); });
  CHECK(q.empty());
  for (uint64_t st : done) CHECK(st == static_cast<uint64_t>(++popped));
  CHECK(popped == pushed);
}

TEST_CASE("conflation: BacklogReady says when a drained queue leaves room for waiting events") {
  Hub::Config c;
  c.max_queue_bytes = 2048;
  Fixture f(c);
  auto s = f.hub->Open(Principal::Open(), true);
  f.hub->OnText(*s, R"({"op":"subscribe","id":"c","conflate":true})");
  Drain(*s);
  int64_t id = 0;
  while (s->conflated_waiting() < 3) {
    ++id;
    f.hub->Publish(Ev(id, "j" + std::to_string(id % 5), "running"));
  }
  CHECK_FALSE(f.hub->BacklogReady());  // the queue is full: nothing to do until a write completes
  Drain(*s);                           // the writes of this pass emptied it
  CHECK(f.hub->BacklogReady());        // so the loop must not sleep
  f.hub->Pump();
  CHECK_FALSE(f.hub->BacklogReady());
  CHECK(s->conflated_waiting() == 0);
  f.hub->Remove(s.get());
}
