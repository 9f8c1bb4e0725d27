#include <doctest/doctest.h>

#include <map>
#include <random>
#include <set>

#include "core/notify_auth.h"
#include "core/sequencer.h"

using reactor::DeliverySequencer;
using reactor::Event;
using reactor::NotifyVerdict;
using reactor::SignNotification;
using Mode = DeliverySequencer::CatchUpMode;
using Row = DeliverySequencer::Row;

namespace {

std::string Payload(int64_t id, const std::string& job, bool truncated = false) {
  std::string s = R"({"id":)" + std::to_string(id) + R"(,"kind":"status","job_id":")" + job +
                  R"(","source":"scheduled_jobs","status":"running")";
  if (truncated) s += R"(,"truncated":true)";
  return s + "}";
}

const std::string kKeyHex(64, '5');  // hex of 32 bytes 0x55
const std::string kKeyBytes(32, '\x55');

// A notification as reactor.sign_notification sends it.
std::string Signed(const std::string& payload, uint64_t txid, const std::string& key = kKeyBytes,
                   const std::string& channel = "job_status_changed") {
  return SignNotification(key, channel, txid, payload);
}

struct Harness {
  std::vector<Event> out;
  std::vector<int64_t> fetches;
  DeliverySequencer seq;
  explicit Harness(size_t prune = 16384, bool accept_unsigned = false)
      : seq([this](Event&& e) { out.push_back(std::move(e)); },
            [this](int64_t id) { fetches.push_back(id); }, prune) {
    seq.ConfigureNotifyAuth("job_status_changed", accept_unsigned);
    REQUIRE(seq.SetNotifyKey(kKeyHex).ok());
  }
  void Note(const std::string& payload, uint64_t txid) { seq.OnNotification(Signed(payload, txid)); }
  uint64_t rejected(NotifyVerdict v) const { return seq.stats().rejected[static_cast<size_t>(v)]; }
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
  h.Note(Payload(1, "a"), 101);
  h.Note(Payload(2, "b"), 102);
  h.Note(Payload(2, "b"), 102);
  CHECK(h.ids() == std::vector<int64_t>{1, 2});
  CHECK(h.out[0].json == Payload(1, "a"));  // the event JSON, without mac and txid
  CHECK(h.seq.stats().duplicates_dropped == 1);
  CHECK(h.seq.last_delivered_id() == 2);
}

TEST_CASE("the first read marks the start of the stream without delivering history") {
  Harness h;
  CHECK(h.seq.NextCatchUpMode() == Mode::kInitial);
  auto p = h.seq.BeginCatchUp(Mode::kInitial);
  CHECK_FALSE(p.threshold.has_value());
  h.Note(Payload(5, "a"), 60);  // committed before the snapshot: history
  h.Note(Payload(7, "b"), 70);  // committed after it
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
  h.Note(Payload(10, "a"), 101);
  // connection lost; events 11 (job a) and 12 (job b) commit meanwhile.
  auto p = h.seq.BeginCatchUp(h.seq.NextCatchUpMode());
  CHECK(p.threshold == 100u);
  CHECK(p.seen_ids == std::vector<int64_t>{10});
  h.Note(Payload(12, "b"), 103);  // arrives on the new LISTEN before the result
  h.Note(Payload(13, "a"), 106);
  CHECK(h.ids() == std::vector<int64_t>{10});
  h.seq.OnCatchUpResult(105, {Row{10, 101, std::nullopt}, Row{11, 102, Payload(11, "a")},
                              Row{12, 103, Payload(12, "b")}});
  CHECK(h.ids() == std::vector<int64_t>{10, 11, 12, 13});
  CHECK(h.seq.stats().recovered == 2);
  // 12's notification may also come late; still not repeated.
  h.Note(Payload(11, "a"), 102);
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
  h.Note(Payload(20, "a"), 150);
  CHECK(h.ids() == std::vector<int64_t>{20});
  CHECK(h.seq.stats().duplicates_dropped == 1);
  // Two reads later it is forgotten (it can no longer be returned by any read).
  (void)h.seq.BeginCatchUp(Mode::kPrune);
  h.seq.OnCatchUpResult(200, {});
  CHECK(h.seq.seen_size() == 0);
  // Its notification once more (a replay by someone who LISTENed): the transaction is
  // older than the horizon, so a read has delivered it.
  h.Note(Payload(20, "a"), 150);
  CHECK(h.ids() == std::vector<int64_t>{20});
  CHECK(h.seq.stats().stale_dropped == 1);
}

TEST_CASE("a prune read keeps ids a later read could return; delivers rows not yet notified") {
  Harness h(2);
  h.Start(100);
  const uint64_t txids[] = {0, 110, 120, 140};
  for (int i = 1; i <= 3; ++i) h.Note(Payload(i, "j" + std::to_string(i)), txids[i]);
  CHECK(h.seq.WantsPrune());
  (void)h.seq.BeginCatchUp(Mode::kPrune);
  h.Note(Payload(4, "x"), 150);  // admitted while in flight: delivered at once
  CHECK(h.ids() == std::vector<int64_t>{1, 2, 3, 4});
  // 1 and 2 are below the new horizon; 3 is not; 9 is unseen (notification on its way).
  h.seq.OnCatchUpResult(130, {Row{1, 110, std::nullopt}, Row{2, 120, std::nullopt},
                              Row{3, 140, std::nullopt}, Row{9, 125, Payload(9, "z")}});
  // 9 is delivered now: the horizon passes it, a drop before its notification would
  // otherwise lose it.
  CHECK(h.ids() == std::vector<int64_t>{1, 2, 3, 4, 9});
  CHECK(h.seq.seen_size() == 3);  // 3, 4 and 9 (until its notification has had time)
  h.Note(Payload(9, "z"), 125);
  h.Note(Payload(3, "j3"), 140);
  CHECK(h.ids() == std::vector<int64_t>{1, 2, 3, 4, 9});
}

TEST_CASE("a large catch-up leaves in slices, in order, with live events behind it") {
  Harness h;
  h.seq.set_max_per_drain(3);
  h.Start(100);
  (void)h.seq.BeginCatchUp(Mode::kReconnect);
  std::vector<Row> rows;
  for (int64_t id = 1; id <= 7; ++id) rows.push_back(Row{id, 101, Payload(id, "j" + std::to_string(id % 2))});
  h.Note(Payload(8, "j0"), 106);  // held during the read
  h.seq.OnCatchUpResult(105, rows);
  CHECK(h.ids() == std::vector<int64_t>{1, 2, 3});
  CHECK(h.seq.backlog());
  h.Note(Payload(9, "j1"), 107);  // live, but behind the backlog
  CHECK(h.ids() == std::vector<int64_t>{1, 2, 3, 4, 5, 6});
  h.seq.Pump();
  h.seq.Pump();
  CHECK(h.ids() == std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK_FALSE(h.seq.backlog());
}

TEST_CASE("a truncated event holds the stream until its payload is fetched") {
  Harness h;
  h.Start();
  h.Note(Payload(1, "a", true), 101);
  h.Note(Payload(2, "b"), 101);
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
  h.Note(Payload(1, "a", true), 101);
  h.seq.OnFetched(1, std::nullopt);
  REQUIRE(h.out.size() == 1);
  CHECK(h.out[0].truncated);
}

TEST_CASE("accepted unsigned objects pass as foreign, without dedup; garbage is counted and dropped") {
  Harness h(16384, /*accept_unsigned=*/true);
  h.Start();
  h.seq.OnNotification(R"({"job_id":"q1","status":"processing"})");
  h.seq.OnNotification(R"({"job_id":"q1","status":"processing"})");
  h.seq.OnNotification("not json");
  h.seq.OnNotification("[1]");
  h.seq.OnNotification(Signed("{not json", 101));  // signed but broken: a parse error too
  CHECK(h.out.size() == 2);
  CHECK(h.out[0].foreign);
  CHECK(h.seq.stats().parse_errors == 3);
  CHECK(h.seq.stats().unsigned_accepted == 2);
  CHECK_FALSE(h.seq.last_parse_error().empty());
}

TEST_CASE("unsigned, forged and altered notifications are rejected: nothing delivered, nothing suppressed") {
  Harness h;
  h.Start(100);
  // What any role that can connect may send: the next id, for a user, and a huge id.
  h.seq.OnNotification(Payload(1, "a"));
  h.seq.OnNotification(R"({"id":9000000000000000000,"kind":"status","job_id":"x","source":"scheduled_jobs"})");
  CHECK(h.rejected(NotifyVerdict::kUnsigned) == 2);
  // Signed with another key, for another channel, or altered after signing.
  h.seq.OnNotification(Signed(Payload(1, "a"), 101, std::string(32, '\x01')));
  h.seq.OnNotification(Signed(Payload(1, "a"), 101, kKeyBytes, "other_channel"));
  std::string altered = Signed(Payload(1, "a"), 101);
  altered.replace(altered.find("\"a\""), 3, "\"b\"");
  h.seq.OnNotification(altered);
  std::string other_txid = Signed(Payload(1, "a"), 101);
  other_txid.replace(other_txid.find("\"101\""), 5, "\"102\"");
  h.seq.OnNotification(other_txid);
  CHECK(h.rejected(NotifyVerdict::kBadSignature) == 4);
  // Looks signed, is not well formed.
  std::string good = Signed(Payload(1, "a"), 101);
  for (std::string bad : {good.substr(0, 40), std::string(R"({"mac":"xyz","txid":"1",)") + "\"id\":1}",
                          std::string(good).replace(good.find("\"101\""), 5, "\"0101\""),
                          std::string(good).replace(good.find("\"101\""), 5, "\"\""),
                          good.substr(0, good.find("\"101\"") + 6)}) {
    h.seq.OnNotification(bad);
  }
  CHECK(h.rejected(NotifyVerdict::kMalformed) == 5);
  CHECK(h.out.empty());
  CHECK(h.seq.last_delivered_id() == 0);
  CHECK(h.seq.seen_size() == 0);
  CHECK(h.seq.last_reject().rfind("malformed: {\"mac\":", 0) == 0);
  h.seq.OnNotification("line\nbreak\x01");
  CHECK(h.seq.last_reject() == "unsigned: line?break?");
  // The real event with the id the forgeries claimed is delivered.
  h.Note(Payload(1, "a"), 101);
  CHECK(h.ids() == std::vector<int64_t>{1});
  CHECK(h.out[0].json == Payload(1, "a"));
}

TEST_CASE("accepted unsigned payloads never pass for events of the log") {
  Harness h(16384, /*accept_unsigned=*/true);
  h.Start(100);
  h.seq.OnNotification(Payload(5, "a", true));  // claims id 5, truncated
  h.seq.OnNotification(R"({"id":9000000000000000000,"kind":"status","job_id":"x","source":"scheduled_jobs","deadline":"2026-01-01T00:00:00Z"})");
  h.seq.OnNotification(R"({"kind":"config","source":"scheduler_config"})");
  REQUIRE(h.out.size() == 3);
  for (const Event& e : h.out) {
    CHECK(e.foreign);
    CHECK(e.id == 0);
    CHECK_FALSE(e.is_logged());
    CHECK_FALSE(e.is_doorbell());
    CHECK_FALSE(e.truncated);
    CHECK(e.deadline.empty());
  }
  CHECK(h.out[0].json == Payload(5, "a", true));  // still passed on byte for byte
  CHECK(h.fetches.empty());
  CHECK(h.seq.last_delivered_id() == 0);
  // The real event 5 is not taken for a duplicate.
  h.Note(Payload(5, "a"), 101);
  CHECK(h.out.size() == 4);
  CHECK(h.out[3].id == 5);
  CHECK(h.seq.last_delivered_id() == 5);
  // A signed doorbell is one.
  h.Note(R"({"kind":"config","source":"scheduler_config"})", 102);
  REQUIRE(h.out.size() == 5);
  CHECK(h.out[4].is_doorbell());
}

TEST_CASE("notifications held before the key is known are verified with it when the read completes") {
  std::vector<Event> out;
  DeliverySequencer seq([&](Event&& e) { out.push_back(std::move(e)); }, [](int64_t) {});
  (void)seq.BeginCatchUp(seq.NextCatchUpMode());
  seq.OnNotification(Signed(Payload(7, "a"), 70));
  seq.OnNotification(Signed(Payload(8, "a"), 71, std::string(32, '\x01')));  // another key
  CHECK(seq.held_size() == 2);
  REQUIRE(seq.SetNotifyKey(kKeyHex).ok());
  seq.OnCatchUpResult(50, {});
  REQUIRE(out.size() == 1);
  CHECK(out[0].id == 7);
  CHECK(seq.stats().rejected[static_cast<size_t>(NotifyVerdict::kBadSignature)] == 1);
  // A bad key is refused and the one set stays.
  CHECK_FALSE(seq.SetNotifyKey("not hex").ok());
  CHECK_FALSE(seq.SetNotifyKey(std::string(64, 'A')).ok());
  seq.OnNotification(Signed(Payload(9, "a"), 72));
  CHECK(out.size() == 2);
}

TEST_CASE("without a key a signed notification is rejected as no_key") {
  std::vector<Event> out;
  DeliverySequencer seq([&](Event&& e) { out.push_back(std::move(e)); }, [](int64_t) {});
  (void)seq.BeginCatchUp(seq.NextCatchUpMode());
  seq.OnCatchUpResult(50, {});
  seq.OnNotification(Signed(Payload(7, "a"), 70));
  CHECK(out.empty());
  CHECK(seq.stats().rejected[static_cast<size_t>(NotifyVerdict::kNoKey)] == 1);
}

// A model of PostgreSQL: transactions take ids when they write and commit later, in any
// order across jobs (rows of one job are serialized by the row lock); a commit's
// notification reaches the socket after a random delay but in commit order; a read's
// result can overtake notifications of commits its snapshot already saw; connections
// drop, losing whatever was on the wire. An adversary who can NOTIFY but has no key
// replays real notifications it saw (at any later time, also after the reactor's
// connection lost the original), and sends forged ones (unsigned, wrong key) claiming the
// next id or a huge one. Every event must come out exactly once, per job in id (= commit)
// order, and nothing else.
TEST_CASE("simulation: no loss, no repeat, per-job order, across drops, prunes and replays") {
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

    std::vector<std::string> observed;   // real notifications the adversary has seen
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
      if (rng() % 100 < 8 && listening) {
        // The adversary's NOTIFY commits now: after every real one it could have seen.
        switch (rng() % 4) {
          case 0:
          case 1:
            if (!observed.empty()) signalled.push_back(observed[rng() % observed.size()]);
            break;
          case 2:
            signalled.push_back(Payload(next_id + static_cast<int64_t>(rng() % 2), "j0"));
            signalled.push_back(Payload(9000000000000000000, "j1"));
            break;
          default:
            signalled.push_back(Signed(Payload(next_id, "j2"), next_xid, std::string(32, '\x01')));
            break;
        }
      }
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
          std::string note = Signed(Payload(e.id, e.job), e.txid);
          observed.push_back(note);
          if (listening) signalled.push_back(note);
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
        if (listening) signalled.push_back(Signed(Payload(e.id, e.job), e.txid));
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
    std::set<int64_t> real;
    for (const auto& e : committed) real.insert(e.id);
    for (const auto& [id, n] : count) {
      CAPTURE(id);
      CHECK(real.count(id) == 1);  // no forged event
    }
    CHECK(h.seq.last_delivered_id() < next_id);
    CHECK(h.seq.stats().rejected[static_cast<size_t>(NotifyVerdict::kUnsigned)] > 0);
    CHECK(h.seq.stats().rejected[static_cast<size_t>(NotifyVerdict::kBadSignature)] > 0);
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

TEST_CASE("the row's horizon in front of a signed event is taken out and kept with the event (migration 005)") {
  Harness h;
  h.Start();
  const std::string p = Payload(1, "a");
  h.seq.OnNotification(Signed("{\"horizon\":\"97\"," + p.substr(1), 101));
  REQUIRE(h.ids() == std::vector<int64_t>{1});
  CHECK(h.out[0].json == p);  // byte for byte the event, without horizon, mac and txid
  CHECK(h.out[0].txid == 101);
  CHECK(h.out[0].horizon == 97);
  // Without one (a schema before 005): unknown.
  h.Note(Payload(2, "b"), 102);
  CHECK(h.out[1].horizon == 0);
  CHECK(h.out[1].txid == 102);
  // A catch-up row carries both.
  h.seq.OnConnectionLost();
  (void)h.seq.BeginCatchUp(h.seq.NextCatchUpMode());
  h.seq.OnCatchUpResult(100, {DeliverySequencer::Row{3, 103, Payload(3, "c"), 99}});
  REQUIRE(h.ids() == std::vector<int64_t>{1, 2, 3});
  CHECK(h.out[2].txid == 103);
  CHECK(h.out[2].horizon == 99);
}

TEST_CASE("TakeHorizon takes out only a well-formed horizon field") {
  std::string a = R"({"horizon":"123","id":1})";
  CHECK(reactor::TakeHorizon(a) == 123);
  CHECK(a == R"({"id":1})");
  for (std::string bad : {std::string(R"({"horizon":"","id":1})"), std::string(R"({"horizon":"12x","id":1})"),
                          std::string(R"({"horizon":"99999999999999999999999","id":1})"),
                          std::string(R"({"horizon":123,"id":1})"), std::string(R"({"id":1,"horizon":"5"})"),
                          std::string(R"({"horizon":"5")")}) {
    const std::string before = bad;
    CHECK(reactor::TakeHorizon(bad) == 0);
    CHECK(bad == before);
  }
}
