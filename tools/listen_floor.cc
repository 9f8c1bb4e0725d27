// The physical floor for the benchmarks: the least a client can do to receive NOTIFYs —
// one libpq connection, LISTEN, poll(), PQconsumeInput, PQnotifies, count. Prints one
// JSON line when it has `count` notifications (or at the timeout):
//   {"count":N,"first_ns":...,"last_ns":...,"cpu_ns":...}
// Times are CLOCK_REALTIME nanoseconds, comparable with the reactor's journal `t`.
// When payloads carry "t_us":<unix microseconds at send>, the JSON also has the
// latency percentiles "p50_us", "p99_us", "p999_us" (commit to this client).
//
// usage: listen_floor CONNINFO CHANNEL COUNT [TIMEOUT_S]
#include <libpq-fe.h>
#include <poll.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {
long long NowNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
long long CpuNs() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: listen_floor CONNINFO CHANNEL COUNT [TIMEOUT_S]\n");
    return 2;
  }
  long long want = std::atoll(argv[3]);
  long long timeout_ns = (argc > 4 ? std::atoll(argv[4]) : 120) * 1000000000LL;
  PGconn* conn = PQconnectdb(argv[1]);
  if (PQstatus(conn) != CONNECTION_OK) {
    std::fprintf(stderr, "listen_floor: %s", PQerrorMessage(conn));
    return 1;
  }
  char* ident = PQescapeIdentifier(conn, argv[2], std::string(argv[2]).size());
  PGresult* r = PQexec(conn, (std::string("LISTEN ") + ident).c_str());
  PQfreemem(ident);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    std::fprintf(stderr, "listen_floor: LISTEN: %s", PQerrorMessage(conn));
    return 1;
  }
  PQclear(r);
  std::printf("{\"listening\":true}\n");
  std::fflush(stdout);
  long long count = 0, first = 0, last = 0, start = NowNs(), cpu0 = CpuNs();
  std::vector<long long> lat_us;
  while (count < want && NowNs() - start < timeout_ns) {
    pollfd p{PQsocket(conn), POLLIN, 0};
    if (poll(&p, 1, 100) < 0) break;
    if (!PQconsumeInput(conn)) {
      std::fprintf(stderr, "listen_floor: %s", PQerrorMessage(conn));
      return 1;
    }
    while (PGnotify* n = PQnotifies(conn)) {
      last = NowNs();
      if (count++ == 0) first = last;
      if (const char* t = n->extra ? std::strstr(n->extra, "\"t_us\"") : nullptr) {
        t += 6;
        while (*t == ' ' || *t == ':') ++t;
        lat_us.push_back(last / 1000 - std::atoll(t));
      }
      PQfreemem(n);
    }
  }
  auto pct = [&lat_us](double p) -> long long {
    if (lat_us.empty()) return -1;
    return lat_us[std::min(lat_us.size() - 1, static_cast<size_t>(p * static_cast<double>(lat_us.size())))];
  };
  std::sort(lat_us.begin(), lat_us.end());
  std::printf("{\"count\":%lld,\"first_ns\":%lld,\"last_ns\":%lld,\"cpu_ns\":%lld,\"p50_us\":%lld,"
              "\"p99_us\":%lld,\"p999_us\":%lld}\n",
              count, first, last, CpuNs() - cpu0, pct(0.5), pct(0.99), pct(0.999));
  PQfinish(conn);
  return count == want ? 0 : 1;
}
