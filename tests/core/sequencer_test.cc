#include <doctest/doctest.h>

#include <map>
#include <random>
#include <set>

#include "core/sequencer.h"

using reactor::DeliverySequencer;
using reactor::Event;
using Mode = DeliverySequencer::CatchUpMode;
using Row = DeliverySequencer::Row;

namespace {

std::string Payload(int64_t id, const std::string& job, bool truncated = false) {
  std::string s = R"({"id":)" + std::to_string(id) + R"(,"kind":"status","job_id":")" + job +
                  R"(","source":"scheduled_jobs","status":"running")";
  if (truncated) s += R"(,"truncated":true)";
  return s + "}";
}

struct Harness {
  std::vector<Event> out;
  std::vector<int64_t> fetches;
  DeliverySequencer seq;
  explicit Harness(size_t prune = 16384)
      : seq([this](Event&& e) { out.push_back(std::move(e)); },
            [this](int64_t id) { fetches.push_back(id); }, prune) {}
  std::vector<int64_t> ids() const {
    std::vector<int64_t> v;
    for (const auto& e : out) v.push_back(e.id);
    return v;
  }
  void Start(uint64_t horizon = 100) {
    (void)seq.BeginCatchUp(seq.NextCatchUpMode());
    seq.OnCatchUpResult(horizon, {});
  }
};

}  // namespace

TEST_CASE("live notifications flow in order; a repeated id is dropped") {
  Harness h;
  h.Start();
  h.seq.OnNotification(Payload(1, "a"));
  h.seq.OnNotification(Payload(2, "b"));
  h.seq.OnNotification(Payload(2, "b"));
  CHECK(h.ids() == std::vector<int64_t>{1, 2});
  CHECK(h.seq.stats().duplicates_dropped == 1);
  CHECK(h.seq.last_delivered_id() == 2);
}

TEST_CASE("the first read marks the start of the stream without delivering history") {
  Harness h;
  CHECK(h.seq.NextCatchUpMode() == Mode::kInitial);
  auto p = h.seq.BeginCatchUp(Mode::kInitial);
  CHECK_FALSE(p.threshold.has_value());
  h.seq.OnNotification(Payload(5, "a"));  // committed before the snapshot: history
  h.seq.OnNotification(Payload(7, "b"));  // committed after it
  CHECK(h.out.empty());
  CHECK(h.seq.held_size() == 2);
  h.seq.OnCatchUpResult(50, {Row{5, 60, Payload(5, "a")}});
  CHECK(h.ids() == std::vector<int64_t>{7});
  CHECK(h.seq.NextCatchUpMode() == Mode::kReconnect);
  CHECK(h.seq.horizon() == 50u);
}

TEST_CASE("after a reconnect, missed rows come first, then held live events, no repeats") {
  Harness h;
  h.Start(100);
  h.seq.OnNotification(Payload(10, "a"));
  // connection lost; events 11 (job a) and 12 (job b) commit meanwhile.
  auto p = h.seq.BeginCatchUp(h.seq.NextCatchUpMode());
  CHECK(p.threshold == 100u);
  CHECK(p.seen_ids == std::vector<int64_t>{10});
  h.seq.OnNotification(Payload(12, "b"));  // arrives on the new LISTEN before the result
  h.seq.OnNotification(Payload(13, "a"));
  CHECK(h.ids() == std::vector<int64_t>{10});
  h.seq.OnCatchUpResult(105, {Row{10, 101, std::nullopt}, Row{11, 102, Payload(11, "a")},
                              Row{12, 103, Payload(12, "b")}});
  CHECK(h.ids() == std::vector<int64_t>{10, 11, 12, 13});
  CHECK(h.seq.stats().recovered == 2);
  // 12's notification may also come late; still not repeated.
  h.seq.OnNotification(Payload(11, "a"));
  CHECK(h.ids().size() == 4);
}

TEST_CASE("a recovered id survives one more read so its late notification is dropped") {
  Harness h;
  h.Start(100);
  (void)h.seq.BeginCatchUp(Mode::kReconnect);
  h.seq.OnCatchUpResult(200, {Row{20, 150, Payload(20, "a")}});  // txid below new horizon
  CHECK(h.ids() == std::vector<int64_t>{20});
  (void)h.seq.BeginCatchUp(Mode::kPrune);
  h.seq.OnCatchUpResult(200, {});
  h.seq.OnNotification(Payload(20, "a"));
  CHECK(h.ids() == std::vector<int64_t>{20});
  // Two reads later it is forgotten (it can no longer be returned by any read).
  (void)h.seq.BeginCatchUp(Mode::kPrune);
  h.seq.OnCatchUpResult(200, {});
  CHECK(h.seq.seen_size() == 0);
}

TEST_CASE("a prune read keeps ids a later read could return; delivers rows not yet notified") {
  Harness h(2);
  h.Start(100);
  for (int i = 1; i <= 3; ++i) h.seq.OnNotification(Payload(i, "j" + std::to_string(i)));
  CHECK(h.seq.WantsPrune());
  (void)h.seq.BeginCatchUp(Mode::kPrune);
  h.seq.OnNotification(Payload(4, "x"));  // admitted while in flight: delivered at once
  CHECK(h.ids() == std::vector<int64_t>{1, 2, 3, 4});
  // 1 and 2 are below the new horizon; 3 is not; 9 is unseen (notification on its way).
  h.seq.OnCatchUpResult(130, {Row{1, 110, std::nullopt}, Row{2, 120, std::nullopt},
                              Row{3, 140, std::nullopt}, Row{9, 125, Payload(9, "z")}});
  // 9 is delivered now: the horizon passes it, a drop before its notification would
  // otherwise lose it.
  CHECK(h.ids() == std::vector<int64_t>{1, 2, 3, 4, 9});
  CHECK(h.seq.seen_size() == 3);  // 3, 4 and 9 (until its notification has had time)
  h.seq.OnNotification(Payload(9, "z"));
  h.seq.OnNotification(Payload(3, "j3"));
  CHECK(h.ids() == std::vector<int64_t>{1, 2, 3, 4, 9});
}

TEST_CASE("a large catch-up leaves in slices, in order, with live events behind it") {
  Harness h;
  h.seq.set_max_per_drain(3);
  h.Start(100);
  (void)h.seq.BeginCatchUp(Mode::kReconnect);
  std::vector<Row> rows;
  for (int64_t id = 1; id <= 7; ++id) rows.push_back(Row{id, 101, Payload(id, "j" + std::to_string(id % 2))});
  h.seq.OnNotification(Payload(8, "j0"));  // held during the read
  h.seq.OnCatchUpResult(105, rows);
  CHECK(h.ids() == std::vector<int64_t>{1, 2, 3});
  CHECK(h.seq.backlog());
  h.seq.OnNotification(Payload(9, "j1"));  // live, but behind the backlog
  CHECK(h.ids() == std::vector<int64_t>{1, 2, 3, 4, 5, 6});
  h.seq.Pump();
  h.seq.Pump();
  CHECK(h.ids() == std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK_FALSE(h.seq.backlog());
}

TEST_CASE("a truncated event holds the stream until its payload is fetched") {
  Harness h;
  h.Start();
  h.seq.OnNotification(Payload(1, "a", true));
  h.seq.OnNotification(Payload(2, "b"));
  CHECK(h.out.empty());
  REQUIRE(h.fetches == std::vector<int64_t>{1});
  CHECK(h.seq.PendingFetches() == std::vector<int64_t>{1});
  std::string full = R"({"id":1,"kind":"status","job_id":"a","source":"scheduled_jobs","status":"running","result":"big"})";
  h.seq.OnFetched(1, full);
  REQUIRE(h.ids() == std::vector<int64_t>{1, 2});
  CHECK(h.out[0].json == full);
  CHECK_FALSE(h.out[0].truncated);
}

TEST_CASE("a truncated event whose row is gone is delivered as it came") {
  Harness h;
  h.Start();
  h.seq.OnNotification(Payload(1, "a", true));
  h.seq.OnFetched(1, std::nullopt);
  REQUIRE(h.out.size() == 1);
  CHECK(h.out[0].truncated);
}

TEST_CASE("foreign objects pass without dedup; garbage is counted and dropped") {
  Harness h;
  h.Start();
  h.seq.OnNotification(R"({"job_id":"q1","status":"processing"})");
  h.seq.OnNotification(R"({"job_id":"q1","status":"processing"})");
  h.seq.OnNotification("not json");
  h.seq.OnNotification("[1]");
  CHECK(h.out.size() == 2);
  CHECK(h.seq.stats().parse_errors == 2);
  CHECK_FALSE(h.seq.last_parse_error().empty());
}

// A model of PostgreSQL: transactions take ids when they write and commit later, in any
// order across jobs (rows of one job are serialized by the row lock); a commit's
// notification reaches the socket after a random delay but in commit order; a read's
// result can overtake notifications of commits its snapshot already saw; connections
// drop, losing whatever was on the wire. Every event must come out exactly once, and
// per job in id (= commit) order.
TEST_CASE("simulation: no loss, no repeat, per-job order, across drops and prunes") {
  for (uint32_t seed = 1; seed <= 60; ++seed) {
    CAPTURE(seed);
    std::mt19937 rng(seed);

    struct Ev { int64_t id; uint64_t txid; std::string job; };
    struct Tx { uint64_t xid; std::vector<Ev> evs; std::string job; };
    std::vector<Ev> committed;           // the job_events table
    std::vector<Tx> open;                // in-progress transactions
    std::set<std::string> locked_jobs;
    uint64_t next_xid = 1000;
    int64_t next_id = 1;

    // The wire: notifications and read results, in arrival order.
    struct Msg {
      bool result;
      std::string payload;
      uint64_t horizon;
      std::vector<Row> rows;
      size_t snapshot_commits = 0;  // how many commits the read's snapshot saw
    };
    std::deque<Msg> wire;
    std::deque<std::string> signalled;   // committed but not yet on the wire (late signals)
    bool connected = true;
    bool listening = true;
    bool read_in_flight = false;
    bool read_due = false;  // listening again; the catch-up read not sent yet

    Harness h(8);
    // The stream begins at the snapshot of the first read that completes; what committed
    // before it may or may not be delivered (never twice).
    size_t stream_start = 0;
    auto horizon_now = [&] {
      uint64_t h0 = next_xid;
      for (const auto& t : open) h0 = std::min(h0, t.xid);
      return h0;
    };
    auto answer_read = [&](const DeliverySequencer::CatchUpParams& p) {
      uint64_t hz = horizon_now();
      uint64_t threshold = p.threshold.value_or(hz);
      std::set<int64_t> seen(p.seen_ids.begin(), p.seen_ids.end());
      std::vector<Row> rows;
      for (const auto& e : committed) {
        if (e.txid < threshold) continue;
        Row r{e.id, e.txid, std::nullopt};
        if (!seen.count(e.id)) r.payload = Payload(e.id, e.job);
        rows.push_back(r);
      }
      std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.id < b.id; });
      wire.push_back(Msg{true, "", hz, std::move(rows), committed.size()});
    };
    auto start_read = [&](Mode mode) {
      auto p = h.seq.BeginCatchUp(mode);
      read_in_flight = true;
      answer_read(p);  // snapshot taken now; result delivered when the wire gets to it
    };

    // The reactor reads the next message off the wire.
    auto receive = [&] {
      Msg m = std::move(wire.front());
      wire.pop_front();
      if (m.result) {
        read_in_flight = false;
        if (h.seq.NextCatchUpMode() == Mode::kInitial) stream_start = m.snapshot_commits;
        h.seq.OnCatchUpResult(m.horizon, m.rows);
      } else {
        h.seq.OnNotification(m.payload);
      }
    };

    start_read(Mode::kInitial);
    for (int step = 0; step < 3000; ++step) {
      int action = static_cast<int>(rng() % 100);
      if (action < 25 && open.size() < 6) {
        std::string job = "j" + std::to_string(rng() % 5);
        if (!locked_jobs.count(job)) {
          Tx t{next_xid++, {}, job};
          int n = 1 + static_cast<int>(rng() % 3);
          for (int i = 0; i < n; ++i) t.evs.push_back(Ev{next_id++, t.xid, job});
          locked_jobs.insert(job);
          open.push_back(std::move(t));
        }
      } else if (action < 50 && !open.empty()) {
        size_t i = rng() % open.size();
        Tx t = open[i];
        open.erase(open.begin() + static_cast<long>(i));
        locked_jobs.erase(t.job);
        for (const auto& e : t.evs) {
          committed.push_back(e);
          if (listening) signalled.push_back(Payload(e.id, e.job));
        }
      } else if (action < 65 && !signalled.empty()) {
        wire.push_back(Msg{false, signalled.front(), 0, {}});
        signalled.pop_front();
      } else if (action < 90 && !wire.empty()) {
        receive();
        if (connected && !read_in_flight && h.seq.WantsPrune()) start_read(Mode::kPrune);
      } else if (action < 93 && connected) {
        // The connection drops: the wire and undelivered signals are lost.
        connected = listening = false;
        wire.clear();
        signalled.clear();
        h.seq.OnConnectionLost();
        read_in_flight = read_due = false;
      } else if (action < 97 && !connected) {
        // LISTEN first; the read is sent a few steps later (after LISTEN's result), and
        // notifications may arrive in between.
        connected = listening = true;
        read_due = true;
      } else if (read_due && connected) {
        read_due = false;
        start_read(h.seq.NextCatchUpMode());
      }
    }
    // Settle: commit everything, reconnect if needed, drain the wire.
    while (!open.empty()) {
      Tx t = open.back();
      open.pop_back();
      for (const auto& e : t.evs) {
        committed.push_back(e);
        if (listening) signalled.push_back(Payload(e.id, e.job));
      }
    }
    if (!connected || read_due) {
      connected = listening = true;
      read_due = false;
      start_read(h.seq.NextCatchUpMode());
    }
    for (int round = 0; round < 3; ++round) {
      while (!signalled.empty()) { wire.push_back(Msg{false, signalled.front(), 0, {}}); signalled.pop_front(); }
      while (!wire.empty()) {
        receive();
      }
      if (!read_in_flight && h.seq.WantsPrune()) start_read(Mode::kPrune);
    }

    std::map<int64_t, int> count;
    for (const auto& e : h.out) count[e.id]++;
    for (size_t i = 0; i < committed.size(); ++i) {
      CAPTURE(committed[i].id);
      if (i >= stream_start) CHECK(count[committed[i].id] == 1);
      else CHECK(count[committed[i].id] <= 1);
    }
    CHECK(h.out.size() <= committed.size());
    CHECK(h.out.size() >= committed.size() - stream_start);
    std::map<std::string, int64_t> last;
    for (const auto& e : h.out) {
      CAPTURE(e.id);
      CHECK(e.id > last[e.job_id]);
      last[e.job_id] = e.id;
    }
    // Pruning keeps `seen` to recent ids, far below everything ever delivered.
    CAPTURE(h.seq.seen_size());
    CHECK(h.seq.seen_size() < committed.size() / 8);
  }
}
