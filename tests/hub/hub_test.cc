// The hub driven through fake hooks: sessions opened with Hub::Open, a fake query
// function whose callbacks the test runs when it chooses, frames decoded from the
// sessions' queues.
#include <doctest/doctest.h>
#include <jwt.h>

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <string>
#include <vector>

#include "core/event.h"
#include "hub/hub.h"

using namespace reactor;
using namespace reactor::hub;

namespace {

Event Ev(int64_t id, const std::string& job, const char* user, const std::string& status,
         const std::string& type = "t") {
  std::string json = "{\"id\":" + std::to_string(id) + ",\"kind\":\"status\",\"job_id\":\"" + job +
                     "\",\"source\":\"scheduled_jobs\",\"status\":\"" + status + "\",\"user_id\":" +
                     (user ? "\"" + std::string(user) + "\"" : "null") + ",\"job_type\":\"" + type + "\"}";
  EventParser p;
  auto e = p.Parse(json);
  REQUIRE(e);
  // As the sequencer hands them out: one transaction per event, run alone (its horizon
  // is its own txid), unless a test says otherwise.
  e->txid = 1000 + static_cast<uint64_t>(id);
  e->horizon = e->txid;
  return *e;
}

// An event of transaction `txid` written while the oldest running one was `horizon`.
Event TxEv(int64_t id, uint64_t txid, uint64_t horizon, const std::string& job, const char* user,
           const std::string& status) {
  Event e = Ev(id, job, user, status);
  e.txid = txid;
  e.horizon = horizon;
  return e;
}

std::string Token(const char* sub, const char* role, long exp, const char* secret = "k") {
  jwt_t* j = nullptr;
  jwt_new(&j);
  if (sub) jwt_add_grant(j, "sub", sub);
  if (role) jwt_add_grant(j, "role", role);
  if (exp) jwt_add_grant_int(j, "exp", exp);
  jwt_set_alg(j, JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret),
              static_cast<int>(std::string(secret).size()));
  char* s = jwt_encode_str(j);
  std::string out = s;
  free(s);
  jwt_free(j);
  return out;
}

// A read the hub asked for; the test answers it when it chooses.
struct Query {
  bool snapshot = false;
  pg::ResumeQuery rq;
  pg::SnapshotQuery sq;
  pg::Reply<pg::ResumeRows> resume_cb;
  pg::Reply<pg::SnapshotRows> snapshot_cb;
  bool cancelled = false;
  void Answer(pg::ResumeRows rows) { resume_cb(std::move(rows)); }
  void Answer(pg::SnapshotRows rows) { snapshot_cb(std::move(rows)); }
};

// Cancel answers "cancelled" at once, as pg::Session does for a statement not yet sent.
struct FakeReads : pg::ClientReads {
  std::deque<Query> queries;
  bool refuse = false;
  Result<Ticket> Resume(uint64_t, pg::ResumeQuery q, pg::Reply<pg::ResumeRows> cb) override {
    if (refuse) return Status::Error("not connected");
    Query x;
    x.rq = std::move(q);
    x.resume_cb = std::move(cb);
    queries.push_back(std::move(x));
    return queries.size();
  }
  Result<Ticket> Snapshot(uint64_t, pg::SnapshotQuery q, pg::Reply<pg::SnapshotRows> cb) override {
    if (refuse) return Status::Error("not connected");
    Query x;
    x.snapshot = true;
    x.sq = std::move(q);
    x.snapshot_cb = std::move(cb);
    queries.push_back(std::move(x));
    return queries.size();
  }
  // The console's requests, answered by the test (tickets from 1 000 000 on).
  std::vector<std::pair<pg::HistoryQuery, pg::Reply<pg::HistoryRows>>> histories;
  std::vector<std::pair<pg::ActionRequest, pg::Reply<pg::ActionResult>>> actions;
  std::vector<pg::Reply<pg::CountsRows>> counts;
  std::vector<Ticket> console_cancelled;
  static constexpr Ticket kConsole = 1000000;
  bool fail_at_once = false;  // answer an error inside the call (a send that failed at once)
  Result<Ticket> History(uint64_t, pg::HistoryQuery q, pg::Reply<pg::HistoryRows> cb) override {
    if (refuse) return Status::Error("not connected");
    if (fail_at_once) cb(Status::Error("connection lost"));
    histories.emplace_back(std::move(q), std::move(cb));
    return kConsole + histories.size();
  }
  Result<Ticket> Action(uint64_t, pg::ActionRequest q, pg::Reply<pg::ActionResult> cb) override {
    if (refuse) return Status::Error("not connected");
    actions.emplace_back(std::move(q), std::move(cb));
    return 2 * kConsole + actions.size();
  }
  Result<Ticket> Counts(uint64_t, pg::Reply<pg::CountsRows> cb) override {
    if (refuse) return Status::Error("not connected");
    counts.push_back(std::move(cb));
    return 3 * kConsole + counts.size();
  }
  void Cancel(Ticket t) override {
    if (t > kConsole) {
      console_cancelled.push_back(t);
      if (t < 2 * kConsole) histories.at(t - kConsole - 1).second(Status::Error("cancelled"));
      return;
    }
    Query& q = queries.at(t - 1);
    q.cancelled = true;
    if (q.snapshot) q.snapshot_cb(Status::Error("cancelled"));
    else q.resume_cb(Status::Error("cancelled"));
  }
};

struct Fixture {
  std::vector<std::pair<uint64_t, uint16_t>> closes;
  FakeReads reads;
  std::deque<Query>& queries = reads.queries;
  bool& refuse_queries = reads.refuse;
  bool with_query = true;
  std::unique_ptr<Hub> hub;

  explicit Fixture(Hub::Config c = {}, bool query = true) : with_query(query) {
    Hub::Hooks h;
    h.wake = [](Session&) {};
    h.close = [this](Session& s, uint16_t code, const std::string&) { closes.emplace_back(s.id(), code); };
    if (with_query) h.reads = &reads;
    hub = std::make_unique<Hub>(std::move(c), std::move(h));
    hub->now_s = [] { return int64_t{1000}; };
  }
  std::unique_ptr<Session> Open() { return hub->Open(Principal::Open(), true); }
};

// Text payloads of the frames queued to `s`, which are consumed.
std::vector<std::string> Drain(Session& s) {
  std::vector<std::string> out;
  auto chunks = s.out().Gather(1 << 20);
  size_t total = 0;
  for (const auto& c : chunks) {
    std::string_view f = c.view();
    total += f.size();
    REQUIRE(f.size() >= 2);
    CHECK(static_cast<uint8_t>(f[0]) == 0x81);  // FIN + text, unmasked
    size_t len = static_cast<uint8_t>(f[1]) & 0x7f;
    size_t off = 2;
    if (len == 126) {
      len = (static_cast<uint8_t>(f[2]) << 8) | static_cast<uint8_t>(f[3]);
      off = 4;
    } else if (len == 127) {
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | static_cast<uint8_t>(f[2 + i]);
      off = 10;
    }
    REQUIRE(f.size() == off + len);
    out.emplace_back(f.substr(off));
  }
  s.out().Consume(total);
  return out;
}

// Event ids in the drained frames, in order.
std::vector<int64_t> EventIds(const std::vector<std::string>& msgs) {
  std::vector<int64_t> ids;
  for (const auto& m : msgs) {
    if (m.rfind("{\"type\":\"event\"", 0) != 0) continue;
    size_t at = m.find("\"id\":");
    ids.push_back(std::stoll(m.substr(at + 5)));
  }
  return ids;
}

bool Has(const std::vector<std::string>& msgs, const std::string& part) {
  for (const auto& m : msgs) if (m.find(part) != std::string::npos) return true;
  return false;
}

void Publish(Hub& h, int64_t id, const std::string& job, const char* user, const std::string& status,
             const std::string& type = "t") {
  h.Publish(Ev(id, job, user, status, type));
}

}  // namespace

TEST_CASE("hub: welcome, subscribed, routing by filter, unsubscribe") {
  Fixture f;
  Publish(*f.hub, 7, "j0", "u1", "pending");
  auto s = f.Open();
  auto w = Drain(*s);
  REQUIRE(w.size() == 1);
  CHECK(w[0] == R"({"type":"welcome","server":"reactor","last_event_id":7,"mode":"live"})");

  f.hub->OnText(*s, R"({"op":"subscribe","id":"a","filter":{"user_id":"u1","job_type":["x","y"],"status":"failed,running"}})");
  CHECK(Drain(*s) == std::vector<std::string>{R"({"type":"subscribed","id":"a","last_event_id":7})"});
  Publish(*f.hub, 8, "j1", "u1", "running", "x");   // yes
  Publish(*f.hub, 9, "j1", "u2", "running", "x");   // other user
  Publish(*f.hub, 10, "j1", "u1", "completed", "x");  // other status
  Publish(*f.hub, 11, "j1", "u1", "failed", "z");   // other type
  Publish(*f.hub, 12, "j2", "u1", "failed", "y");   // yes
  Publish(*f.hub, 13, "j3", nullptr, "failed", "y");  // no user
  CHECK(EventIds(Drain(*s)) == std::vector<int64_t>{8, 12});

  f.hub->OnText(*s, R"({"op":"unsubscribe","id":"a"})");
  CHECK(Drain(*s) == std::vector<std::string>{R"({"type":"unsubscribed","id":"a"})"});
  Publish(*f.hub, 14, "j1", "u1", "running", "x");
  CHECK(Drain(*s).empty());
  f.hub->OnText(*s, R"({"op":"unsubscribe","id":"a"})");
  CHECK(Has(Drain(*s), R"("code":"unknown_subscription")"));
  f.hub->OnText(*s, R"({"op":"ping"})");
  CHECK(Drain(*s) == std::vector<std::string>{R"({"type":"pong","queue_bytes":0})"});
  f.hub->OnText(*s, R"({"op":"subscribe","filter":{"colour":"red"}})");
  CHECK(Has(Drain(*s), R"("code":"bad_request")"));
  CHECK(f.hub->stats().bad_requests == 1);
  f.hub->Remove(s.get());
}

TEST_CASE("hub: an event is queued once per connection, the same bytes for everyone") {
  Fixture f;
  auto a = f.Open();
  auto b = f.Open();
  f.hub->OnText(*a, R"({"op":"subscribe","id":"1"})");
  f.hub->OnText(*a, R"({"op":"subscribe","id":"2","filter":{"user_id":"u1"}})");
  f.hub->OnText(*a, R"({"op":"subscribe","id":"3","filter":{"job_id":"j1"}})");
  f.hub->OnText(*b, R"({"op":"subscribe","id":"1"})");
  Drain(*a);
  Drain(*b);
  Publish(*f.hub, 5, "j1", "u1", "running");
  auto ca = a->out().Gather(10);
  auto cb = b->out().Gather(10);
  REQUIRE(ca.size() == 1);
  REQUIRE(cb.size() == 1);
  CHECK(ca[0].frame.get() == cb[0].frame.get());  // encoded once, shared
  CHECK(EventIds(Drain(*a)) == std::vector<int64_t>{5});
  CHECK(f.hub->stats().frames == 2);
  f.hub->Remove(a.get());
  f.hub->Remove(b.get());
}

TEST_CASE("hub: authorization by token, forbidden filters, expiry") {
  Hub::Config c;
  c.secret = "k";
  c.token_rules.leeway_s = 0;  // expiry exactly at `exp` (the leeway has its own test)
  Fixture f(c);
  auto who = f.hub->Authenticate(Token("u1", "authenticated", 2000), 1000);
  REQUIRE(who);
  auto u1 = f.hub->Open(*who, true);
  auto anon = f.hub->Open(Principal::Open(), false);
  Drain(*u1);
  Drain(*anon);

  // Not authenticated: forbidden, and nothing routed to it.
  f.hub->OnText(*anon, R"({"op":"subscribe","id":"s"})");
  CHECK(Has(Drain(*anon), R"("code":"forbidden")"));
  // A filter naming another user.
  f.hub->OnText(*u1, R"({"op":"subscribe","id":"s","filter":{"user_id":"u2"}})");
  CHECK(Has(Drain(*u1), R"("code":"forbidden")"));
  // No user named: narrowed to the token's.
  f.hub->OnText(*u1, R"({"op":"subscribe","id":"s"})");
  Drain(*u1);
  Publish(*f.hub, 1, "j", "u1", "running");
  Publish(*f.hub, 2, "j", "u2", "running");
  Publish(*f.hub, 3, "j", nullptr, "running");
  CHECK(EventIds(Drain(*u1)) == std::vector<int64_t>{1});
  CHECK(Drain(*anon).empty());

  // The auth message authenticates; a bad one closes with 1008.
  f.hub->OnText(*anon, "{\"op\":\"auth\",\"token\":\"" + Token(nullptr, "admin", 5000) + "\"}");
  f.hub->OnText(*anon, R"({"op":"subscribe","id":"s","filter":{"user_id":"u2"}})");
  CHECK(Has(Drain(*anon), R"("type":"subscribed")"));
  Publish(*f.hub, 4, "j", "u2", "running");
  CHECK(EventIds(Drain(*anon)) == std::vector<int64_t>{4});
  // A user cannot become another user.
  f.hub->OnText(*u1, "{\"op\":\"auth\",\"token\":\"" + Token("u2", nullptr, 5000) + "\"}");
  CHECK(Has(Drain(*u1), R"("code":"forbidden")"));
  CHECK(f.closes.empty());
  f.hub->OnText(*u1, "{\"op\":\"auth\",\"token\":\"" + Token("u1", nullptr, 5000, "forged") + "\"}");
  REQUIRE(f.closes.size() == 1);
  CHECK(f.closes[0] == std::make_pair(u1->id(), uint16_t{1008}));
  CHECK(u1->closing());

  // Expiry: 1008 once `exp` has passed, not before.
  auto who2 = f.hub->Authenticate(Token("u3", nullptr, 2000), 1000);
  REQUIRE(who2);
  auto u3 = f.hub->Open(*who2, true);
  f.hub->CheckExpiry(*u3, 1999);
  CHECK(f.closes.size() == 1);
  // A fresh token pushes the deadline.
  f.hub->OnText(*u3, "{\"op\":\"auth\",\"token\":\"" + Token("u3", nullptr, 3000) + "\"}");
  f.hub->CheckExpiry(*u3, 2500);
  CHECK(f.closes.size() == 1);
  f.hub->CheckExpiry(*u3, 3000);
  REQUIRE(f.closes.size() == 2);
  CHECK(f.closes[1] == std::make_pair(u3->id(), uint16_t{1008}));
  for (auto* s : {u1.get(), anon.get(), u3.get()}) f.hub->Remove(s);
}

TEST_CASE("hub: a connection over --max-queue-bytes is closed with 1013, others go on") {
  Hub::Config c;
  c.max_queue_bytes = 2048;
  Fixture f(c);
  auto slow = f.Open();
  auto fast = f.Open();
  f.hub->OnText(*slow, R"({"op":"subscribe"})");
  f.hub->OnText(*fast, R"({"op":"subscribe"})");
  Drain(*fast);
  int64_t id = 1;
  while (f.closes.empty() && id < 1000) {
    Publish(*f.hub, id++, "j", "u", "running");
    Drain(*fast);
  }
  REQUIRE(f.closes.size() == 1);
  CHECK(f.closes[0] == std::make_pair(slow->id(), uint16_t{1013}));
  CHECK(slow->out().bytes() <= 2048);
  CHECK(f.hub->stats().slow_closes == 1);
  size_t queued = slow->out().frames();
  Publish(*f.hub, id, "j", "u", "running");
  CHECK(slow->out().frames() == queued);  // nothing more for it
  CHECK(EventIds(Drain(*fast)) == std::vector<int64_t>{id});
  // In-flight bytes count too: an event that would not fit closes the connection...
  auto g = f.Open();
  f.hub->OnText(*g, R"({"op":"subscribe"})");
  Drain(*g);
  g->inflight_bytes = 2040;
  Publish(*f.hub, ++id, "j", "u", "running");
  CHECK(f.closes.size() == 2);
  CHECK(f.closes.back().first == g->id());
  CHECK(EventIds(Drain(*fast)) == std::vector<int64_t>{id});
  // ...but a reply is refused only once the queue is already over the limit.
  auto h = f.Open();
  Drain(*h);
  h->inflight_bytes = 2040;
  f.hub->OnText(*h, R"({"op":"ping"})");
  CHECK(f.closes.size() == 2);
  CHECK(Has(Drain(*h), R"({"type":"pong","queue_bytes":)"));
  h->inflight_bytes = 2049;
  f.hub->OnText(*h, R"({"op":"ping"})");
  CHECK(f.closes.size() == 3);
  f.hub->Remove(h.get());
  for (auto* s : {slow.get(), fast.get(), g.get()}) f.hub->Remove(s);
}

TEST_CASE("hub: resume from the history, in stream order, filtered") {
  Hub::Config c;
  c.history = 5;
  Fixture f(c, false);
  for (int64_t id : {10, 12, 11, 13}) Publish(*f.hub, id, "j" + std::to_string(id % 2), "u1", "running");
  auto s = f.Open();
  Drain(*s);
  f.hub->OnText(*s, R"({"op":"subscribe","id":"r","since":12})");
  CHECK(EventIds(Drain(*s)) == std::vector<int64_t>{11, 13});  // stream order, not id order
  f.hub->OnText(*s, R"({"op":"subscribe","id":"q","since":10,"filter":{"job_id":"j1"}})");
  CHECK(EventIds(Drain(*s)) == std::vector<int64_t>{11, 13});
  CHECK(f.hub->stats().resumes_from_history == 2);
  // From the start of a ring that never evicted.
  auto t = f.Open();
  Drain(*t);
  f.hub->OnText(*t, R"({"op":"subscribe","since":0})");
  CHECK(EventIds(Drain(*t)) == std::vector<int64_t>{10, 12, 11, 13});
  f.hub->Remove(s.get());
  f.hub->Remove(t.get());
}

TEST_CASE("hub: gap when neither the history nor the database can fill a resume") {
  Hub::Config c;
  c.history = 2;
  for (int with_query = 0; with_query < 2; ++with_query) {
    Fixture f(c, with_query == 1);
    for (int64_t id = 1; id <= 5; ++id) Publish(*f.hub, id, "j", "u", "running");
    auto s = f.Open();
    Drain(*s);
    f.hub->OnText(*s, R"({"op":"subscribe","id":"g","since":2})");
    if (with_query) {
      REQUIRE(f.queries.size() == 1);
      CHECK(f.queries[0].rq.since == 2);
      Publish(*f.hub, 6, "j", "u", "running");  // held meanwhile
      CHECK(EventIds(Drain(*s)).empty());
      f.queries[0].Answer(pg::ResumeRows{false, {}});  // id 2 is not in the table
    }
    auto msgs = Drain(*s);
    CHECK(Has(msgs, R"({"type":"gap","id":"g","after":2})"));
    if (with_query) CHECK(EventIds(msgs) == std::vector<int64_t>{6});  // then live
    Publish(*f.hub, 7, "j", "u", "running");
    CHECK(EventIds(Drain(*s)) == std::vector<int64_t>{7});
    CHECK(f.hub->stats().gaps == 1);
    f.hub->Remove(s.get());
  }
  // A query that cannot be sent is a gap too.
  Fixture f(c);
  f.refuse_queries = true;
  for (int64_t id = 1; id <= 5; ++id) Publish(*f.hub, id, "j", "u", "running");
  auto s = f.Open();
  f.hub->OnText(*s, R"({"op":"subscribe","id":"g","since":1})");
  CHECK(Has(Drain(*s), R"("type":"gap")"));
  Publish(*f.hub, 6, "j", "u", "running");
  CHECK(EventIds(Drain(*s)) == std::vector<int64_t>{6});
  f.hub->Remove(s.get());
}

TEST_CASE("hub: resume from the database, then the events held meanwhile, none twice") {
  Hub::Config c;
  c.history = 2;
  Fixture f(c);
  for (int64_t id = 1; id <= 5; ++id) Publish(*f.hub, id, "j", "u1", "running");
  auto s = f.Open();
  Drain(*s);
  f.hub->OnText(*s, R"({"op":"subscribe","id":"d","since":2,"filter":{"user_id":"u1"}})");
  REQUIRE(f.queries.size() == 1);
  CHECK(f.queries[0].rq.filter.user_id == "u1");
  Publish(*f.hub, 6, "j", "u1", "running");
  Publish(*f.hub, 7, "j", "u1", "running");
  CHECK(EventIds(Drain(*s)).empty());  // held until the rows arrive
  // The table has 3..6 (6 committed before the read); 7 came later.
  pg::ResumeRows rows{true, {}};
  for (int64_t id = 3; id <= 6; ++id) rows.payloads.push_back(Ev(id, "j", "u1", "running").json);
  f.queries[0].Answer(std::move(rows));
  CHECK(EventIds(Drain(*s)) == std::vector<int64_t>{3, 4, 5, 6, 7});
  CHECK(f.hub->stats().resumes_from_database == 1);
  Publish(*f.hub, 8, "j", "u1", "running");
  CHECK(EventIds(Drain(*s)) == std::vector<int64_t>{8});
  f.hub->Remove(s.get());
}

TEST_CASE("hub: a snapshot larger than --max-queue-bytes is delivered, not taken for a slow consumer") {
  Hub::Config c;
  c.max_queue_bytes = 4096;
  Fixture f(c);
  auto s = f.Open();
  Drain(*s);
  f.hub->OnText(*s, R"({"op":"subscribe","id":"s","snapshot":true})");
  Drain(*s);
  REQUIRE(f.queries.size() == 1);
  std::string rows = "[";
  for (int i = 0; i < 200; ++i) rows += std::string(i ? "," : "") + R"({"id":"job_)" + std::to_string(i) + R"(","status":"pending"})";
  rows += "]";
  REQUIRE(rows.size() > 4096);
  f.queries[0].Answer(pg::SnapshotRows{rows, {}});
  CHECK(f.closes.empty());
  auto msgs = Drain(*s);
  REQUIRE(msgs.size() == 1);
  CHECK(msgs[0].find(R"("type":"snapshot")") != std::string::npos);
  f.hub->Remove(s.get());
}

TEST_CASE("hub: a snapshot holds live events and releases those it does not reflect") {
  Fixture f;
  Publish(*f.hub, 1, "a", "u", "pending");
  auto s = f.Open();
  Drain(*s);
  f.hub->OnText(*s, R"({"op":"subscribe","id":"s","snapshot":true,"filter":{"job_type":"t"}})");
  CHECK(Has(Drain(*s), R"("type":"subscribed")"));
  REQUIRE(f.queries.size() == 1);
  Publish(*f.hub, 2, "a", "u", "running");  // reflected by the snapshot
  Publish(*f.hub, 3, "b", "u", "running");  // committed after it
  CHECK(Drain(*s).empty());
  f.queries[0].Answer(pg::SnapshotRows{R"([{"id":"a","status":"running"}])", {1, 2}});
  auto msgs = Drain(*s);
  REQUIRE(msgs.size() == 2);
  CHECK(msgs[0] == R"({"type":"snapshot","id":"s","as_of":1,"jobs":[{"id":"a","status":"running"}]})");
  CHECK(EventIds(msgs) == std::vector<int64_t>{3});
  CHECK(f.hub->stats().snapshots == 1);
  Publish(*f.hub, 4, "a", "u", "completed");
  CHECK(EventIds(Drain(*s)) == std::vector<int64_t>{4});

  // A subscription removed while its read runs cancels the read and says nothing more.
  f.hub->OnText(*s, R"({"op":"subscribe","id":"x","snapshot":true})");
  f.hub->OnText(*s, R"({"op":"unsubscribe","id":"x"})");
  auto after = Drain(*s);
  CHECK(!Has(after, R"("type":"snapshot")"));
  CHECK(!Has(after, R"("type":"error")"));
  REQUIRE(f.queries.size() == 2);
  CHECK(f.queries[1].cancelled);
  // One replaced while its read runs: the old read is cancelled, the new one answers.
  f.hub->OnText(*s, R"({"op":"subscribe","id":"y","snapshot":true})");
  f.hub->OnText(*s, R"({"op":"subscribe","id":"y","snapshot":true})");
  Drain(*s);
  REQUIRE(f.queries.size() == 4);
  CHECK(f.queries[2].cancelled);
  CHECK(!f.queries[3].cancelled);
  f.queries[3].Answer(pg::SnapshotRows{"[]", {}});
  CHECK(Has(Drain(*s), R"({"type":"snapshot","id":"y")"));
  // A connection that goes cancels what it still waits for.
  f.hub->OnText(*s, R"({"op":"subscribe","id":"z","since":1})");
  f.hub->OnText(*s, R"({"op":"subscribe","id":"w","snapshot":true})");
  REQUIRE(f.queries.size() == 5);  // since 1 is in the history: no read
  f.hub->Remove(s.get());
  CHECK(f.queries[4].cancelled);
}

TEST_CASE("hub: while one subscription is held, another's live events are not sent twice") {
  Fixture f;
  auto s = f.Open();
  f.hub->OnText(*s, R"({"op":"subscribe","id":"live"})");
  f.hub->OnText(*s, R"({"op":"subscribe","id":"p","snapshot":true})");
  Drain(*s);
  Publish(*f.hub, 1, "a", "u", "running");  // sent by "live", held by "p"
  CHECK(EventIds(Drain(*s)) == std::vector<int64_t>{1});
  f.queries[0].Answer(pg::SnapshotRows{"[]", {}});
  CHECK(EventIds(Drain(*s)).empty());
  f.hub->Remove(s.get());
}

TEST_CASE("hub: two snapshots held at once release a shared event once") {
  Fixture f;
  auto s = f.Open();
  f.hub->OnText(*s, R"({"op":"subscribe","id":"p1","snapshot":true})");
  f.hub->OnText(*s, R"({"op":"subscribe","id":"p2","snapshot":true})");
  Drain(*s);
  REQUIRE(f.queries.size() == 2);
  Publish(*f.hub, 1, "a", "u", "running");  // held by both
  CHECK(EventIds(Drain(*s)).empty());
  f.queries[0].Answer(pg::SnapshotRows{"[]", {}});
  CHECK(EventIds(Drain(*s)) == std::vector<int64_t>{1});
  f.queries[1].Answer(pg::SnapshotRows{"[]", {}});
  CHECK(EventIds(Drain(*s)).empty());
  Publish(*f.hub, 2, "a", "u", "completed");
  CHECK(EventIds(Drain(*s)) == std::vector<int64_t>{2});
  f.hub->Remove(s.get());
}

TEST_CASE("hub: CloseAll closes every open session once") {
  Fixture f;
  auto a = f.Open();
  auto b = f.Open();
  f.hub->CloseAll(1001, "bye");
  f.hub->CloseAll(1001, "bye");
  CHECK(f.closes.size() == 2);
  for (const auto& [id, code] : f.closes) CHECK(code == 1001);
  Publish(*f.hub, 1, "a", "u", "running");
  f.hub->Remove(a.get());
  f.hub->Remove(b.get());
  CHECK(f.hub->sessions() == 0);
}

TEST_CASE("hub: subscriptions per connection are bounded; a refusal loses nothing") {
  Hub::Config c;
  c.max_subscriptions = 3;
  Fixture f(c);
  auto s = f.Open();
  Drain(*s);
  for (const char* id : {"a", "b", "c"}) {
    f.hub->OnText(*s, std::string(R"({"op":"subscribe","id":")") + id + R"(","filter":{"job_id":")" + id + "\"}}");
  }
  CHECK(Drain(*s).size() == 3);
  f.hub->OnText(*s, R"({"op":"subscribe","id":"d"})");
  auto msgs = Drain(*s);
  REQUIRE(msgs.size() == 1);
  CHECK(Has(msgs, R"("code":"bad_request")"));
  CHECK(Has(msgs, "--max-subscriptions"));
  CHECK(f.hub->stats().subscription_limit == 1);
  CHECK(s->subscriptions() == 3);
  CHECK(f.closes.empty());
  // The three still work; replacing one at the limit is allowed.
  Publish(*f.hub, 1, "a", "u", "running");
  Publish(*f.hub, 2, "d", "u", "running");
  CHECK(EventIds(Drain(*s)) == std::vector<int64_t>{1});
  f.hub->OnText(*s, R"({"op":"subscribe","id":"c","filter":{"job_id":"d"}})");
  CHECK(Has(Drain(*s), R"("type":"subscribed")"));
  f.hub->OnText(*s, R"({"op":"unsubscribe","id":"a"})");
  f.hub->OnText(*s, R"({"op":"subscribe","id":"e"})");
  CHECK(Has(Drain(*s), R"({"type":"subscribed","id":"e")"));
  f.hub->Remove(s.get());
}

TEST_CASE("hub: a filter over the limits is a bad_request, counted; the connection stays") {
  Hub::Config c;
  c.parse.max_filter_values = 2;
  Fixture f(c);
  auto s = f.Open();
  Drain(*s);
  f.hub->OnText(*s, R"({"op":"subscribe","id":"x","filter":{"job_type":["a","b","c"]}})");
  auto msgs = Drain(*s);
  CHECK(Has(msgs, R"("code":"bad_request")"));
  CHECK(Has(msgs, "--max-filter-values"));
  CHECK(f.hub->stats().filter_limit == 1);
  CHECK(f.hub->stats().bad_requests == 1);
  CHECK(s->subscriptions() == 0);
  f.hub->OnText(*s, R"({"op":"subscribe","id":"x","filter":{"job_type":"t"}})");
  Publish(*f.hub, 1, "a", "u", "running");
  CHECK(EventIds(Drain(*s)) == std::vector<int64_t>{1});
  CHECK(f.closes.empty());
  f.hub->Remove(s.get());
}

namespace {
// Runs loop passes until the cursors have no work ready; returns the passes run.
int PumpAll(Hub& h, Session* drain = nullptr, std::vector<int64_t>* ids = nullptr) {
  int passes = 0;
  for (;;) {
    bool more = h.Pump();
    ++passes;
    if (drain) {
      auto got = EventIds(Drain(*drain));
      if (ids) ids->insert(ids->end(), got.begin(), got.end());
      if (!more && h.resuming_sessions() == 0) return passes;
    } else if (!more) {
      return passes;
    }
    REQUIRE(passes < 100000);
  }
}
}  // namespace

TEST_CASE("hub: since walks the history with a cursor: a bounded slice per message and per pass") {
  Hub::Config c;
  c.history = 10000;
  c.resume_entries_per_pass = 500;
  c.max_queue_bytes = 1 << 30;
  Fixture f(c, false);
  for (int64_t id = 1; id <= 3000; ++id) Publish(*f.hub, id, "j" + std::to_string(id % 7), "u", "running");
  auto s = f.Open();
  Drain(*s);
  f.hub->OnText(*s, R"({"op":"subscribe","id":"r","since":0})");
  // The message itself walked one slice.
  CHECK(f.hub->stats().resume_entries == Hub::kResumeEntriesPerMessage);
  std::vector<int64_t> ids = EventIds(Drain(*s));
  CHECK(ids.size() == Hub::kResumeEntriesPerMessage);
  CHECK(f.hub->resuming_sessions() == 1);
  // Each pass walks at most the pass budget.
  uint64_t before = f.hub->stats().resume_entries;
  CHECK(f.hub->Pump());
  CHECK(f.hub->stats().resume_entries - before == 500);
  auto got = EventIds(Drain(*s));
  ids.insert(ids.end(), got.begin(), got.end());
  PumpAll(*f.hub, s.get(), &ids);
  std::vector<int64_t> want;
  for (int64_t id = 1; id <= 3000; ++id) want.push_back(id);
  CHECK(ids == want);
  CHECK(f.hub->resuming_sessions() == 0);
  CHECK(f.hub->stats().resume_deferred > 0);
  // Then live.
  Publish(*f.hub, 3001, "j", "u", "running");
  CHECK(EventIds(Drain(*s)) == std::vector<int64_t>{3001});
  f.hub->Remove(s.get());
}

TEST_CASE("hub: many resumes share one pass budget") {
  Hub::Config c;
  c.history = 10000;
  c.resume_entries_per_pass = 1000;
  c.max_queue_bytes = 1 << 30;
  Fixture f(c, false);
  for (int64_t id = 1; id <= 2000; ++id) Publish(*f.hub, id, "j", "u", "running");
  std::vector<std::unique_ptr<Session>> ss;
  for (int i = 0; i < 20; ++i) {
    ss.push_back(f.Open());
    f.hub->OnText(*ss.back(), R"({"op":"subscribe","since":0})");
  }
  // 20 subscribes in one pass: together no more than one pass budget (plus nothing).
  CHECK(f.hub->stats().resume_entries <= 1000);
  for (int pass = 0; pass < 5; ++pass) {
    uint64_t before = f.hub->stats().resume_entries;
    CHECK(f.hub->Pump());
    CHECK(f.hub->stats().resume_entries - before <= 1000);
  }
  PumpAll(*f.hub);
  for (auto& s : ss) {
    CHECK(EventIds(Drain(*s)).size() == 2000);
    f.hub->Remove(s.get());
  }
}

TEST_CASE("hub: live events during a resume come after it, each once, in per-job order") {
  Hub::Config c;
  c.history = 10000;
  c.resume_entries_per_pass = 100;
  c.max_queue_bytes = 1 << 30;
  Fixture f(c, false);
  for (int64_t id = 1; id <= 1000; ++id) Publish(*f.hub, id, "j" + std::to_string(id % 3), "u", "running");
  auto s = f.Open();
  f.hub->OnText(*s, R"({"op":"subscribe","id":"live","filter":{"job_id":"j1"}})");
  f.hub->OnText(*s, R"({"op":"subscribe","id":"old","since":500,"filter":{"job_id":"j1"}})");
  std::vector<int64_t> ids = EventIds(Drain(*s));  // the message's own slice
  // Live events on j1 arrive while the resume is handed out.
  for (int64_t id = 1001; id <= 1030; ++id) {
    Publish(*f.hub, id, "j1", "u", "running");
    f.hub->Pump();
    auto got = EventIds(Drain(*s));
    ids.insert(ids.end(), got.begin(), got.end());
  }
  PumpAll(*f.hub, s.get(), &ids);
  std::vector<int64_t> want;
  for (int64_t id = 501; id <= 1000; ++id) if (id % 3 == 1) want.push_back(id);
  for (int64_t id = 1001; id <= 1030; ++id) want.push_back(id);
  CHECK(ids == want);
  // A second resume while the first is handed out: the same events once more at most,
  // never out of order for it, and the live ones once.
  ids.clear();
  f.hub->OnText(*s, R"({"op":"subscribe","id":"a","since":500})");
  f.hub->OnText(*s, R"({"op":"subscribe","id":"b","since":700})");
  CHECK(f.hub->resuming_sessions() == 1);
  Publish(*f.hub, 1031, "j1", "u", "running");
  auto got = EventIds(Drain(*s));
  ids.insert(ids.end(), got.begin(), got.end());
  CHECK(std::count(ids.begin(), ids.end(), 1031) == 0);  // held behind the resumes
  PumpAll(*f.hub, s.get(), &ids);
  Publish(*f.hub, 1032, "j2", "u", "running");
  got = EventIds(Drain(*s));
  ids.insert(ids.end(), got.begin(), got.end());
  CHECK(std::count(ids.begin(), ids.end(), 1030) == 2);  // in both resumes
  CHECK(std::count(ids.begin(), ids.end(), 1031) == 1);  // live: once
  CHECK(std::count(ids.begin(), ids.end(), 1032) == 1);
  CHECK(ids.size() == 530 + 330 + 2);
  CHECK(ids[ids.size() - 3] == 1030);
  CHECK(ids[ids.size() - 2] == 1031);
  f.hub->Remove(s.get());
}

TEST_CASE("hub: a resume waits for queue room instead of closing; falling behind the history is a gap, then 1013") {
  Hub::Config c;
  c.history = 50;
  c.max_queue_bytes = 2048;
  Fixture f(c, false);
  for (int64_t id = 1; id <= 40; ++id) Publish(*f.hub, id, "j", "u", "running");
  auto s = f.Open();
  Drain(*s);
  f.hub->OnText(*s, R"({"op":"subscribe","since":0})");
  CHECK(f.closes.empty());
  CHECK(s->out().bytes() <= 2048);
  auto first = EventIds(Drain(*s));
  REQUIRE(!first.empty());
  CHECK(first.size() < 40);
  f.hub->Pump();
  CHECK(f.closes.empty());
  CHECK(s->out().bytes() <= 2048);
  // It stops reading: the history moves on past what it still has to hand out.
  for (int64_t id = 41; id <= 140; ++id) Publish(*f.hub, id, "j", "u", "running");
  CHECK(s->out().bytes() <= 2048);
  Drain(*s);
  f.hub->Pump();
  auto msgs = Drain(*s);
  CHECK(Has(msgs, R"({"type":"gap","id":"default","after":0})"));
  REQUIRE(f.closes.size() == 1);
  CHECK(f.closes[0] == std::make_pair(s->id(), uint16_t{1013}));
  CHECK(f.hub->stats().resume_behind == 1);
  f.hub->Remove(s.get());
  // One that reads gets everything, with no close.
  Fixture g(c, false);
  for (int64_t id = 1; id <= 40; ++id) Publish(*g.hub, id, "j", "u", "running");
  auto t = g.Open();
  Drain(*t);
  g.hub->OnText(*t, R"({"op":"subscribe","since":0})");
  std::vector<int64_t> ids = EventIds(Drain(*t));
  PumpAll(*g.hub, t.get(), &ids);
  CHECK(ids.size() == 40);
  CHECK(g.closes.empty());
  g.hub->Remove(t.get());
}

TEST_CASE("hub: a resume from the history is exact on any replica (events before `since` with txid >= its horizon)") {
  Fixture f;
  // This replica's stream: 11 (txid 101) is delivered before 10 — as a replica that read
  // 11's notification first while another replica (or the database's id order) has 10
  // first. 10 was written while 101 was still running: its horizon is 101.
  f.hub->Publish(TxEv(9, 99, 99, "a", "u", "running"));
  f.hub->Publish(TxEv(11, 101, 100, "b", "u", "running"));
  f.hub->Publish(TxEv(10, 102, 101, "c", "u", "running"));
  f.hub->Publish(TxEv(12, 103, 103, "d", "u", "running"));
  auto s = f.Open();
  Drain(*s);
  // A client that saw ..., 9, 10 on another replica (where 11 came after 10) resumes
  // from 10: it gets 11 (txid 101 >= 101), not 9 (99 < 101), not 10 itself, then 12.
  f.hub->OnText(*s, R"({"op":"subscribe","id":"x","since":10})");
  CHECK(EventIds(Drain(*s)) == std::vector<int64_t>{11, 12});
  CHECK(f.hub->stats().resumes_widened == 1);
  CHECK(f.queries.empty());
  // From 11: 10 came after it here; nothing before 11 has txid >= 100 except 11 itself.
  auto t = f.Open();
  Drain(*t);
  f.hub->OnText(*t, R"({"op":"subscribe","id":"y","since":11})");
  CHECK(EventIds(Drain(*t)) == std::vector<int64_t>{10, 12});
  // Live events follow, once each.
  Publish(*f.hub, 13, "a", "u", "completed");
  CHECK(EventIds(Drain(*s)) == std::vector<int64_t>{13});
  CHECK(EventIds(Drain(*t)) == std::vector<int64_t>{13});
  f.hub->Remove(s.get());
  f.hub->Remove(t.get());
}

TEST_CASE("hub: without a horizon (a schema before 005) a live server resumes from the database") {
  Fixture f;
  Event e = Ev(5, "a", "u", "running");
  e.horizon = 0;
  f.hub->Publish(std::move(e));
  Publish(*f.hub, 6, "a", "u", "completed");
  auto s = f.Open();
  Drain(*s);
  f.hub->OnText(*s, R"({"op":"subscribe","id":"x","since":5})");
  REQUIRE(f.queries.size() == 1);
  CHECK(f.queries[0].rq.since == 5);
  f.hub->Remove(s.get());
  // In replay (no database) the history's own order is the stream: forward from `since`.
  Fixture r({}, false);
  Event e2 = Ev(5, "a", "u", "running");
  e2.horizon = 0;
  r.hub->Publish(std::move(e2));
  Publish(*r.hub, 6, "a", "u", "completed");
  auto s2 = r.Open();
  Drain(*s2);
  r.hub->OnText(*s2, R"({"op":"subscribe","id":"x","since":5})");
  CHECK(EventIds(Drain(*s2)) == std::vector<int64_t>{6});
  r.hub->Remove(s2.get());
}

TEST_CASE("hub: a resume from the database larger than the send queue is handed out as it drains") {
  Hub::Config c;
  c.history = 2;
  c.max_queue_bytes = 2048;
  Fixture f(c);
  for (int64_t id = 1; id <= 3; ++id) Publish(*f.hub, id, "j", "u", "running");
  auto s = f.Open();
  Drain(*s);
  f.hub->OnText(*s, R"({"op":"subscribe","id":"d","since":1})");
  Drain(*s);
  REQUIRE(f.queries.size() == 1);
  Publish(*f.hub, 500, "k", "u", "running");  // held meanwhile
  pg::ResumeRows rows{true, {}};
  for (int64_t id = 2; id <= 200; ++id) rows.payloads.push_back(Ev(id, "j" + std::to_string(id % 7), "u", "running").json);
  f.queries[0].Answer(std::move(rows));
  std::vector<int64_t> got;
  for (int round = 0; round < 400 && got.size() < 200; ++round) {
    auto ids = EventIds(Drain(*s));
    got.insert(got.end(), ids.begin(), ids.end());
    f.hub->Pump();
  }
  CHECK(f.closes.empty());  // never taken for a slow consumer
  std::vector<int64_t> want;
  for (int64_t id = 2; id <= 200; ++id) want.push_back(id);
  want.push_back(500);
  CHECK(got == want);
  CHECK(f.hub->stats().resumes_from_database == 1);
  Publish(*f.hub, 501, "k", "u", "completed");
  CHECK(EventIds(Drain(*s)) == std::vector<int64_t>{501});
  f.hub->Remove(s.get());
}

TEST_CASE("hub: more live events than --max-held-events while pending: gap; a resume over --max-resume-rows: gap") {
  Hub::Config c;
  c.history = 2;
  c.max_held_events = 3;
  Fixture f(c);
  for (int64_t id = 1; id <= 3; ++id) Publish(*f.hub, id, "j", "u", "running");
  auto s = f.Open();
  Drain(*s);
  f.hub->OnText(*s, R"({"op":"subscribe","id":"d","since":1})");
  Drain(*s);
  for (int64_t id = 10; id <= 14; ++id) Publish(*f.hub, id, "j", "u", "running");  // 5 > 3
  f.queries[0].Answer(pg::ResumeRows{true, {Ev(2, "j", "u", "running").json}});
  auto msgs = Drain(*s);
  CHECK(Has(msgs, R"({"type":"gap","id":"d")"));
  CHECK(f.hub->stats().hold_overflows == 1);
  Publish(*f.hub, 15, "j", "u", "running");  // live again after the gap
  CHECK(EventIds(Drain(*s)) == std::vector<int64_t>{15});
  f.hub->Remove(s.get());

  Hub::Config c2;
  c2.history = 2;
  c2.max_resume_rows = 10;
  Fixture g(c2);
  for (int64_t id = 1; id <= 3; ++id) Publish(*g.hub, id, "j", "u", "running");
  auto t = g.Open();
  Drain(*t);
  g.hub->OnText(*t, R"({"op":"subscribe","id":"d","since":1})");
  pg::ResumeRows many{true, {}};
  for (int64_t id = 2; id <= 20; ++id) many.payloads.push_back(Ev(id, "j", "u", "running").json);
  g.queries[0].Answer(std::move(many));
  CHECK(Has(Drain(*t), R"({"type":"gap","id":"d")"));
  CHECK(g.hub->stats().resume_rows_refused == 1);
  g.hub->Remove(t.get());
}

TEST_CASE("hub: a snapshot waits for the queue to drain instead of closing a connection that is behind") {
  Hub::Config c;
  c.max_queue_bytes = 1024;
  Fixture f(c);
  auto s = f.Open();
  f.hub->OnText(*s, R"({"op":"subscribe","id":"live"})");
  f.hub->OnText(*s, R"({"op":"subscribe","id":"snap","snapshot":true})");
  Drain(*s);
  // The live subscription fills the queue close to the limit (the client has not read).
  int64_t id = 1;
  while (s->out().bytes() + 200 < c.max_queue_bytes) Publish(*f.hub, id++, "a", "u", "running");
  s->out().Push(std::make_shared<const std::string>(std::string(300, 'x')));  // a reply over the limit now
  REQUIRE(s->out().bytes() > c.max_queue_bytes);
  f.queries[0].Answer(pg::SnapshotRows{R"([{"id":"a"}])", {}});
  CHECK(f.closes.empty());
  s->out().Clear();  // the client reads
  f.hub->Pump();
  auto msgs = Drain(*s);
  CHECK(Has(msgs, R"({"type":"snapshot","id":"snap")"));
  f.hub->Remove(s.get());
}

TEST_CASE("hub: actions are authorized by the token and answered ack or the database's refusal") {
  Hub::Config c;
  c.secret = "k";
  Fixture f(c);
  auto admin = f.hub->Open(*f.hub->Authenticate(Token(nullptr, "admin", 0), 1000), true);
  auto alice = f.hub->Open(*f.hub->Authenticate(Token("alice", "authenticated", 0), 1000), true);
  auto anon = f.hub->Open(Principal::Open(), false);
  Drain(*admin);
  Drain(*alice);
  Drain(*anon);

  f.hub->OnText(*admin, R"({"op":"action","id":"a1","action":"cancel","job_id":"j1"})");
  REQUIRE(f.reads.actions.size() == 1);
  CHECK(f.reads.actions[0].first.actor == "role:admin");
  CHECK(f.reads.actions[0].first.only_user.empty());
  CHECK(f.reads.actions[0].first.action == "cancel");
  f.reads.actions[0].second(pg::ActionResult{"", "", 77});
  CHECK(Drain(*admin) == std::vector<std::string>{R"({"type":"ack","id":"a1","action":"cancel","job_id":"j1","event_id":77})"});

  // A user: forbidden unless --allow-user-actions; nothing reaches the database.
  f.hub->OnText(*alice, R"({"op":"action","id":"a2","action":"retry_now","job_id":"j1"})");
  auto m = Drain(*alice);
  CHECK(Has(m, R"("code":"forbidden")"));
  CHECK(Has(m, R"("id":"a2")"));
  CHECK(Has(m, "--allow-user-actions"));
  CHECK(f.reads.actions.size() == 1);
  // Unauthenticated: forbidden.
  f.hub->OnText(*anon, R"({"op":"action","id":"a3","action":"cancel","job_id":"j1"})");
  CHECK(Has(Drain(*anon), R"("code":"forbidden")"));
  // Refusals by the database, and an answer that never came.
  f.hub->OnText(*admin, R"({"op":"action","id":"a4","action":"cancel","job_id":"gone"})");
  f.reads.actions.back().second(pg::ActionResult{"not_found", "no job 'gone'", 0});
  CHECK(Has(Drain(*admin), R"({"type":"error","code":"not_found","message":"no job 'gone'","id":"a4"})"));
  f.hub->OnText(*admin, R"({"op":"action","id":"a5","action":"cancel","job_id":"j1"})");
  f.reads.actions.back().second(Status::Error("connection lost"));
  CHECK(Has(Drain(*admin), R"("code":"unavailable")"));
  // Bad requests never reach the database.
  f.hub->OnText(*admin, R"({"op":"action","id":"a6","action":"explode","job_id":"j1"})");
  CHECK(Has(Drain(*admin), "unknown action 'explode'"));
  f.hub->OnText(*admin, R"({"op":"action","id":"a7","action":"cancel"})");
  CHECK(Has(Drain(*admin), "action needs a job_id"));
  f.hub->OnText(*admin, R"({"op":"action","id":"a8","action":"set_priority","job_id":"j1"})");
  CHECK(Has(Drain(*admin), "set_priority needs an arg"));
  CHECK(f.reads.actions.size() == 3);
  CHECK(f.hub->stats().actions_ok == 1);
  CHECK(f.hub->stats().actions_failed == 1);
  // The connection went before the answer: the answer is dropped.
  f.hub->OnText(*admin, R"({"op":"action","id":"a9","action":"disable","job_id":"j1"})");
  f.hub->Remove(admin.get());
  f.reads.actions.back().second(pg::ActionResult{"", "", 78});
  f.hub->Remove(alice.get());
  f.hub->Remove(anon.get());

  // --allow-user-actions: a user acts on their own jobs only (the database checks it).
  Hub::Config c2 = c;
  c2.allow_user_actions = true;
  Fixture g(c2);
  auto bob = g.hub->Open(*g.hub->Authenticate(Token("bob", "authenticated", 0), 1000), true);
  g.hub->OnText(*bob, R"({"op":"action","id":"b1","action":"set_priority","job_id":"j9","arg":"high"})");
  REQUIRE(g.reads.actions.size() == 1);
  CHECK(g.reads.actions[0].first.only_user == "bob");
  CHECK(g.reads.actions[0].first.actor == "bob");
  CHECK(g.reads.actions[0].first.arg == "high");
  g.reads.actions[0].second(pg::ActionResult{"forbidden", "job 'j9' is not a job of user 'bob'", 0});
  auto refused = Drain(*bob);
  CHECK(Has(refused, R"({"type":"error","code":"forbidden","message":"no job \"j9\" of yours","id":"b1"})"));
  // An unknown job reads the same to a user (no probing for other users' job ids).
  g.hub->OnText(*bob, R"({"op":"action","id":"b2","action":"cancel","job_id":"j9"})");
  g.reads.actions[1].second(pg::ActionResult{"not_found", "unknown job 'j9'", 0});
  CHECK(Has(Drain(*bob), R"({"type":"error","code":"forbidden","message":"no job \"j9\" of yours","id":"b2"})"));
  g.hub->Remove(bob.get());
}

TEST_CASE("hub: without a secret, actions from loopback peers only; none in replay") {
  Fixture f;
  auto local = f.hub->Open(Principal::Open(), true, true);
  auto remote = f.hub->Open(Principal::Open(), true, false);
  Drain(*local);
  Drain(*remote);
  f.hub->OnText(*remote, R"({"op":"action","id":"r","action":"cancel","job_id":"j1"})");
  CHECK(Has(Drain(*remote), "loopback peers only"));
  f.hub->OnText(*local, R"({"op":"action","id":"l","action":"cancel","job_id":"j1"})");
  REQUIRE(f.reads.actions.size() == 1);
  CHECK(f.reads.actions[0].first.actor == "local");
  f.hub->Remove(local.get());
  f.hub->Remove(remote.get());

  Hub::Config rc;
  rc.mode = "replay";
  Fixture replay(rc, /*query=*/false);
  auto s = replay.hub->Open(Principal::Open(), true, true);
  CHECK(Has(Drain(*s), R"("mode":"replay")"));
  s->out();
  replay.hub->OnText(*s, R"({"op":"action","id":"x","action":"cancel","job_id":"j1"})");
  replay.hub->OnText(*s, R"({"op":"history","id":"h","job_id":"j1"})");
  replay.hub->OnText(*s, R"({"op":"counts"})");
  auto m = Drain(*s);
  REQUIRE(m.size() == 3);
  for (const auto& x : m) CHECK(x.find(R"("code":"unavailable")") != std::string::npos);
  replay.hub->Remove(s.get());
}

TEST_CASE("hub: a job's history, authorized, bounded, paged, cancelled with its connection") {
  Hub::Config c;
  c.secret = "k";
  c.max_history_events = 3;
  Fixture f(c);
  auto alice = f.hub->Open(*f.hub->Authenticate(Token("alice", "authenticated", 0), 1000), true);
  auto admin = f.hub->Open(*f.hub->Authenticate(Token("root", "service_role", 0), 1000), true);
  Drain(*alice);
  Drain(*admin);
  f.hub->OnText(*alice, R"({"op":"history","id":"h1","job_id":"j1","limit":50,"before":90})");
  REQUIRE(f.reads.histories.size() == 1);
  const auto& q = f.reads.histories[0].first;
  CHECK(q.only_user == "alice");
  CHECK(q.limit == 3);  // lowered to --max-history-events
  CHECK(q.before == 90);
  // One row more than the limit: "more".
  f.reads.histories[0].second(pg::HistoryRows{{R"({"id":9})", R"({"id":8})", R"({"id":7})", R"({"id":6})"}});
  CHECK(Drain(*alice) == std::vector<std::string>{
      R"({"type":"history","id":"h1","job_id":"j1","events":[{"id":9},{"id":8},{"id":7}],"more":true})"});
  f.hub->OnText(*admin, R"({"op":"history","id":"h2","job_id":"j1","source":"scheduled_jobs"})");
  REQUIRE(f.reads.histories.size() == 2);
  CHECK(f.reads.histories[1].first.only_user.empty());
  CHECK(f.reads.histories[1].first.source == "scheduled_jobs");
  f.reads.histories[1].second(pg::HistoryRows{{R"({"id":5})"}});
  CHECK(Drain(*admin) == std::vector<std::string>{
      R"({"type":"history","id":"h2","job_id":"j1","events":[{"id":5}],"more":false})"});
  // Malformed requests.
  f.hub->OnText(*admin, R"({"op":"history","id":"h3"})");
  CHECK(Has(Drain(*admin), "history needs a job_id"));
  f.hub->OnText(*admin, R"({"op":"history","id":"h4","job_id":"j","limit":0})");
  CHECK(Has(Drain(*admin), "limit must be a positive integer"));
  // A read answered inside the call (failed at once) is not kept as outstanding: only
  // the read really in flight is cancelled when the connection goes.
  f.reads.fail_at_once = true;
  f.hub->OnText(*alice, R"({"op":"history","id":"h4b","job_id":"j1"})");
  CHECK(Has(Drain(*alice), R"("code":"unavailable")"));
  f.reads.fail_at_once = false;
  f.hub->OnText(*alice, R"({"op":"history","id":"h5","job_id":"j1"})");
  f.hub->Remove(alice.get());
  CHECK(f.reads.console_cancelled == std::vector<pg::ClientReads::Ticket>{FakeReads::kConsole + 4});
  f.hub->Remove(admin.get());
}

TEST_CASE("hub: counts for privileged viewers, read once, kept from events, sent at most every interval") {
  Hub::Config c;
  c.secret = "k";
  c.counts_interval_ms = 200;
  c.counts_refresh_ms = 0;
  Fixture f(c);
  auto alice = f.hub->Open(*f.hub->Authenticate(Token("alice", "authenticated", 0), 1000), true);
  auto a1 = f.hub->Open(*f.hub->Authenticate(Token("root", "admin", 0), 1000), true);
  auto a2 = f.hub->Open(*f.hub->Authenticate(Token("ops", "service_role", 0), 1000), true);
  Drain(*alice);
  Drain(*a1);
  Drain(*a2);
  f.hub->OnText(*alice, R"({"op":"counts","id":"c"})");
  CHECK(Has(Drain(*alice), R"("code":"forbidden")"));
  CHECK_FALSE(f.hub->Tick(0).has_value());  // nobody watches: no read
  CHECK(f.reads.counts.empty());

  f.hub->OnText(*a1, R"({"op":"counts"})");
  f.hub->OnText(*a2, R"({"op":"counts"})");
  f.hub->Tick(1000);
  REQUIRE(f.reads.counts.size() == 1);  // one read for both viewers
  f.hub->Tick(1001);
  CHECK(f.reads.counts.size() == 1);    // not again while it is in flight
  // An event while the read is in flight, not seen by its snapshot (txid 1012 >= xmax).
  f.hub->Publish(Ev(12, "j1", "alice", "pending"));
  pg::CountsRows rows;
  rows.rows = {{"pending", "t", 4}, {"running", "t", 1}};
  rows.snapshot = "1010:1011:";
  f.reads.counts[0](std::move(rows));
  f.hub->Tick(1002);
  const std::string first = R"({"type":"counts","as_of":12,"counts":{"pending":{"t":5},"running":{"t":1}}})";
  CHECK(Drain(*a1) == std::vector<std::string>{first});
  CHECK(Drain(*a2) == std::vector<std::string>{first});
  CHECK(Drain(*alice).empty());
  // Two changes within the interval: one message, after it.
  Event start = Ev(13, "j1", "alice", "running");
  start.old_status = "pending";
  f.hub->Publish(std::move(start));
  Event done = Ev(14, "j2", "alice", "completed");
  done.old_status = "running";
  f.hub->Publish(std::move(done));
  auto wait = f.hub->Tick(1100);
  REQUIRE(wait.has_value());
  CHECK(*wait == 102);
  CHECK(Drain(*a1).empty());
  f.hub->Tick(1202);
  const std::string second = R"({"type":"counts","as_of":14,"counts":{"completed":{"t":1},"pending":{"t":4},"running":{"t":1}}})";
  CHECK(Drain(*a1) == std::vector<std::string>{second});
  CHECK(Drain(*a2) == std::vector<std::string>{second});
  CHECK(f.hub->stats().counts_messages == 2);
  // Nothing changed: nothing sent. A refresh (after a reconnect) reads again.
  CHECK_FALSE(f.hub->Tick(2000).has_value());
  f.hub->RefreshCounts();
  f.hub->Tick(2001);
  CHECK(f.reads.counts.size() == 2);
  // A failed read is retried after a second, the totals kept meanwhile.
  f.reads.counts[1](Status::Error("timeout"));
  auto retry = f.hub->Tick(2002);
  REQUIRE(retry.has_value());
  CHECK(f.reads.counts.size() == 2);
  f.hub->Tick(3100);
  CHECK(f.reads.counts.size() == 3);
  // A read refused at once (the reads session reconnecting) is tried again a second
  // later: Tick asks to be called then, even with nothing else going on.
  f.reads.counts[2](pg::CountsRows{{{"pending", "t", 4}}, "2000:2000:"});
  f.hub->Tick(3500);  // sends the new totals: nothing else is pending
  Drain(*a1);
  f.reads.refuse = true;
  f.hub->RefreshCounts();
  auto again = f.hub->Tick(4000);
  REQUIRE(again.has_value());
  CHECK(*again == 1000);
  f.reads.refuse = false;
  f.hub->Tick(5000);
  CHECK(f.reads.counts.size() == 4);
  // A viewer whose queue is over half of --max-queue-bytes skips totals (never closed for
  // them) and gets the newest once it has drained.
  a1->out().Push(std::make_shared<const std::string>(std::string(c.max_queue_bytes / 2 + 1, 'x')));
  Drain(*a2);
  f.hub->Publish(TxEv(15, 2100, 2100, "j3", "alice", "pending"));  // after the last read's snapshot
  f.hub->Tick(6000);
  CHECK(Drain(*a2).size() == 1);
  CHECK(f.closes.empty());
  CHECK(a1->out().frames() == 1);  // only the filler: the totals were skipped
  a1->out().Consume(a1->out().bytes());
  auto later = f.hub->Tick(6300);
  auto got = Drain(*a1);
  REQUIRE(got.size() == 1);
  CHECK(got[0].find(R"("as_of":15)") != std::string::npos);
  (void)later;
  // Stop: no more messages to that viewer.
  f.hub->OnText(*a2, R"({"op":"counts","on":false})");
  CHECK(f.hub->counts_viewers() == 1);
  f.hub->Remove(a2.get());
  f.hub->Remove(a1.get());
  CHECK(f.hub->counts_viewers() == 0);
  f.hub->Remove(alice.get());
}
