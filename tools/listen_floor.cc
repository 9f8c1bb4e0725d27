// The physical floor for the benchmarks: the least a client can do to receive NOTIFYs —
// one libpq connection, LISTEN, poll(), PQconsumeInput, PQnotifies, count. Prints one
// JSON line when it has `count` notifications (or at the timeout):
//   {"count":N,"first_ns":...,"last_ns":...,"cpu_ns":...}
// Times are CLOCK_REALTIME nanoseconds, comparable with the reactor's journal `t`.
//
// usage: listen_floor CONNINFO CHANNEL COUNT [TIMEOUT_S]
#include <libpq-fe.h>
#include <poll.h>
#include <sys/resource.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <string>

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
      PQfreemem(n);
    }
  }
  std::printf("{\"count\":%lld,\"first_ns\":%lld,\"last_ns\":%lld,\"cpu_ns\":%lld}\n", count, first,
              last, CpuNs() - cpu0);
  PQfinish(conn);
  return count == want ? 0 : 1;
}
