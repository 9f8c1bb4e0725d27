// The routing index against brute force: the old Route logic (every session, every
// subscription, MaySee and Filter::Matches) decides who gets each event; the index (pure,
// then inside the hub) must offer/deliver to exactly those.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/event.h"
#include "hub/auth.h"
#include "hub/hub.h"
#include "hub/route_index.h"

using namespace reactor;
using namespace reactor::hub;

namespace {

Event RandomEvent(std::mt19937& rng, int64_t id) {
  static const char* kStatus[] = {"pending", "running", "completed", "failed"};
  static const char* kType[] = {"a", "b", "c"};
  Event ev;
  ev.id = id;
  ev.kind = "status";
  int job = static_cast<int>(rng() % 12);
  ev.job_id = job == 11 ? "" : "j" + std::to_string(job);  // some events have no job_id
  int user = static_cast<int>(rng() % 6);
  ev.has_user = user < 5;
  ev.user_id = ev.has_user ? "u" + std::to_string(user) : "";
  ev.status = kStatus[rng() % 4];
  ev.job_type = kType[rng() % 3];
  ev.json = "{\"id\":" + std::to_string(id) + ",\"kind\":\"status\",\"job_id\":\"" + ev.job_id +
            "\",\"status\":\"" + ev.status + "\"}";
  return ev;
}

Filter RandomFilter(std::mt19937& rng) {
  static const char* kStatus[] = {"pending", "running", "completed", "failed"};
  static const char* kType[] = {"a", "b", "c"};
  Filter f;
  if (rng() % 3 == 0) f.job_id = "j" + std::to_string(rng() % 12);
  if (rng() % 3 == 0) f.user_id = "u" + std::to_string(rng() % 6);
  if (rng() % 3 == 0) f.statuses.push_back(kStatus[rng() % 4]);
  if (rng() % 4 == 0) f.statuses.push_back(kStatus[rng() % 4]);
  if (rng() % 3 == 0) f.job_types.push_back(kType[rng() % 3]);
  return f;
}

Principal RandomPrincipal(std::mt19937& rng) {
  if (rng() % 4 == 0) return Principal::Open();
  return Principal{"u" + std::to_string(rng() % 6), false, 0, ""};
}

struct Model {
  Principal who;
  std::map<std::string, Filter> subs;  // id -> authorized filter
};

bool BruteForce(const Model& m, const Event& ev) {
  if (!m.who.MaySee(ev)) return false;
  for (const auto& [id, f] : m.subs) {
    if (f.Matches(ev)) return true;
  }
  return false;
}

std::string FilterJson(const Filter& f) {
  std::string j = "{";
  auto add = [&](const std::string& k, const std::string& v) {
    if (j.size() > 1) j += ",";
    j += "\"" + k + "\":" + v;
  };
  if (!f.job_id.empty()) add("job_id", "\"" + f.job_id + "\"");
  if (!f.user_id.empty()) add("user_id", "\"" + f.user_id + "\"");
  auto list = [](const std::vector<std::string>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ",\"" : "\"") + v[i] + "\"";
    return s + "]";
  };
  if (!f.statuses.empty()) add("status", list(f.statuses));
  if (!f.job_types.empty()) add("job_type", list(f.job_types));
  return j + "}";
}

// Event ids queued to `s` (consumed).
std::vector<int64_t> QueuedEventIds(Session& s) {
  std::vector<int64_t> ids;
  size_t total = 0;
  for (const auto& c : s.out().Gather(1 << 20)) {
    std::string_view f = c.view();
    total += f.size();
    size_t len = static_cast<uint8_t>(f[1]) & 0x7f, off = 2;
    if (len == 126) off = 4;
    std::string_view text = f.substr(off);
    if (text.rfind("{\"type\":\"event\"", 0) != 0) continue;
    size_t at = text.find("\"id\":");
    ids.push_back(std::stoll(std::string(text.substr(at + 5, 20))));
  }
  s.out().Consume(total);
  return ids;
}

}  // namespace

TEST_CASE("route index: filed under job, else user, else broad; counted per subscription") {
  RouteIndex ix;
  Filter by_job{"j1", "u1", {}, {}};
  Filter by_user{"", "u2", {"t"}, {}};
  Filter broad{"", "", {"t"}, {"failed"}};
  CHECK(RouteIndex::KeyOf(by_job) == RouteIndex::Key{RouteIndex::Key::Kind::kJob, "j1"});
  CHECK(RouteIndex::KeyOf(by_user) == RouteIndex::Key{RouteIndex::Key::Kind::kUser, "u2"});
  CHECK(RouteIndex::KeyOf(broad) == RouteIndex::Key{});
  ix.Add(RouteIndex::KeyOf(by_job), 1);
  ix.Add(RouteIndex::KeyOf(by_job), 1);  // two subscriptions of one session
  ix.Add(RouteIndex::KeyOf(by_user), 1);
  ix.Add(RouteIndex::KeyOf(by_user), 2);
  ix.Add(RouteIndex::KeyOf(broad), 3);
  Event ev;
  ev.job_id = "j1";
  ev.user_id = "u2";
  ev.has_user = true;
  std::vector<uint64_t> out;
  ix.Candidates(ev, out);
  CHECK(out == std::vector<uint64_t>{1, 2, 3});  // each once
  ev.job_id = "j9";
  ev.has_user = false;
  ev.user_id.clear();
  ix.Candidates(ev, out);
  CHECK(out == std::vector<uint64_t>{3});
  ix.Remove(RouteIndex::KeyOf(by_job), 1);
  ev.job_id = "j1";
  ix.Candidates(ev, out);
  CHECK(out == std::vector<uint64_t>{1, 3});  // still filed once under j1
  ix.Remove(RouteIndex::KeyOf(by_job), 1);
  ix.Remove(RouteIndex::KeyOf(by_user), 1);
  ix.Remove(RouteIndex::KeyOf(by_user), 2);
  ix.Remove(RouteIndex::KeyOf(broad), 3);
  ix.Candidates(ev, out);
  CHECK(out.empty());
  CHECK(ix.entries() == 0);
}

TEST_CASE("route index: randomized, the recipients are exactly brute force's (pure)") {
  std::mt19937 rng(12345);
  for (int round = 0; round < 20; ++round) {
    RouteIndex ix;
    std::map<uint64_t, Model> sessions;
    std::map<std::pair<uint64_t, std::string>, RouteIndex::Key> filed;
    for (uint64_t sid = 1; sid <= 60; ++sid) {
      Model m{RandomPrincipal(rng), {}};
      int n = static_cast<int>(rng() % 4);
      for (int i = 0; i < n; ++i) {
        auto f = AuthorizeFilter(m.who, RandomFilter(rng));
        if (!f) continue;
        std::string id = "s" + std::to_string(i);
        m.subs[id] = *f;
        filed[{sid, id}] = RouteIndex::KeyOf(*f);
        ix.Add(RouteIndex::KeyOf(*f), sid);
      }
      sessions[sid] = std::move(m);
    }
    std::vector<uint64_t> cand;
    for (int64_t e = 1; e <= 300; ++e) {
      if (rng() % 5 == 0) {  // unsubscribe or replace one
        auto it = std::next(filed.begin(), static_cast<long>(rng() % filed.size()));
        auto [sid, id] = it->first;
        ix.Remove(it->second, sid);
        filed.erase(it);
        sessions[sid].subs.erase(id);
        if (rng() % 2) {
          auto f = AuthorizeFilter(sessions[sid].who, RandomFilter(rng));
          if (f) {
            sessions[sid].subs[id] = *f;
            filed[{sid, id}] = RouteIndex::KeyOf(*f);
            ix.Add(RouteIndex::KeyOf(*f), sid);
          }
        }
      }
      Event ev = RandomEvent(rng, e);
      ix.Candidates(ev, cand);
      std::set<uint64_t> got, want;
      for (uint64_t sid : cand) {
        if (BruteForce(sessions[sid], ev)) got.insert(sid);
      }
      for (const auto& [sid, m] : sessions) {
        if (BruteForce(m, ev)) want.insert(sid);
      }
      REQUIRE(got == want);
    }
  }
}

TEST_CASE("route index: randomized through the hub, each recipient gets each event once, nobody else") {
  std::mt19937 rng(777);
  Hub::Config c;
  c.max_queue_bytes = 1 << 30;
  Hub::Hooks h;
  h.wake = [](Session&) {};
  Hub hub(c, std::move(h));
  std::vector<std::unique_ptr<Session>> open;
  std::map<uint64_t, Model> models;
  std::map<uint64_t, std::vector<int64_t>> want;
  for (int i = 0; i < 80; ++i) {
    Model m{RandomPrincipal(rng), {}};
    auto s = hub.Open(m.who, true);
    models[s->id()] = std::move(m);
    open.push_back(std::move(s));
  }
  auto subscribe_random = [&](Session& s) {
    Filter f = RandomFilter(rng);
    std::string id = "s" + std::to_string(rng() % 4);
    hub.OnText(s, R"({"op":"subscribe","id":")" + id + R"(","filter":)" + FilterJson(f) + "}");
    if (auto a = AuthorizeFilter(models[s.id()].who, f)) models[s.id()].subs[id] = *a;
    // (a forbidden one leaves a subscription of that id as it was)
  };
  for (auto& s : open) {
    for (int k = static_cast<int>(rng() % 4); k > 0; --k) subscribe_random(*s);
  }
  for (int64_t e = 1; e <= 2000; ++e) {
    int action = static_cast<int>(rng() % 20);
    if (action == 0) {
      auto& s = *open[rng() % open.size()];
      auto& subs = models[s.id()].subs;
      if (!subs.empty()) {
        auto it = std::next(subs.begin(), static_cast<long>(rng() % subs.size()));
        hub.OnText(s, R"({"op":"unsubscribe","id":")" + it->first + "\"}");
        subs.erase(it);
      }
    } else if (action == 1) {
      subscribe_random(*open[rng() % open.size()]);
    } else if (action == 2) {  // a session goes, another comes
      size_t i = rng() % open.size();
      uint64_t gone = open[i]->id();
      CHECK(QueuedEventIds(*open[i]) == want[gone]);
      hub.Remove(open[i].get());
      want.erase(gone);
      models.erase(gone);
      Model m{RandomPrincipal(rng), {}};
      open[i] = hub.Open(m.who, true);
      models[open[i]->id()] = std::move(m);
    }
    Event ev = RandomEvent(rng, e);
    for (const auto& [sid, m] : models) {
      if (BruteForce(m, ev)) want[sid].push_back(e);
    }
    hub.Publish(std::move(ev));
    if (e % 97 == 0) {
      for (auto& s : open) {
        CHECK(QueuedEventIds(*s) == want[s->id()]);
        want[s->id()].clear();
      }
    }
  }
  for (auto& s : open) {
    CHECK(QueuedEventIds(*s) == want[s->id()]);
    hub.Remove(s.get());
  }
  CHECK(hub.index().entries() == 0);
}
