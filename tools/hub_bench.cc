// The hub's work per published event beside N idle sessions of other users, in process
// (no sockets): the routing half of the fan-out at connection counts one process cannot
// open where the open-file limit is low. Run by tools/bench (BENCH_ONLY=hub); prints
// figures, never a verdict.
//
//   hub_bench [EVENTS] [N...]     defaults: 200000 events; N = 0 10000 50000 100000
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "core/event.h"
#include "hub/hub.h"

using namespace reactor;
using namespace reactor::hub;

namespace {

double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

long RssBytes() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, rss = 0;
  f >> pages >> rss;
  return rss * sysconf(_SC_PAGESIZE);
}

void Empty(Session& s) { s.out().Consume(s.out().bytes()); }

struct Run {
  double ns_per_event = 0;
  double candidates_per_event = 0;
  double bytes_per_session = 0;
  uint64_t delivered = 0;
};

Run Measure(size_t idle, size_t events) {
  Hub::Config c;
  c.history = 1000;
  Hub::Hooks h;
  h.wake = [](Session&) {};
  h.close = [](Session&, uint16_t, const std::string&) {};
  Hub hub(c, h);
  const long rss0 = RssBytes();
  std::vector<std::unique_ptr<Session>> others;
  others.reserve(idle);
  for (size_t i = 0; i < idle; ++i) {
    auto s = hub.Open(Principal{"user" + std::to_string(i), false, 0, ""}, true);
    hub.OnText(*s, R"({"op":"subscribe","id":"mine"})");
    Empty(*s);
    others.push_back(std::move(s));
  }
  const long rss1 = RssBytes();
  auto target = hub.Open(Principal{"target", false, 0, ""}, true);
  hub.OnText(*target, R"({"op":"subscribe","id":"mine","filter":{"job_type":"mail"}})");
  Empty(*target);

  EventParser parser;
  auto ev = parser.Parse(
      R"({"id":1,"kind":"status","job_id":"job_1","source":"scheduled_jobs","status":"running","old_status":"pending",)"
      R"("user_id":"target","job_type":"mail","at":"2026-11-30T12:00:00.000001Z","cause":"worker","actor":null,)"
      R"("action":null,"attempt":1,"progress":null,"message":null,"error":null,"result":null,"deadline":null,)"
      R"("priority":"medium","enabled":true,"scheduled_for":"2026-11-30T12:00:00Z"})");
  if (!ev) {
    std::fprintf(stderr, "hub_bench: %s\n", ev.error().c_str());
    std::exit(1);
  }
  const uint64_t cand0 = hub.stats().routed_candidates;
  const double t0 = CpuSeconds();
  for (size_t k = 0; k < events; ++k) {
    Event e = *ev;
    e.id = static_cast<int64_t>(k + 1);
    e.txid = e.horizon = 1000 + k;
    hub.Publish(std::move(e));
    if ((k & 63) == 63) Empty(*target);
  }
  const double t1 = CpuSeconds();
  Run r;
  r.delivered = hub.stats().frames;
  Empty(*target);
  r.ns_per_event = (t1 - t0) * 1e9 / static_cast<double>(events);
  r.candidates_per_event = static_cast<double>(hub.stats().routed_candidates - cand0) / static_cast<double>(events);
  r.bytes_per_session = idle ? static_cast<double>(rss1 - rss0) / static_cast<double>(idle) : 0;
  hub.Remove(target.get());
  for (auto& s : others) hub.Remove(s.get());
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  size_t events = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 200000;
  std::vector<size_t> sizes;
  for (int i = 2; i < argc; ++i) sizes.push_back(std::strtoull(argv[i], nullptr, 10));
  if (sizes.empty()) sizes = {0, 10000, 50000, 100000};
  std::printf("hub, in process: %zu events for one subscriber beside N idle sessions of other users\n", events);
  std::printf("  %9s  %12s  %8s  %16s  %22s\n", "N", "ns/event", "vs N=0", "candidates/event", "hub bytes/idle session");
  double base = 0;
  for (size_t n : sizes) {
    Run r = Measure(n, events);
    if (base == 0) base = r.ns_per_event;
    std::printf("  %9zu  %12.0f  %7.2fx  %16.2f  %22.0f\n", n, r.ns_per_event, r.ns_per_event / base,
                r.candidates_per_event, r.bytes_per_session);
    if (r.delivered != events) std::printf("  (delivered %llu of %zu)\n", static_cast<unsigned long long>(r.delivered), events);
  }
  return 0;
}
