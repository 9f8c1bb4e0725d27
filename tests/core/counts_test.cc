#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "core/counts.h"

namespace reactor {
namespace {

Event StatusEvent(int64_t id, uint64_t txid, std::string type, std::string from, std::string to) {
  Event e;
  e.id = id;
  e.kind = "status";
  e.source = "scheduled_jobs";
  e.job_id = "j" + std::to_string(id);
  e.job_type = std::move(type);
  e.old_status = std::move(from);
  e.status = std::move(to);
  e.txid = txid;
  return e;
}

CountsKeeper::Totals T(std::initializer_list<std::pair<const CountsKeeper::Key, int64_t>> l) { return l; }

}  // namespace

TEST_CASE("PgSnapshot parses pg_current_snapshot() text and answers visibility") {
  auto s = PgSnapshot::Parse("100:105:103,101");
  REQUIRE(s);
  CHECK(s->xmin == 100);
  CHECK(s->xmax == 105);
  CHECK(s->xip == std::vector<uint64_t>{101, 103});
  CHECK(s->Sees(99));
  CHECK(s->Sees(100));   // below xmax and not in progress
  CHECK_FALSE(s->Sees(101));
  CHECK(s->Sees(102));
  CHECK_FALSE(s->Sees(103));
  CHECK_FALSE(s->Sees(105));
  CHECK(PgSnapshot::Parse("7:7:"));
  CHECK_FALSE(PgSnapshot::Parse("7:6:"));
  CHECK_FALSE(PgSnapshot::Parse("7:9:x"));
  CHECK_FALSE(PgSnapshot::Parse("79"));
  CHECK_FALSE(PgSnapshot::Parse(""));
}

TEST_CASE("counts: a read, then deltas; events the read counted are not applied twice") {
  CountsKeeper k;
  CHECK_FALSE(k.known());
  k.OnEvent(StatusEvent(1, 10, "a", "", "pending"));  // before any read: nothing to apply to
  CHECK_FALSE(k.known());
  k.BeginRead();
  k.OnEvent(StatusEvent(2, 12, "a", "", "pending"));  // in flight, committed before the read's snapshot
  k.OnEvent(StatusEvent(3, 14, "a", "pending", "running"));  // in flight, after it
  REQUIRE(k.OnRead(T({{{"pending", "a"}, 2}}), *PgSnapshot::Parse("13:14:")));
  CHECK(k.totals() == T({{{"pending", "a"}, 1}, {{"running", "a"}, 1}}));
  // Delivered late but visible to the read (txid 11 < xmin): skipped.
  k.OnEvent(StatusEvent(4, 11, "a", "", "pending"), 12);
  CHECK(k.totals() == T({{{"pending", "a"}, 1}, {{"running", "a"}, 1}}));
  CHECK(k.stats().skipped == 2);
  // Not visible: applied. Progress and other sources change nothing.
  k.OnEvent(StatusEvent(5, 20, "a", "running", "completed"), 14);
  Event progress = StatusEvent(6, 21, "a", "completed", "completed");
  progress.kind = "progress";
  k.OnEvent(progress, 14);
  Event other = StatusEvent(7, 22, "a", "", "pending");
  other.source = "job_queue";
  k.OnEvent(other, 14);
  CHECK(k.totals() == T({{{"pending", "a"}, 1}, {{"completed", "a"}, 1}}));
  CHECK(k.as_of() == 7);
  CHECK(k.Json() == R"({"completed":{"a":1},"pending":{"a":1}})");
  CHECK_FALSE(k.wants_read());
}

TEST_CASE("counts: what the stream cannot account for asks for a new read") {
  CountsKeeper k;
  k.BeginRead();
  REQUIRE(k.OnRead(T({{{"pending", "a"}, 1}}), *PgSnapshot::Parse("10:10:")));
  CHECK_FALSE(k.wants_read());
  SUBCASE("a job that left a status the keeper never counted (deleted meanwhile, type changed)") {
    k.OnEvent(StatusEvent(1, 11, "b", "pending", "running"), 11);
    CHECK(k.wants_read());
    CHECK(k.totals() == T({{{"pending", "a"}, 1}, {{"running", "b"}, 1}}));
  }
  SUBCASE("an oversize notice (no old_status)") {
    Event e = StatusEvent(1, 11, "", "", "running");
    e.truncated = true;
    k.OnEvent(e, 11);
    CHECK(k.wants_read());
  }
  SUBCASE("too many events while a read is in flight: the read is abandoned") {
    CountsKeeper small(2);
    small.BeginRead();
    for (int i = 1; i <= 3; ++i) small.OnEvent(StatusEvent(i, 10 + i, "a", "", "pending"));
    CHECK_FALSE(small.OnRead(T({{{"pending", "a"}, 3}}), *PgSnapshot::Parse("14:14:")));
    CHECK_FALSE(small.known());
    CHECK(small.wants_read());
    CHECK(small.stats().abandoned == 1);
  }
}

// A model of PostgreSQL: transactions take txids in start order and commit in any order;
// the stream delivers commits in commit order, late; reads take a snapshot of what had
// committed at some moment and answer later. Whatever the interleaving, once everything
// is delivered the keeper's totals equal the table's.
TEST_CASE("counts: randomized interleavings of commits, delivery and reads end exact") {
  for (uint32_t seed = 1; seed <= 300; ++seed) {
    std::mt19937 rng(seed);
    const char* statuses[] = {"pending", "running", "completed", "failed"};
    const char* types[] = {"a", "b"};
    std::map<std::string, std::pair<std::string, std::string>> jobs;  // id -> type, status
    auto table = [&] {
      CountsKeeper::Totals t;
      for (auto& [id, js] : jobs) ++t[{js.second, js.first}];
      return t;
    };
    // Start 60 transactions; commit them in a shuffled order within a sliding window.
    const int n = 60;
    std::vector<uint64_t> commit_order;
    std::vector<uint64_t> open;
    uint64_t next_txid = 100;
    for (int i = 0; i < n; ++i) {
      open.push_back(next_txid++);
      if (open.size() > 4 || i == n - 1) {
        while (!open.empty() && (open.size() > 2 || i == n - 1)) {
          size_t k = rng() % open.size();
          commit_order.push_back(open[k]);
          open.erase(open.begin() + static_cast<long>(k));
        }
      }
    }
    // Apply each commit to the table, making the event it writes.
    std::vector<Event> events;
    std::vector<std::set<uint64_t>> committed_after;  // committed set after commit k
    std::set<uint64_t> committed;
    std::vector<CountsKeeper::Totals> table_after;
    int64_t id = 0;
    for (uint64_t tx : commit_order) {
      std::string job = "j" + std::to_string(rng() % 12);
      auto it = jobs.find(job);
      const std::string type = types[rng() % 2];
      if (it == jobs.end()) {
        jobs[job] = {type, "pending"};
        Event e = StatusEvent(++id, tx, type, "", "pending");
        e.job_id = job;
        events.push_back(e);
      } else {
        std::string to = statuses[rng() % 4];
        Event e = StatusEvent(++id, tx, it->second.first, it->second.second, to);
        e.job_id = job;
        it->second.second = to;
        events.push_back(e);
      }
      committed.insert(tx);
      committed_after.push_back(committed);
      table_after.push_back(table());
    }
    auto snapshot_at = [&](size_t k) {  // after commit k
      const auto& c = committed_after[k];
      PgSnapshot s;
      s.xmax = *c.rbegin() + 1;
      for (uint64_t tx = 100; tx < s.xmax; ++tx) {
        if (!c.count(tx)) s.xip.push_back(tx);
      }
      s.xmin = s.xip.empty() ? s.xmax : s.xip.front();
      return s;
    };
    auto horizon_at = [&](size_t delivered) {  // every txid below it delivered
      std::set<uint64_t> d(commit_order.begin(), commit_order.begin() + static_cast<long>(delivered));
      uint64_t h = 100;
      while (d.count(h)) ++h;
      return h;
    };
    CountsKeeper keeper;
    // Reads: issued after delivery point `issue`, snapshot at commit point >= issue,
    // answered after delivery point >= the snapshot's.
    size_t delivered = 0;
    std::vector<std::tuple<size_t, size_t, size_t>> reads;
    for (int r = 0; r < 3; ++r) {
      size_t issue = rng() % n;
      size_t snap = std::min<size_t>(n - 1, issue + rng() % 5);
      size_t answer = std::min<size_t>(n, issue + rng() % 10);  // maybe before `snap` is delivered
      reads.emplace_back(issue, snap, answer);
    }
    std::sort(reads.begin(), reads.end());
    // Only one read in flight at a time (as the hub does).
    std::vector<std::tuple<size_t, size_t, size_t>> serial;
    size_t busy_until = 0;
    for (auto& r : reads) {
      if (std::get<0>(r) >= busy_until) {
        serial.push_back(r);
        busy_until = std::get<2>(r);
      }
    }
    size_t ri = 0;
    bool in_flight = false;
    for (; delivered <= static_cast<size_t>(n); ++delivered) {
      // At this delivery point: issue and answer reads.
      if (in_flight && std::get<2>(serial[ri]) == delivered) {
        auto [issue, snap, answer] = serial[ri];
        keeper.OnRead(table_after[snap], snapshot_at(snap));
        in_flight = false;
        ++ri;
      }
      if (!in_flight && ri < serial.size() && std::get<0>(serial[ri]) == delivered) {
        keeper.BeginRead();
        in_flight = true;
        if (std::get<2>(serial[ri]) == delivered) {
          keeper.OnRead(table_after[std::get<1>(serial[ri])], snapshot_at(std::get<1>(serial[ri])));
          in_flight = false;
          ++ri;
        }
      }
      if (delivered < static_cast<size_t>(n)) keeper.OnEvent(events[delivered], horizon_at(delivered));
    }
    INFO("seed " << seed);
    REQUIRE(keeper.known());
    CHECK(keeper.totals() == table_after.back());
    CHECK_FALSE(keeper.wants_read());
  }
}

}  // namespace reactor
